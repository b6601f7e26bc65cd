"""Pure scoring of symptom scales and course outcomes: from item answers to totals, bands and safety flags,
and from a course's totals to response and remission.

No Flask, no database, no clock: every function takes values and returns values. The services load rows
(`ScaleResponse`, `ScaleItemAnswer`), call these functions and store or show what they return.

- **Scales** (`SCALE_DEFINITIONS`, `scale_definition`): recall period, item count and item range, the same
  forms as `clinic.vocab.SCALES` (a test keeps the two in step).
- **Scoring**: `score` (the sum of the items, validated), `band` (severity band of a total),
  `remission_threshold`, `cssrs_risk` (the C-SSRS screener's triage), `safety_flags` (what must reach the
  prescriber now), and `assess` (all of them for one response).
- **Outcomes** (pandas, vectorised): `course_outcomes` (baseline, latest, best, change, response and
  remission per patient and course) and `cohort_rates` (rates with the number of patients behind them).

Domain facts: ../shared/domain.md section 5. Response = a drop of at least 50 % from the course's baseline;
remission = a total below the scale's threshold (PHQ-9 < 5, GAD-7 < 5, MADRS < 10).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from clinic.vocab import SCALES

# --- scale definitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A severity band of a scale's total: a stable code, the plain words, and a rank (0 = least severe)."""

    code: str
    label: str
    severity_rank: int


@dataclass(frozen=True)
class ScaleDefinition:
    """One scale's form: what it asks about, over which period, and how its items are answered.

    `bands` lists (lowest total of the band, Band) in increasing order; empty when the scale has no
    severity bands. `remission_below` is the default remission threshold (a total strictly below it is
    remission), or None when the clinic has not chosen one.
    """

    code: str
    recall_period: str
    n_items: int
    item_min: int
    item_max: int
    bands: tuple[tuple[int, Band], ...] = ()
    remission_below: int | None = None

    @property
    def label(self) -> str:
        """The plain name shown to staff, from clinic.vocab.SCALES."""
        return SCALES[self.code][0]

    @property
    def total_min(self) -> int:
        """The lowest possible total."""
        return self.n_items * self.item_min

    @property
    def total_max(self) -> int:
        """The highest possible total."""
        return self.n_items * self.item_max


def _bands(*rows: tuple[int, str, str]) -> tuple[tuple[int, Band], ...]:
    return tuple((lowest, Band(code, label, rank)) for rank, (lowest, code, label) in enumerate(rows))


# PCL-5: the literature puts "probable PTSD" at a total of 31–33 or more (Weathers et al.; the National
# Center for PTSD); we default to 33, the most conservative of the range. Pass `pcl5_cutoff` to choose.
PCL5_CUTOFF_DEFAULT = 33
PCL5_CUTOFF_RANGE = (31, 33)

