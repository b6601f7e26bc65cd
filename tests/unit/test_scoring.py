"""Scale scoring, bands, the C-SSRS screener, safety flags, and response/remission per course, worked by hand.

No database. Cut-offs are those of domain note §5. Response = total ≤ baseline / 2 (a drop of at least
50 %); remission = total below the threshold (PHQ-9 < 5). Scores start on Monday 6 January 2025, 15:00 UTC.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinic.outcomes.scoring import (
    CSSRS_RISK_BANDS,
    OUTCOME_COLUMNS,
    SCALE_DEFINITIONS,
    Band,
    SafetyFlag,
    assess,
    band,
    cohort_rates,
    course_outcomes,
    cssrs_risk,
    remission_threshold,
    safety_flags,
    scale_definition,
    score,
)
from clinic.vocab import ALERT_PRIORITIES, SCALES

T0 = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
RISK_ORDER = ["none", "low", "moderate", "high"]


# --- definitions --------------------------------------------------------------------------------


def test_definitions_match_the_vocabulary():
    assert set(SCALE_DEFINITIONS) == set(SCALES)
    for code, (label, n_items, lo, hi) in SCALES.items():
        d = scale_definition(code)
        assert (d.code, d.n_items, d.item_min, d.item_max) == (code, n_items, lo, hi)
        assert d.label == label
        assert d.recall_period.strip()
        assert (d.total_min, d.total_max) == (n_items * lo, n_items * hi)


def test_totals_of_domain_table():
    # domain §5: GAD-7 0–21, PHQ-9 0–27, PCL-5 0–80, MADRS 0–60, HAM-A 0–56; CADSS 0–92, CADSS-6 0–24
    assert {c: SCALE_DEFINITIONS[c].total_max for c in ("GAD-7", "PHQ-9", "PCL-5", "MADRS", "HAM-A", "CADSS",
                                                         "CADSS-6", "MOAA/S", "DAST-10", "C-SSRS")} == {
        "GAD-7": 21, "PHQ-9": 27, "PCL-5": 80, "MADRS": 60, "HAM-A": 56, "CADSS": 92, "CADSS-6": 24,
        "MOAA/S": 5, "DAST-10": 10, "C-SSRS": 6}


def test_recall_periods():
    assert SCALE_DEFINITIONS["PHQ-9"].recall_period == "Over the last 2 weeks"
    assert SCALE_DEFINITIONS["GAD-7"].recall_period == "Over the last 2 weeks"
    assert SCALE_DEFINITIONS["PCL-5"].recall_period == "In the past month"
    assert "3 months" in SCALE_DEFINITIONS["C-SSRS"].recall_period


def test_unknown_scale():
    with pytest.raises(ValueError, match=r"Unknown scale 'BDI'.*PHQ-9"):
        scale_definition("BDI")
    with pytest.raises(ValueError, match="Unknown scale"):
        score("BDI", [1])


# --- score --------------------------------------------------------------------------------------


def test_score_is_the_sum():
    # 1+2+3+0+1+2+3+0+1 = 13
    assert score("PHQ-9", [1, 2, 3, 0, 1, 2, 3, 0, 1]) == 13
    assert score("GAD-7", (3,) * 7) == 21
    assert score("MOAA/S", [5]) == 5
    assert score("PCL-5", [4] * 20) == 80


@pytest.mark.parametrize(("scale", "items", "message"), [
    ("PHQ-9", [1] * 8, r"PHQ-9 has 9 items; got 8 answers\."),
    ("MOAA/S", [], r"MOAA/S has 1 item; got 0 answers\."),
    ("PHQ-9", [0] * 8 + [4], r"PHQ-9 item 9 is 4; each answer is 0–3\."),
    ("GAD-7", [0, -1, 0, 0, 0, 0, 0], r"GAD-7 item 2 is -1; each answer is 0–3\."),
    ("PHQ-9", [0, 0, 0, None, 0, 0, 0, 0, 0], r"PHQ-9 item 4 is not answered\."),
    ("PHQ-9", [0, 0, "2", 0, 0, 0, 0, 0, 0], r"PHQ-9 item 3 must be a whole number, got '2'\."),
    ("PHQ-9", [0, 1.5, 0, 0, 0, 0, 0, 0, 0], r"PHQ-9 item 2 must be a whole number, got 1\.5\."),
    ("DAST-10", [True] + [0] * 9, r"DAST-10 item 1 must be a whole number, got True\."),
    ("PHQ-9", "000000000", r"PHQ-9 answers must be a list"),
    ("PHQ-9", {1: 0}, r"PHQ-9 answers must be a list"),
])
def test_score_validation_names_the_item(scale, items, message):
    with pytest.raises(ValueError, match=message):
        score(scale, items)


def test_score_accepts_numpy_integers():
    import numpy as np

    assert score("GAD-7", np.array([1, 1, 1, 1, 1, 1, 1])) == 7


@given(st.sampled_from(sorted(SCALE_DEFINITIONS)).flatmap(
    lambda code: st.tuples(st.just(code), st.lists(
        st.integers(SCALE_DEFINITIONS[code].item_min, SCALE_DEFINITIONS[code].item_max),
        min_size=SCALE_DEFINITIONS[code].n_items, max_size=SCALE_DEFINITIONS[code].n_items))))
def test_score_of_any_valid_answers_is_their_sum(case):
    code, items = case
    if code == "C-SSRS" and items[1] == 0:
        items[2:5] = [0, 0, 0]  # skipped when item 2 is no
    total = score(code, items)
    assert total == sum(items)
    assert SCALE_DEFINITIONS[code].total_min <= total <= SCALE_DEFINITIONS[code].total_max


# --- bands --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "total", "code", "rank"), [
    ("GAD-7", 0, "minimal", 0), ("GAD-7", 4, "minimal", 0), ("GAD-7", 5, "mild", 1), ("GAD-7", 9, "mild", 1),
    ("GAD-7", 10, "moderate", 2), ("GAD-7", 14, "moderate", 2), ("GAD-7", 15, "severe", 3), ("GAD-7", 21, "severe", 3),
    ("PHQ-9", 4, "minimal", 0), ("PHQ-9", 5, "mild", 1), ("PHQ-9", 9, "mild", 1), ("PHQ-9", 10, "moderate", 2),
    ("PHQ-9", 14, "moderate", 2), ("PHQ-9", 15, "moderately_severe", 3), ("PHQ-9", 19, "moderately_severe", 3),
    ("PHQ-9", 20, "severe", 4), ("PHQ-9", 27, "severe", 4),
    ("MADRS", 0, "normal", 0), ("MADRS", 6, "normal", 0), ("MADRS", 7, "mild", 1), ("MADRS", 19, "mild", 1),
    ("MADRS", 20, "moderate", 2), ("MADRS", 34, "moderate", 2), ("MADRS", 35, "severe", 3), ("MADRS", 60, "severe", 3),
    ("HAM-A", 0, "mild", 0), ("HAM-A", 17, "mild", 0), ("HAM-A", 18, "mild_to_moderate", 1),
    ("HAM-A", 24, "mild_to_moderate", 1), ("HAM-A", 25, "moderate_to_severe", 2),
    ("HAM-A", 30, "moderate_to_severe", 2), ("HAM-A", 31, "severe", 3), ("HAM-A", 56, "severe", 3),
    ("PCL-5", 32, "below_cutoff", 0), ("PCL-5", 33, "probable_ptsd", 1), ("PCL-5", 80, "probable_ptsd", 1),
    ("DAST-10", 0, "none", 0), ("DAST-10", 2, "low", 1), ("DAST-10", 3, "moderate", 2),
    ("DAST-10", 6, "substantial", 3), ("DAST-10", 9, "severe", 4),
])
def test_band_boundaries(scale, total, code, rank):
    b = band(scale, total)
    assert (b.code, b.severity_rank) == (code, rank)
    assert b.label


def test_pcl5_cutoff_is_configurable():
    # The literature's range is 31–33; 33 is the default.
    assert band("PCL-5", 31).code == "below_cutoff"
    assert band("PCL-5", 31, pcl5_cutoff=31) == Band("probable_ptsd", "Probable PTSD (31 or more)", 1)
    assert band("PCL-5", 30, pcl5_cutoff=31).code == "below_cutoff"
    with pytest.raises(ValueError, match="PCL-5 cut-off"):
        band("PCL-5", 30, pcl5_cutoff=0)


@pytest.mark.parametrize("scale", ["CADSS", "CADSS-6", "MOAA/S", "C-SSRS"])
def test_scales_without_bands(scale):
    assert band(scale, 0) is None
    assert band(scale, SCALE_DEFINITIONS[scale].total_max) is None


@pytest.mark.parametrize(("scale", "total", "message"), [
    ("PHQ-9", 28, r"A PHQ-9 total is 0–27; got 28\."),
    ("GAD-7", -1, r"A GAD-7 total is 0–21; got -1\."),
    ("MOAA/S", 6, r"A MOAA/S total is 0–5; got 6\."),
    ("PHQ-9", 4.5, r"A PHQ-9 total must be a whole number, got 4\.5\."),
])
def test_band_rejects_impossible_totals(scale, total, message):
    with pytest.raises(ValueError, match=message):
        band(scale, total)


@pytest.mark.parametrize("scale", [c for c, d in SCALE_DEFINITIONS.items() if d.bands])
def test_every_total_has_one_band_and_severity_never_falls(scale):
    d = SCALE_DEFINITIONS[scale]
    ranks = [band(scale, t).severity_rank for t in range(d.total_min, d.total_max + 1)]
    assert ranks[0] == 0
    assert ranks == sorted(ranks)
    assert set(ranks) == set(range(len(d.bands)))  # every band is reachable


# --- remission threshold ------------------------------------------------------------------------


def test_remission_thresholds():
    assert remission_threshold("PHQ-9") == 5
    assert remission_threshold("GAD-7") == 5
    assert remission_threshold("MADRS") == 10
    assert remission_threshold("PCL-5") is None
    assert remission_threshold("HAM-A") is None
    assert remission_threshold("HAM-A", 8) == 8
    assert remission_threshold("PHQ-9", 3) == 3  # a stricter clinic
    for bad in (0, 28, 4.5):
        with pytest.raises(ValueError, match="PHQ-9 remission threshold"):
            remission_threshold("PHQ-9", bad)


# --- C-SSRS screener ----------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "risk"), [
    ([0, 0, None, None, None, 0], "none"),
    ([0, 0, 0, 0, 0, 0], "none"),  # skipped items stored as 0
    ([1, 0, None, None, None, 0], "low"),  # wish to be dead only
    ([1, 1, 0, 0, 0, 0], "low"),  # thoughts, no method, intent or plan
    ([0, 1, 0, 0, 0, 0], "low"),
    ([1, 1, 1, 0, 0, 0], "moderate"),  # item 3: thoughts of method
    ([1, 1, 1, 1, 0, 0], "high"),  # item 4: intent
    ([1, 1, 0, 0, 1, 0], "high"),  # item 5: plan with intent
    ([0, 0, None, None, None, 1], "high"),  # item 6 = 1: behaviour within the past 3 months
    ([1, 1, 1, 0, 0, 1], "high"),
])
def test_cssrs_risk(answers, risk):
    assert cssrs_risk(answers) == risk


@pytest.mark.parametrize(("answers", "message"), [
    ([0, 0, 1, 0, 0, 0], r"C-SSRS item 3 is answered yes, but it is asked only when item 2 is yes"),
    ([1, 1, None, 0, 0, 0], r"C-SSRS item 3 is not answered \(it is asked because item 2 is yes\)"),
    ([None, 0, None, None, None, 0], r"C-SSRS item 1 is not answered"),
    ([0, 0, None, None, None, None], r"C-SSRS item 6 is not answered"),
    ([0, 0, 0, 0, 0, 2], r"C-SSRS item 6 is 2; each answer is 0–1"),
    ([0, 0, 0, 0, 0], r"C-SSRS has 6 items; got 5 answers"),
])
def test_cssrs_rejects_inconsistent_answers(answers, message):
    with pytest.raises(ValueError, match=message):
        cssrs_risk(answers)


def _valid_cssrs():
    for a1, a2, a6 in itertools.product((0, 1), repeat=3):
        if a2:
            for a3, a4, a5 in itertools.product((0, 1), repeat=3):
                yield [a1, a2, a3, a4, a5, a6]
        else:
            yield [a1, a2, 0, 0, 0, a6]


def test_cssrs_one_more_yes_never_lowers_the_risk():
    valid = [tuple(a) for a in _valid_cssrs()]
    assert len(valid) == 36  # item 2 no: items 1 and 6 free (2 × 2 = 4); item 2 yes: 2 × 2 × 2³ = 32
    for a in valid:
        for i in range(6):
            if a[i] == 0:
                b = list(a)
                b[i] = 1
                if tuple(b) in valid:
                    assert RISK_ORDER.index(cssrs_risk(b)) >= RISK_ORDER.index(cssrs_risk(list(a)))


def test_cssrs_score_counts_yes():
    assert score("C-SSRS", [1, 1, 1, 0, 0, 0]) == 3
    assert score("C-SSRS", [1, 0, None, None, None, 0]) == 1


# --- safety flags -------------------------------------------------------------------------------


def test_phq9_item9_flags_whatever_the_total():
    # Total 1 (minimal), but item 9 = 1 ("several days").
    flags = safety_flags("PHQ-9", [0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert len(flags) == 1
    assert flags[0].rule == "phq9_item9"
    assert flags[0].priority == "high"
    assert "self-harm" in flags[0].message and "item 9 answered 1 (several days)" in flags[0].message
    assert band("PHQ-9", 1).code == "minimal"


def test_phq9_severe_without_item9_raises_no_flag():
    # 3 × 8 = 24 (severe) with item 9 = 0: the severity shows in the band, not as a safety flag.
    assert safety_flags("PHQ-9", [3] * 8 + [0]) == []


@pytest.mark.parametrize(("answers", "priority"), [
    ([1, 1, 1, 0, 0, 0], "medium"),  # moderate risk; the alert vocabulary says "medium"
    ([1, 1, 1, 1, 0, 0], "high"),
    ([0, 0, None, None, None, 1], "high"),
])
def test_cssrs_moderate_or_high_flags(answers, priority):
    (flag,) = safety_flags("C-SSRS", answers)
    assert flag.rule == "cssrs_risk"
    assert flag.priority == priority
    assert flag.priority in ALERT_PRIORITIES
    assert cssrs_risk(answers) in flag.message


@pytest.mark.parametrize(("scale", "items"), [
    ("C-SSRS", [1, 1, 0, 0, 0, 0]),  # low risk: no alert
    ("C-SSRS", [0, 0, 0, 0, 0, 0]),
    ("GAD-7", [3] * 7),
    ("MOAA/S", [0]),  # sedation alerts belong to the monitoring rules
])
def test_no_flag(scale, items):
    assert safety_flags(scale, items) == []


def test_safety_flags_validate_the_answers():
    with pytest.raises(ValueError, match="PHQ-9 item 9 is 5"):
        safety_flags("PHQ-9", [0] * 8 + [5])


def test_assess():
    a = assess("PHQ-9", [2, 2, 2, 2, 2, 2, 2, 2, 2])  # 2 × 9 = 18: moderately severe, item 9 = 2
    assert a.total == 18
    assert a.band.code == "moderately_severe"
    assert [f.rule for f in a.flags] == ["phq9_item9"]
    c = assess("C-SSRS", [1, 1, 1, 0, 0, 0])
    assert c.total == 3 and c.band == CSSRS_RISK_BANDS["moderate"]
    assert c.flags == (SafetyFlag("cssrs_risk", "medium", c.flags[0].message),)
    assert assess("PCL-5", [2] * 16 + [0] * 4, pcl5_cutoff=31).band.code == "probable_ptsd"  # 32 ≥ 31


# --- course outcomes ----------------------------------------------------------------------------


def _scores(rows, scale="PHQ-9"):
    """rows: (patient_id, course_id, day, total, session_number or None); one score a day at 15:00 UTC."""
    df = pd.DataFrame(
        [{"patient_id": p, "course_id": c, "scale": scale, "measured_at": T0 + timedelta(days=d), "total": t,
          "session_number": s} for p, c, d, t, s in rows],
        columns=["patient_id", "course_id", "scale", "measured_at", "total", "session_number"])
    df["session_number"] = df["session_number"].astype("Int64")
    return df


def _one(outcomes, patient_id, course_id=None):
    rows = outcomes[outcomes["patient_id"] == patient_id]
    if course_id is not None:
        rows = rows[rows["course_id"] == course_id]
    assert len(rows) == 1
    return rows.iloc[0]


def _flag(value):
    """A nullable boolean cell as True, False or None."""
    return None if value is pd.NA else bool(value)


def _na(value):
    return value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


# A six-infusion induction, PHQ-9 before each infusion (patient 1, course 10):
#   session   1   2   3   4   5   6
#   total    20  16  12   9  10   4
# baseline 20; response when total ≤ 20 / 2 = 10: first at session 4 (9); session 5 (10) also counts.
# latest 4: change (4 − 20) / 20 = −80 %; best 4; remission 4 < 5 at the latest (and at some point).
INDUCTION = [(1, 10, 0, 20, 1), (1, 10, 2, 16, 2), (1, 10, 4, 12, 3), (1, 10, 7, 9, 4), (1, 10, 9, 10, 5),
             (1, 10, 11, 4, 6)]


def test_hand_worked_induction():
    o = _one(course_outcomes(_scores(INDUCTION), scale="PHQ-9"), 1)
    assert o["n_scores"] == 6
    assert (o["baseline"], o["baseline_session"], o["baseline_at"]) == (20, 1, T0)
    assert (o["latest"], o["latest_session"], o["latest_at"]) == (4, 6, T0 + timedelta(days=11))
    assert o["best"] == 4
    assert o["change_pct"] == pytest.approx(-80.0)
    assert o["best_change_pct"] == pytest.approx(-80.0)
    assert o["response_line"] == 10
    assert _flag(o["responded_any"]) is True and _flag(o["responded_latest"]) is True
    assert o["sessions_to_response"] == 4
    assert o["response_at"] == T0 + timedelta(days=7)
    assert o["remission_below"] == 5
    assert _flag(o["remitted_any"]) is True and _flag(o["remitted_latest"]) is True
    assert list(course_outcomes(_scores(INDUCTION), scale="PHQ-9").columns) == list(OUTCOME_COLUMNS)


def test_response_lost_by_the_latest_score():
    # baseline 18, line 9: session 3 scored 9 (a 50 % drop: response), session 6 relapsed to 14.
    # change (14 − 18) / 18 = −22.2 %; best 9 → (9 − 18) / 18 = −50 %; 9 is not below 5: no remission.
    rows = [(2, 20, 0, 18, 1), (2, 20, 4, 9, 3), (2, 20, 11, 14, 6)]
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9"), 2)
    assert _flag(o["responded_any"]) is True and _flag(o["responded_latest"]) is False
    assert o["sessions_to_response"] == 3
    assert o["change_pct"] == pytest.approx(-22.222, abs=1e-3)
    assert o["best_change_pct"] == pytest.approx(-50.0)
    assert _flag(o["remitted_any"]) is False and _flag(o["remitted_latest"]) is False


def test_response_boundary_is_exactly_half():
    # baseline 21, half is 10.5: 11 is a 47.6 % drop (no), 10 is 52.4 % (yes).
    o = course_outcomes(_scores([(1, 1, 0, 21, 1), (1, 1, 3, 11, 2), (2, 2, 0, 21, 1), (2, 2, 3, 10, 2),
                                 (3, 3, 0, 20, 1), (3, 3, 3, 10, 2)]), scale="PHQ-9")
    assert _flag(_one(o, 1)["responded_any"]) is False
    assert _flag(_one(o, 2)["responded_any"]) is True
    assert _flag(_one(o, 3)["responded_any"]) is True  # 20 → 10 is exactly 50 %


def test_baseline_zero_cannot_respond():
    # GAD-7 0 at baseline: no 50 % drop is possible. Response and change are not judged; remission is not
    # judged either (0 is already below 5: nothing to remit from).
    o = _one(course_outcomes(_scores([(1, 1, 0, 0, 1), (1, 1, 7, 0, 3)], "GAD-7"), scale="GAD-7"), 1)
    assert o["baseline"] == 0
    assert _na(o["change_pct"]) and _na(o["response_line"])
    assert _na(o["responded_any"]) and _na(o["responded_latest"]) and _na(o["sessions_to_response"])
    assert _na(o["remitted_any"]) and _na(o["remitted_latest"])


def test_single_score():
    o = _one(course_outcomes(_scores([(1, 1, 0, 15, None)]), scale="PHQ-9"), 1)
    assert o["n_scores"] == 1
    assert o["baseline"] == o["latest"] == o["best"] == 15
    assert _na(o["baseline_session"]) and _na(o["change_pct"])
    assert o["response_line"] == 7.5
    assert _na(o["responded_any"]) and _na(o["remitted_latest"]) and _na(o["sessions_to_response"])


def test_ties_in_time():
    # Two scores at the baseline's time (14 and 12) and two at the latest (6 and 3): the baseline is the
    # lower (12), the latest the higher (6). 6 ≤ 12 / 2: response at the latest; 6 is not below 5.
    # The 14 tied with the baseline is not a "later" score. n_scores counts all four.
    rows = [(1, 1, 0, 14, 1), (1, 1, 0, 12, 1), (1, 1, 7, 6, 4), (1, 1, 7, 3, 4)]
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9"), 1)
    assert (o["n_scores"], o["baseline"], o["latest"], o["best"]) == (4, 12, 6, 3)
    assert _flag(o["responded_latest"]) is True and _flag(o["responded_any"]) is True
    assert _flag(o["remitted_latest"]) is False
    assert _flag(o["remitted_any"]) is True  # the 3 at day 7 was below 5
    # The answer does not depend on the rows' order.
    shuffled = _scores(rows).iloc[[3, 1, 2, 0]]
    pd.testing.assert_frame_equal(course_outcomes(shuffled, scale="PHQ-9"),
                                  course_outcomes(_scores(rows), scale="PHQ-9"))


def test_only_scores_tied_with_the_baseline():
    o = _one(course_outcomes(_scores([(1, 1, 0, 14, 1), (1, 1, 0, 3, 1)]), scale="PHQ-9"), 1)
    assert o["baseline"] == 3 and o["n_scores"] == 2
    assert _na(o["responded_any"]) and _na(o["remitted_any"])


def test_missing_session_numbers():
    # Screening score with no session (baseline 22, before session 1); a kiosk score on day 8 without a
    # session number comes after session 3 (day 5): it counts at session 3. 11 ≤ 22 / 2 → response at 3.
    rows = [(1, 1, -3, 22, None), (1, 1, 0, 20, 1), (1, 1, 5, 15, 3), (1, 1, 8, 11, None), (1, 1, 10, 8, 4)]
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9"), 1)
    assert o["baseline"] == 22 and _na(o["baseline_session"])
    assert o["sessions_to_response"] == 3
    assert o["response_at"] == T0 + timedelta(days=8)
    # With no session number known before the responding score, sessions to response is NaN.
    o = _one(course_outcomes(_scores([(1, 1, 0, 22, None), (1, 1, 8, 11, None)]), scale="PHQ-9"), 1)
    assert _flag(o["responded_any"]) is True and _na(o["sessions_to_response"])


def test_a_course_first_scored_after_session_1_has_no_baseline():
    # First PHQ-9 at session 3 (18), then 5 at session 6: no baseline before or at session 1, so no
    # change or response; remission is still judged (18 was above 5, 5 is not below 5).
    rows = [(1, 1, 4, 18, 3), (1, 1, 11, 5, 6)]
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9"), 1)
    assert _na(o["baseline"]) and o["baseline_session"] == 3
    assert _na(o["change_pct"]) and _na(o["responded_any"]) and _na(o["response_line"])
    assert _flag(o["remitted_latest"]) is False
    # Accepting any first score as the baseline: 5 ≤ 18 / 2 → response at session 6.
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9", baseline_by_session=None), 1)
    assert o["baseline"] == 18 and _flag(o["responded_latest"]) is True and o["sessions_to_response"] == 6


def test_course_begun_below_remission_threshold_is_not_judged_for_remission():
    # PHQ-9 4 at baseline (minimal) then 2: response (2 ≤ 4 / 2) but no remission judgement.
    o = _one(course_outcomes(_scores([(1, 1, 0, 4, 1), (1, 1, 3, 2, 2)]), scale="PHQ-9"), 1)
    assert _flag(o["responded_latest"]) is True
    assert _na(o["remitted_latest"]) and _na(o["remitted_any"])


def test_remission_any_versus_latest():
    # 16 → 4 (below 5) → 7: remitted at some point, not at the latest.
    o = _one(course_outcomes(_scores([(1, 1, 0, 16, 1), (1, 1, 4, 4, 3), (1, 1, 9, 7, 5)]), scale="PHQ-9"), 1)
    assert _flag(o["remitted_any"]) is True and _flag(o["remitted_latest"]) is False


def test_scales_without_a_remission_threshold():
    rows = [(1, 1, 0, 30, 1), (1, 1, 9, 7, 5)]
    o = _one(course_outcomes(_scores(rows, "HAM-A"), scale="HAM-A"), 1)
    assert _na(o["remission_below"]) and _na(o["remitted_latest"])
    assert _flag(o["responded_latest"]) is True  # 7 ≤ 15
    o = _one(course_outcomes(_scores(rows, "HAM-A"), scale="HAM-A", remission_below=8), 1)
    assert o["remission_below"] == 8 and _flag(o["remitted_latest"]) is True  # 7 < 8


def test_courses_and_scales_are_kept_apart():
    # Patient 1 has an induction (course 1) and a booster (course 2); a GAD-7 and a score with no course
    # are ignored when asking about PHQ-9.
    rows = _scores([(1, 1, 0, 20, 1), (1, 1, 10, 8, 6), (1, 2, 60, 14, 1), (1, 2, 61, 12, 2),
                    (1, None, 30, 27, None)])
    gad = _scores([(1, 1, 0, 21, 1), (1, 1, 10, 1, 6)], "GAD-7")
    o = course_outcomes(pd.concat([rows, gad], ignore_index=True), scale="PHQ-9")
    assert len(o) == 2
    assert _flag(_one(o, 1, 1)["responded_latest"]) is True  # 8 ≤ 10
    assert _one(o, 1, 2)["baseline"] == 14  # the booster has its own baseline
    assert _flag(_one(o, 1, 2)["responded_latest"]) is False  # 12 > 7


def test_empty_and_invalid_input():
    empty = course_outcomes(_scores(INDUCTION), scale="GAD-7")
    assert empty.empty and list(empty.columns) == list(OUTCOME_COLUMNS)
    naive = _scores(INDUCTION)
    naive["measured_at"] = naive["measured_at"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        course_outcomes(naive, scale="PHQ-9")
    with pytest.raises(ValueError, match=r"PHQ-9 total is 0–27; got 30\.0 \(patient 1, course 1\)"):
        course_outcomes(_scores([(1, 1, 0, 30, 1)]), scale="PHQ-9")
    with pytest.raises(ValueError, match="missing session_number"):
        course_outcomes(_scores(INDUCTION).drop(columns="session_number"), scale="PHQ-9")
    with pytest.raises(ValueError, match="Unknown scale"):
        course_outcomes(_scores(INDUCTION), scale="BDI")


def test_non_utc_aware_times_are_converted():
    df = _scores(INDUCTION)
    df["measured_at"] = df["measured_at"].dt.tz_convert("America/New_York")
    o = _one(course_outcomes(df, scale="PHQ-9"), 1)
    assert o["baseline_at"] == T0 and str(o["baseline_at"].tz) == "UTC"


# --- cohort rates -------------------------------------------------------------------------------


def test_hand_worked_cohort():
    # Five courses, four patients (patient 1 has two):
    #   p1 c1: 20 → 8 (session 5)       response (8 ≤ 10), no remission (8 ≥ 5)
    #   p1 c2: 14 → 12                  neither
    #   p2 c3: 24 → 16 → 3 (session 3)  response at session 3, remission (3 < 5)
    #   p3 c4: 18 only                  not judgeable
    #   p4 c5: 0 → 0                    response not judgeable (baseline 0); remission not judgeable
    # response: 2 of 3 judged courses (c1, c2, c3) = 66.7 %, 2 patients behind them (p1, p2);
    # remission: 1 of 3 = 33.3 %; median sessions to response: median(5, 3) = 4.
    rows = _scores([(1, 1, 0, 20, 1), (1, 1, 9, 8, 5), (1, 2, 60, 14, 1), (1, 2, 62, 12, 2),
                    (2, 3, 0, 24, 1), (2, 3, 2, 16, 2), (2, 3, 4, 3, 3), (3, 4, 0, 18, 1),
                    (4, 5, 0, 0, 1), (4, 5, 3, 0, 2)])
    r = cohort_rates(course_outcomes(rows, scale="PHQ-9"))
    assert r["response_rate"] == pytest.approx(2 / 3)
    assert (r["responders"], r["response_courses"], r["response_patients"]) == (2, 3, 2)
    assert r["remission_rate"] == pytest.approx(1 / 3)
    assert (r["remitters"], r["remission_courses"], r["remission_patients"]) == (1, 3, 2)
    assert r["median_sessions_to_response"] == 4.0
    assert (r["sessions_to_response_courses"], r["sessions_to_response_patients"]) == (2, 2)


def test_cohort_at_any_point():
    # 16 → 4 → 9: remitted and responded at some point, neither at the latest (9 > 8, 9 ≥ 5).
    o = course_outcomes(_scores([(1, 1, 0, 16, 1), (1, 1, 4, 4, 3), (1, 1, 9, 9, 5)]), scale="PHQ-9")
    assert cohort_rates(o)["response_rate"] == 0 and cohort_rates(o)["remission_rate"] == 0
    assert cohort_rates(o, at="any")["response_rate"] == 1 and cohort_rates(o, at="any")["remission_rate"] == 1
    with pytest.raises(ValueError, match="at must be"):
        cohort_rates(o, at="best")


def test_cohort_of_nothing():
    r = cohort_rates(course_outcomes(_scores([(1, 1, 0, 12, 1)]), scale="PHQ-9"))
    assert r["response_rate"] is None and r["remission_rate"] is None
    assert r["median_sessions_to_response"] is None
    assert r["response_patients"] == r["remission_patients"] == r["sessions_to_response_courses"] == 0


# --- properties: against a plain loop, and the definitions themselves ----------------------------


def _reference(rows, threshold):
    """Outcomes of one course by a plain loop, to check the vectorised code against (rows as in _scores)."""
    def key(r):
        return (r[2], r[4] is not None, r[4] or 0, r[3])
    ordered = sorted(rows, key=key)
    first, last = ordered[0], ordered[-1]
    later = [r for r in ordered if r[2] > first[2]]
    baseline_ok = first[4] is None or first[4] <= 1
    judge = bool(later) and baseline_ok and first[3] > 0
    responding, session = "never", None
    for r in ordered:  # a score without a session number counts at the last session before it
        session = r[4] if r[4] is not None else session
        if r[2] > first[2] and 2 * r[3] <= first[3]:
            responding = session
            break
    judge_remission = bool(later) and first[3] >= threshold
    return {
        "n_scores": len(rows),
        "baseline": first[3] if baseline_ok else None,
        "latest": last[3],
        "best": min(r[3] for r in rows),
        "responded_any": any(2 * r[3] <= first[3] for r in later) if judge else None,
        "responded_latest": 2 * last[3] <= first[3] if judge else None,
        "sessions_to_response": (None if not judge or responding in ("never", None) else responding),
        "remitted_any": any(r[3] < threshold for r in later) if judge_remission else None,
        "remitted_latest": last[3] < threshold if judge_remission else None,
    }


def _score_rows():
    row = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(0, 6), st.integers(0, 27),
                    st.none() | st.integers(1, 8))
    return st.lists(row, min_size=1, max_size=25)


def _value(v):
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


@settings(max_examples=25, deadline=None)
@given(_score_rows())
def test_vectorised_outcomes_match_a_plain_loop(rows):
    outcomes = course_outcomes(_scores(rows), scale="PHQ-9")
    courses = sorted({(p, c) for p, c, *_ in rows})
    assert sorted(zip(outcomes["patient_id"], outcomes["course_id"], strict=True)) == courses
    for p, c in courses:
        expected = _reference([r for r in rows if (r[0], r[1]) == (p, c)], 5)
        got = _one(outcomes, p, c)
        assert {k: _value(got[k]) for k in expected} == expected


@settings(max_examples=25, deadline=None)
@given(_score_rows(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rows, rnd):
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    pd.testing.assert_frame_equal(course_outcomes(_scores(shuffled), scale="PHQ-9"),
                                  course_outcomes(_scores(rows), scale="PHQ-9"))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 27), st.lists(st.integers(0, 27), min_size=1, max_size=10))
def test_no_response_while_every_later_score_is_above_half_the_baseline(baseline, later):
    later = [t for t in later if 2 * t > baseline] or [baseline]
    rows = [(1, 1, 0, baseline, 1)] + [(1, 1, i + 1, t, i + 2) for i, t in enumerate(later)]
    o = _one(course_outcomes(_scores(rows), scale="PHQ-9"), 1)
    assert _flag(o["responded_any"]) is False and _flag(o["responded_latest"]) is False
    assert _na(o["sessions_to_response"])


@settings(max_examples=25, deadline=None)
@given(_score_rows(), st.integers(1, 27))
def test_status_implications(rows, threshold):
    outcomes = course_outcomes(_scores(rows), scale="PHQ-9", remission_below=threshold)
    r = cohort_rates(outcomes)
    for _, o in outcomes.iterrows():
        if _flag(o["remitted_latest"]) is True:
            assert o["latest"] < threshold and _flag(o["remitted_any"]) is True
        if _flag(o["remitted_any"]) is True:
            assert o["best"] < threshold
        if _flag(o["responded_latest"]) is True:
            assert _flag(o["responded_any"]) is True and o["latest"] <= o["baseline"] / 2 and o["change_pct"] <= -50
        if _flag(o["responded_any"]) is True:
            assert o["best"] <= o["response_line"] and o["best_change_pct"] <= -50
        if not _na(o["sessions_to_response"]):
            assert _flag(o["responded_any"]) is True
        if not _na(o["baseline"]) and o["baseline"] > 0:
            assert o["best"] <= o["baseline"]
    for name in ("response", "remission"):
        rate = r[f"{name}_rate"]
        assert rate is None or 0 <= rate <= 1
        assert r[f"{name}_patients"] <= r[f"{name}_courses"] <= len(outcomes)