SCALE_DEFINITIONS: dict[str, ScaleDefinition] = {
    "GAD-7": ScaleDefinition(
        "GAD-7", "Over the last 2 weeks", 7, 0, 3,
        _bands((0, "minimal", "Minimal"), (5, "mild", "Mild"), (10, "moderate", "Moderate"),
               (15, "severe", "Severe")),
        remission_below=5),
    "PHQ-9": ScaleDefinition(
        "PHQ-9", "Over the last 2 weeks", 9, 0, 3,
        _bands((0, "minimal", "Minimal"), (5, "mild", "Mild"), (10, "moderate", "Moderate"),
               (15, "moderately_severe", "Moderately severe"), (20, "severe", "Severe")),
        remission_below=5),
    # PCL-5 bands depend on the chosen cut-off: see `band(..., pcl5_cutoff=)`.
    "PCL-5": ScaleDefinition("PCL-5", "In the past month", 20, 0, 4),
    "MADRS": ScaleDefinition(
        "MADRS", "The past week (clinician interview)", 10, 0, 6,
        _bands((0, "normal", "Normal / symptom absent"), (7, "mild", "Mild"), (20, "moderate", "Moderate"),
               (35, "severe", "Severe")),
        remission_below=10),
    "HAM-A": ScaleDefinition(
        "HAM-A", "The past week (clinician interview)", 14, 0, 4,
        _bands((0, "mild", "Mild"), (18, "mild_to_moderate", "Mild to moderate"),
               (25, "moderate_to_severe", "Moderate to severe"), (31, "severe", "Severe"))),
    # The screener's answers are yes (1) / no (0); its result is a risk level, not a band: see `cssrs_risk`.
    "C-SSRS": ScaleDefinition("C-SSRS", "Past month (items 1–5); item 6: the past 3 months", 6, 0, 1),
    "CADSS": ScaleDefinition("CADSS", "Right now (during or since this dose)", 23, 0, 4),
    "CADSS-6": ScaleDefinition("CADSS-6", "Right now (during or since this dose)", 6, 0, 4),
    "MOAA/S": ScaleDefinition("MOAA/S", "Right now (observed response to name and touch)", 1, 0, 5),
    # DAST-10 cut-offs are Skinner's (1982) usual ones; domain §5 does not list them.
    "DAST-10": ScaleDefinition(
        "DAST-10", "The past 12 months", 10, 0, 1,
        _bands((0, "none", "No problems reported"), (1, "low", "Low level"), (3, "moderate", "Moderate level"),
               (6, "substantial", "Substantial level"), (9, "severe", "Severe level"))),
}


def scale_definition(scale: str) -> ScaleDefinition:
    """The definition of `scale` (a code of clinic.vocab.SCALES); ValueError naming the known codes."""
    try:
        return SCALE_DEFINITIONS[scale]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown scale {scale!r}; use one of: {', '.join(SCALE_DEFINITIONS)}.") from None


# --- scoring ------------------------------------------------------------------------------------


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _answers(definition: ScaleDefinition, items: Sequence[int | None]) -> list[int | None]:
    """The answers as a list, checked for count, type and range; None is kept (C-SSRS checks skips)."""
    code = definition.code
    if isinstance(items, str | bytes | Mapping) or not hasattr(items, "__iter__"):
        raise ValueError(f"{code} answers must be a list of {definition.n_items} numbers in item order.")
    values = list(items)
    if len(values) != definition.n_items:
        plural = "s" if definition.n_items != 1 else ""
        raise ValueError(f"{code} has {definition.n_items} item{plural}; got {len(values)} answer"
                         f"{'s' if len(values) != 1 else ''}.")
    for number, value in enumerate(values, start=1):
        if value is None:
            continue
        if not _is_whole(value):
            raise ValueError(f"{code} item {number} must be a whole number, got {value!r}.")
        if not definition.item_min <= value <= definition.item_max:
            raise ValueError(f"{code} item {number} is {value}; each answer is "
                             f"{definition.item_min}–{definition.item_max}.")
    return [None if v is None else int(v) for v in values]


# C-SSRS screener items, in order, as short phrases for messages. Items 1–5 ask about the past month.
CSSRS_ITEMS = (
    "wish to be dead",
    "thoughts of killing themself",
    "thoughts of how they might do it",
    "some intention of acting on the thoughts",
    "a plan worked out, with intent to carry it out",
    "suicidal behaviour in the past 3 months",
)
CSSRS_SKIPPABLE = (3, 4, 5)  # asked only when item 2 is yes

CssrsRisk = Literal["none", "low", "moderate", "high"]
CSSRS_RISK_BANDS: dict[str, Band] = {
    "none": Band("none", "No risk identified", 0),
    "low": Band("low", "Low risk", 1),
    "moderate": Band("moderate", "Moderate risk", 2),
    "high": Band("high", "High risk", 3),
}


def _validate(scale: str, items: Sequence[int | None]) -> tuple[ScaleDefinition, list[int | None]]:
    definition = scale_definition(scale)
    values = _answers(definition, items)
    if definition.code != "C-SSRS":
        missing = [n for n, v in enumerate(values, start=1) if v is None]
        if missing:
            raise ValueError(f"{definition.code} item {missing[0]} is not answered.")
        return definition, values
    # C-SSRS: items 1, 2 and 6 are always asked; 3–5 only when item 2 is yes. A skipped item may be blank
    # (None) or stored as 0 (the table keeps all six answers), but never as yes.
    for number in (1, 2, 6):
        if values[number - 1] is None:
            raise ValueError(f"C-SSRS item {number} is not answered.")
    for number in CSSRS_SKIPPABLE:
        value = values[number - 1]
        if values[1] == 1 and value is None:
            raise ValueError(f"C-SSRS item {number} is not answered (it is asked because item 2 is yes).")
        if values[1] == 0 and value == 1:
            raise ValueError(f"C-SSRS item {number} is answered yes, but it is asked only when item 2 is yes "
                             f"and item 2 is no: correct item 2 or item {number}.")
    return definition, values


def score(scale: str, items: Sequence[int | None]) -> int:
    """The total of one response: the sum of its item answers, given in item order.

    Raises ValueError naming the problem: an unknown scale, the wrong number of answers, an item that is
    not answered, not a whole number or outside the scale's range (e.g. "PHQ-9 item 9 is 4; each answer is
    0–3."). For the C-SSRS screener the total is the number of yes answers (items 3–5 may be None when
    item 2 is no); its clinical result is `cssrs_risk`, not the total.
    """
    _definition, values = _validate(scale, items)
    return sum(v for v in values if v is not None)


def _check_total(definition: ScaleDefinition, total: int) -> None:
    if not _is_whole(total):
        raise ValueError(f"A {definition.code} total must be a whole number, got {total!r}.")
    if not definition.total_min <= total <= definition.total_max:
        raise ValueError(f"A {definition.code} total is {definition.total_min}–{definition.total_max}; "
                         f"got {total}.")


def band(scale: str, total: int, *, pcl5_cutoff: int = PCL5_CUTOFF_DEFAULT) -> Band | None:
    """The severity band of `total` on `scale`, or None for a scale without bands.

    Cut-offs (domain §5), each band from its lowest total:
    - GAD-7: 0 minimal, 5 mild, 10 moderate, 15 severe (to 21).
    - PHQ-9: 0 minimal, 5 mild, 10 moderate, 15 moderately severe, 20 severe (to 27).
    - PCL-5: "probable PTSD" at `pcl5_cutoff` or more (default 33; the literature gives 31–33), otherwise
      "below the cut-off". The cut-off must lie within 1–80.
    - MADRS: 0 normal, 7 mild, 20 moderate, 35 severe (to 60).
    - HAM-A: 0–17 mild, 18–24 mild to moderate, 25–30 moderate to severe, above 30 severe (to 56).
    - DAST-10: 0 none, 1 low, 3 moderate, 6 substantial, 9 severe.
    - CADSS, CADSS-6, MOAA/S: no bands (None). C-SSRS: None — its result is `cssrs_risk` of the answers.
    Raises ValueError for an unknown scale or a total outside the scale's range.
    """
    definition = scale_definition(scale)
    _check_total(definition, total)
    if definition.code == "PCL-5":
        if not _is_whole(pcl5_cutoff) or not 1 <= pcl5_cutoff <= definition.total_max:
            raise ValueError(f"The PCL-5 cut-off must be a whole number within 1–{definition.total_max} "
                             f"(usually {PCL5_CUTOFF_RANGE[0]}–{PCL5_CUTOFF_RANGE[1]}); got {pcl5_cutoff!r}.")
        if total >= pcl5_cutoff:
            return Band("probable_ptsd", f"Probable PTSD ({pcl5_cutoff} or more)", 1)
        return Band("below_cutoff", f"Below the probable-PTSD cut-off ({pcl5_cutoff})", 0)
    found = None
    for lowest, b in definition.bands:
        if total >= lowest:
            found = b
    return found


def remission_threshold(scale: str, below: int | None = None) -> int | None:
    """The remission threshold of `scale`: a total strictly below it counts as remission.

    Defaults (domain §5): PHQ-9 5, GAD-7 5, MADRS 10; every other scale None (no remission judged) unless
    the clinic passes `below` (e.g. a protocol's threshold for PCL-5 or HAM-A, or a stricter one for PHQ-9).
    `below` must be a whole number within 1 and the scale's highest total; ValueError otherwise.
    """
    definition = scale_definition(scale)
    if below is None:
        return definition.remission_below
    if not _is_whole(below) or not 1 <= below <= definition.total_max:
        raise ValueError(f"A {definition.code} remission threshold must be a whole number within "
                         f"1–{definition.total_max}; got {below!r}.")
    return int(below)


def cssrs_risk(answers: Sequence[int | None]) -> CssrsRisk:
    """The C-SSRS screener's risk level from its six yes (1) / no (0) answers, in item order.

    Items 1, 2 and 6 are always asked; items 3–5 only when item 2 is yes (pass None, or 0 as the table
    stores it, when skipped). Triage, most severe first:
    - "high": yes to item 4 (intent) or 5 (plan with intent), or yes to item 6. Item 6 asks about suicidal
      behaviour; an answer of 1 means it happened **within the past 3 months** ("recent"). Behaviour longer
      ago cannot be told apart in the 0/1 answers and must be recorded as 0 here (note it clinically);
    - "moderate": yes to item 3 (thoughts of method);
    - "low": yes to item 1 or 2 only;
    - "none": no to everything.
    Raises ValueError for a wrong count or value, a required item not answered, or a skipped item answered yes.
    """
    _definition, values = _validate("C-SSRS", answers)
    yes = [v == 1 for v in values]
    if yes[3] or yes[4] or yes[5]:
        return "high"
    if yes[2]:
        return "moderate"
    if yes[0] or yes[1]:
        return "low"
    return "none"


@dataclass(frozen=True)
class SafetyFlag:
    """Something a response says that must reach the prescriber now.

    `rule` is the alert kind, `priority` one of clinic.vocab.ALERT_PRIORITIES, `message` plain words.
    """

    rule: str
    priority: str
    message: str


PHQ9_ITEM9_WORDS = {1: "several days", 2: "more than half the days", 3: "nearly every day"}


def safety_flags(scale: str, items: Sequence[int | None]) -> list[SafetyFlag]:
    """The safety flags raised by one response (empty when none); the answers are validated as by `score`.

    - PHQ-9 item 9 (thoughts of being better off dead or of self-harm) above 0 → a high-priority
      "phq9_item9" flag, whatever the total.
    - C-SSRS screener at moderate risk → a "cssrs_risk" flag of priority "medium" (the alert vocabulary has
      high / medium / low); at high risk → priority "high". Low or no risk raises nothing.
    """
    definition, values = _validate(scale, items)
    if definition.code == "PHQ-9":
        item9 = values[8] or 0
        if item9 > 0:
            return [SafetyFlag("phq9_item9", "high",
                               f"PHQ-9 item 9 answered {item9} ({PHQ9_ITEM9_WORDS[item9]}): thoughts of self-harm "
                               "or of being better off dead. Tell the prescriber now.")]
    if definition.code == "C-SSRS":
        risk = cssrs_risk(values)
        if risk in ("moderate", "high"):
            said = [CSSRS_ITEMS[i] for i, v in enumerate(values) if v == 1]
            return [SafetyFlag("cssrs_risk", "high" if risk == "high" else "medium",
                               f"C-SSRS screen: {risk} suicide risk (yes to: {'; '.join(said)}). "
                               "Tell the prescriber now.")]
    return []


@dataclass(frozen=True)
class Assessment:
    """One response scored: its total, its band (for the C-SSRS, the risk level as a Band) and its flags."""

    scale: str
    total: int
    band: Band | None
    flags: tuple[SafetyFlag, ...]


def assess(scale: str, items: Sequence[int | None], *, pcl5_cutoff: int = PCL5_CUTOFF_DEFAULT) -> Assessment:
    """Score one response in one call: `score`, `band` (or the C-SSRS risk) and `safety_flags`."""
    total = score(scale, items)
    result = (CSSRS_RISK_BANDS[cssrs_risk(items)] if scale == "C-SSRS"
              else band(scale, total, pcl5_cutoff=pcl5_cutoff))
    return Assessment(scale, total, result, tuple(safety_flags(scale, items)))


# --- course outcomes (pandas) -------------------------------------------------------------------

SCORE_COLUMNS = ("patient_id", "course_id", "scale", "measured_at", "total", "session_number")
OUTCOME_COLUMNS = (
    "patient_id", "course_id", "scale", "n_scores",
    "baseline", "baseline_at", "baseline_session",
    "latest", "latest_at", "latest_session",
    "best", "change_pct", "best_change_pct", "response_line",
    "responded_any", "responded_latest", "sessions_to_response", "response_at",
    "remission_below", "remitted_any", "remitted_latest",
)
_KEY = ["patient_id", "course_id"]


def _empty_outcomes(scores: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="float64") for c in OUTCOME_COLUMNS})
    for c in ("patient_id", "course_id"):
        out[c] = pd.Series(dtype=scores[c].dtype)
    out["scale"] = pd.Series(dtype="object")
    out["n_scores"] = pd.Series(dtype="int64")
    for c in ("baseline_at", "latest_at", "response_at"):
        out[c] = pd.Series(dtype="datetime64[ns, UTC]")
    for c in ("responded_any", "responded_latest", "remitted_any", "remitted_latest"):
        out[c] = pd.Series(dtype="boolean")
    return out


def _prepared(scores: pd.DataFrame, definition: ScaleDefinition) -> pd.DataFrame:
    """This scale's scores with a course, typed and checked, in time order within each course."""
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"The scores need the columns {', '.join(SCORE_COLUMNS)}; missing {', '.join(missing)}.")
    df = scores.loc[(scores["scale"] == definition.code) & scores["course_id"].notna(), list(SCORE_COLUMNS)].copy()
    if df["patient_id"].isna().any():
        raise ValueError("Every score needs a patient_id.")
    try:
        measured = pd.to_datetime(df["measured_at"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"measured_at must hold timezone-aware datetimes (UTC): {exc}") from None
    if not isinstance(measured.dtype, pd.DatetimeTZDtype):
        raise ValueError("measured_at must hold timezone-aware datetimes (UTC), not naive ones.")
    if measured.isna().any():
        raise ValueError("Every score needs its measured_at.")
    df["measured_at"] = measured.dt.tz_convert("UTC")
    df["total"] = pd.to_numeric(df["total"]).astype("float64")
    bad = df[df["total"].isna() | (df["total"] < definition.total_min) | (df["total"] > definition.total_max)]
    if not bad.empty:
        row = bad.iloc[0]
        raise ValueError(f"A {definition.code} total is {definition.total_min}–{definition.total_max}; got "
                         f"{row['total']} (patient {row['patient_id']}, course {row['course_id']}).")
    df["session_number"] = pd.to_numeric(df["session_number"]).astype("float64")
    # Time order; ties in time put a score without a session first, then by session number, then the
    # lower total first: the baseline takes the lowest of tied first scores and the latest the highest of
    # tied last scores, the conservative choice at both ends (and independent of the rows' input order).
    return df.sort_values([*_KEY, "measured_at", "session_number", "total"], na_position="first",
                          ignore_index=True)


def course_outcomes(scores: pd.DataFrame, *, scale: str, remission_below: int | None = None,
                    baseline_by_session: int | None = 1) -> pd.DataFrame:
    """Response and remission per (patient_id, course_id) on one scale, computed without row loops.

    `scores` has one row per scale response: patient_id, course_id, scale, measured_at (aware, UTC),
    total, session_number (the session within the course; may be missing). Rows of other scales, and rows
    without a course, are ignored. Scores are ordered by measured_at within a course (ties: see below).

    Columns of the result (one row per course that has a score on `scale`):
    - n_scores; baseline, baseline_at, baseline_session: the course's first score, which must be before or
      at session `baseline_by_session` (1): a first score with a known session number above it leaves the
      baseline NaN (the course started being scored late, so no change, response or response line);
      `baseline_session` still shows where the first score was. Pass None to accept any first score.
    - latest, latest_at, latest_session: the last score; best: the lowest total of the course.
    - change_pct, best_change_pct: (latest − baseline) / baseline × 100 and the same for the best (negative
      is better); response_line: baseline / 2, the total at or below which a score is a response.
    - responded_any: a later score dropped at least 50 % from baseline (total ≤ baseline / 2);
      responded_latest: the latest score did; sessions_to_response, response_at: the session number and time
      of the first such score (a score without a session number counts at the last session before it; NaN
      if never or if no session number is known).
    - remission_below: the threshold (`remission_threshold(scale, remission_below)`); remitted_any: a later
      score was below it; remitted_latest: the latest score is.
    Response and remission columns are nullable booleans, NA when not judgeable: with no score after the
    baseline's time (a single score, or only scores tied with it); for response also with no valid baseline
    or a baseline of 0 (no 50 % drop is possible: change is NaN too); for remission also with no threshold,
    or when the course's first score was already below it (nothing to remit from).
    Scores at the same time as the baseline are not "later" scores. Among scores tied in time the lowest
    is the baseline and the highest the latest (conservative). Totals are floats (NaN where missing).
    Raises ValueError for an unknown scale, missing columns, naive or missing times, or a total out of range.
    """
    definition = scale_definition(scale)
    threshold = remission_threshold(scale, remission_below)
    df = _prepared(scores, definition)
    if df.empty:
        return _empty_outcomes(scores)

    groups = df.groupby(_KEY, sort=False)
    # A score without a session number counts at the last known session before it in the course.
    df["effective_session"] = groups["session_number"].ffill()
    df["baseline_total"] = groups["total"].transform("first")
    df["baseline_time"] = groups["measured_at"].transform("first")
    first = groups.head(1).set_index(_KEY)
    last = groups.tail(1).set_index(_KEY)
    index = first.index

    later = df[df["measured_at"] > df["baseline_time"]].copy()
    later["response"] = 2 * later["total"] <= later["baseline_total"]  # a drop of at least 50 %, exactly
    later_groups = later.groupby(_KEY, sort=False)
    has_later = (later_groups.size().reindex(index, fill_value=0) > 0).to_numpy()

    if baseline_by_session is None:
        baseline_ok = pd.Series(True, index=index)
    else:
        baseline_ok = first["session_number"].isna() | (first["session_number"] <= baseline_by_session)
    baseline = first["total"].where(baseline_ok)
    latest = last["total"].reindex(index)
    judge_response = has_later & baseline_ok.to_numpy() & (baseline > 0).to_numpy()

    first_response = later[later["response"]].groupby(_KEY, sort=False).head(1).set_index(_KEY).reindex(index)
    responded_any = later_groups["response"].any().reindex(index, fill_value=False).astype(bool)

    out = pd.DataFrame(index=index)
    out["scale"] = definition.code
    out["n_scores"] = groups.size().reindex(index).astype("int64")
    out["baseline"] = baseline
    out["baseline_at"] = first["measured_at"]
    out["baseline_session"] = first["session_number"]
    out["latest"] = latest
    out["latest_at"] = last["measured_at"].reindex(index)
    out["latest_session"] = last["session_number"].reindex(index)
    out["best"] = groups["total"].min().reindex(index)
    out["change_pct"] = ((latest - baseline) / baseline * 100).where(judge_response)
    out["best_change_pct"] = ((out["best"] - baseline) / baseline * 100).where(judge_response)
    out["response_line"] = (baseline / 2).where(baseline > 0)
    out["responded_any"] = responded_any.astype("boolean").where(judge_response)
    out["responded_latest"] = (2 * latest <= baseline).astype("boolean").where(judge_response)
    out["sessions_to_response"] = first_response["effective_session"].where(judge_response).astype("float64")
    out["response_at"] = first_response["measured_at"].where(judge_response)
    if threshold is None:
        out["remission_below"] = float("nan")
        out["remitted_any"] = pd.Series(pd.NA, index=index, dtype="boolean")
        out["remitted_latest"] = pd.Series(pd.NA, index=index, dtype="boolean")
    else:
        below = (later["total"] < threshold).groupby([later["patient_id"], later["course_id"]], sort=False).any()
        # Remission is judged only for a course that began at or above the threshold: one that began
        # below it has nothing to remit from (its first score need not be a valid baseline).
        judge_remission = has_later & (first["total"] >= threshold).to_numpy()
        out["remission_below"] = float(threshold)
        out["remitted_any"] = below.reindex(index, fill_value=False).astype("boolean").where(judge_remission)
        out["remitted_latest"] = (latest < threshold).astype("boolean").where(judge_remission)
    return out.reset_index()[list(OUTCOME_COLUMNS)]


def cohort_rates(outcomes: pd.DataFrame, *, at: Literal["latest", "any"] = "latest") -> dict[str, Any]:
    """Response and remission rates of a cohort of courses (rows of `course_outcomes`), with who is behind them.

    `at` chooses the end point: "latest" (the status at each course's latest score, the default) or "any"
    (at any point in the course). Courses whose status is NA (not judgeable) are left out of that figure.
    Filter `outcomes` first to choose a protocol, site or period. Returns plain Python values:
    - response_rate, responders, response_courses, response_patients;
    - remission_rate, remitters, remission_courses, remission_patients;
    - median_sessions_to_response (over the responding courses with a known session number),
      sessions_to_response_courses, sessions_to_response_patients.
    A rate or median is None when no course is behind it. `*_patients` counts distinct patients (a patient
    with two courses is one patient, two courses).
    """
    if at not in ("latest", "any"):
        raise ValueError(f"at must be 'latest' or 'any'; got {at!r}.")
    result: dict[str, Any] = {"at": at}
    for name, column, hits in (("response", f"responded_{at}", "responders"),
                               ("remission", f"remitted_{at}", "remitters")):
        status = outcomes[column].astype("boolean")
        judged = status.notna()
        n_courses = int(judged.sum())
        n_hits = int(status[judged].astype(bool).sum())
        result[f"{name}_rate"] = n_hits / n_courses if n_courses else None
        result[hits] = n_hits
        result[f"{name}_courses"] = n_courses
        result[f"{name}_patients"] = int(outcomes.loc[judged.to_numpy(), "patient_id"].nunique())
    responded = outcomes["responded_any"].astype("boolean").fillna(False).astype(bool)
    sessions = pd.to_numeric(outcomes["sessions_to_response"]).astype("float64")
    known = responded & sessions.notna()
    result["median_sessions_to_response"] = float(sessions[known].median()) if known.any() else None
    result["sessions_to_response_courses"] = int(known.sum())
    result["sessions_to_response_patients"] = int(outcomes.loc[known.to_numpy(), "patient_id"].nunique())
    return result
