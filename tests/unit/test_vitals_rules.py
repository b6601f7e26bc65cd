"""The monitoring rules of one session, worked by hand: plausibility, thresholds and sustained values,
sedation, what is due and overdue, discharge criteria, doses and the dosing gate. No database.

Unless a test says otherwise the thresholds are the clinic defaults (domain note §3): pre-dose 140/90;
during the session high above 180/110, critical above 200/120, recheck after 5 minutes; heart rate
50–120; SpO2 below 92 %; respiratory rate below 8; MOAA/S 2 or less. Dosing starts at 15:00 UTC.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinic.config import DEFAULT_CONFIG, ConfigError, VitalsCadence, load_settings
from clinic.config import Thresholds as ConfigThresholds
from clinic.sessions.protocols import spec
from clinic.vitals.models import VitalsReading
from clinic.vitals.rules import (
    PLAUSIBLE,
    UNITS,
    AlertDecision,
    Cadence,
    Criterion,
    DoseError,
    DosePlan,
    Due,
    Reading,
    Thresholds,
    alert_dedupe_key,
    discharge_criteria,
    discharge_ready,
    dose_plan,
    dosing_gate_problems,
    due_checks,
    evaluate_sedation,
    evaluate_vitals,
    nasal_device_due,
    next_due,
    overdue_alerts,
    plausibility_errors,
    prescriber_choice,
    vitals_times,
)
from clinic.vocab import ALERT_ACTIONS, ALERT_PRIORITIES

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # dosing starts
DEFAULTS = Thresholds()


def at(minutes: float) -> datetime:
    """`minutes` after dosing started (negative: before)."""
    return T0 + timedelta(minutes=minutes)


def vitals(minute: float, phase: str = "dosing", id: int | None = None, **values) -> Reading:
    return Reading(id=id, measured_at=at(minute), phase=phase, **values)


def normal(minute: float, phase: str = "dosing", id: int | None = None, **changes) -> Reading:
    """A reading with every value comfortably normal, except `changes`."""
    values = {"systolic": 128, "diastolic": 80, "heart_rate": 76, "spo2": 98, "respiratory_rate": 14} | changes
    return vitals(minute, phase, id, **values)


def rules_of(decisions: list[AlertDecision]) -> list[str]:
    return [d.rule for d in decisions]


# --- plausibility: a hard stop ------------------------------------------------------------------


def test_implausible_systolic_is_refused_with_its_unit_and_range():
    assert plausibility_errors({"systolic": 30}) == {
        "systolic": "Systolic 30 mmHg is not plausible (50–300). Check the reading."}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("diastolic", 15, "Diastolic 15 mmHg is not plausible (20–200). Check the reading."),
    ("heart_rate", 300, "Heart rate 300 bpm is not plausible (20–250). Check the reading."),
    ("spo2", 101, "SpO2 101 % is not plausible (50–100). Check the reading."),
    ("respiratory_rate", 2, "Respiratory rate 2 breaths/min is not plausible (4–60). Check the reading."),
    ("temperature_c", 44.5, "Temperature 44.5 °C is not plausible (30–43). Check the reading."),
    ("temperature_c", 29.0, "Temperature 29 °C is not plausible (30–43). Check the reading."),
    ("weight_kg", 20, "Weight 20 kg is not plausible (25–350). Check the reading."),
])
def test_each_implausible_value_is_named_with_its_unit(field, value, message):
    assert plausibility_errors({field: value}) == {field: message}


@pytest.mark.parametrize("field", sorted(PLAUSIBLE))
def test_plausible_limits_are_inclusive(field):
    lo, hi = PLAUSIBLE[field]
    assert plausibility_errors({field: lo}) == {}
    assert plausibility_errors({field: hi}) == {}
    assert field in plausibility_errors({field: lo - 1})
    assert field in plausibility_errors({field: hi + 1})


def test_every_field_has_a_unit():
    assert set(UNITS) == set(PLAUSIBLE)
    assert UNITS["systolic"] == "mmHg" and UNITS["heart_rate"] == "bpm" and UNITS["spo2"] == "%"
    assert UNITS["respiratory_rate"] == "breaths/min" and UNITS["temperature_c"] == "°C" and UNITS["weight_kg"] == "kg"


def test_plausible_limits_match_the_database_constraints():
    # The CHECK constraints of vitals_reading are the last line of defence; the two must agree.
    checks = {c.name: str(c.sqltext) for c in VitalsReading.__table_args__ if hasattr(c, "sqltext")}
    for field in ("systolic", "diastolic", "heart_rate", "spo2", "respiratory_rate", "temperature_c"):
        lo, hi = re.search(rf"{field} BETWEEN (\d+) AND (\d+)", " ".join(checks.values())).groups()
        assert PLAUSIBLE[field] == (int(lo), int(hi))


def test_diastolic_must_be_below_systolic():
    assert plausibility_errors({"systolic": 120, "diastolic": 120}) == {
        "diastolic": "Diastolic 120 mmHg must be below systolic 120 mmHg. Check the reading."}
    assert plausibility_errors({"systolic": 120, "diastolic": 119}) == {}


def test_an_implausible_systolic_is_not_also_blamed_on_the_diastolic():
    assert set(plausibility_errors({"systolic": 40, "diastolic": 60})) == {"systolic"}


def test_values_not_measured_are_skipped():
    assert plausibility_errors({"systolic": None, "diastolic": None, "spo2": None, "temperature_c": None}) == {}
    assert plausibility_errors({"systolic": None, "diastolic": 250}) == {
        "diastolic": "Diastolic 250 mmHg is not plausible (20–200). Check the reading."}


def test_fields_that_are_not_measurements_are_ignored():
    assert plausibility_errors({"client_key": 3, "before_discharge": True}) == {}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True])
def test_a_value_that_is_not_a_number_is_refused(value):
    assert plausibility_errors({"heart_rate": value}) == {
        "heart_rate": "Heart rate is not a number. Check the reading."}


@given(field=st.sampled_from(sorted(PLAUSIBLE)), value=st.floats(min_value=-1000, max_value=1000))
def test_a_single_value_is_refused_exactly_when_outside_its_range(field, value):
    lo, hi = PLAUSIBLE[field]
    assert (field in plausibility_errors({field: value})) == (not lo <= value <= hi)


@given(systolic=st.integers(50, 300), diastolic=st.integers(20, 200))
def test_a_blood_pressure_in_range_is_refused_only_when_diastolic_is_not_below_systolic(systolic, diastolic):
    errors = plausibility_errors({"systolic": systolic, "diastolic": diastolic})
    assert set(errors) == ({"diastolic"} if diastolic >= systolic else set())


# --- thresholds: config, then site, then protocol -----------------------------------------------


def test_threshold_fields_and_defaults_are_those_of_the_config():
    assert Thresholds.names() == tuple(ConfigThresholds.model_fields)
    assert Thresholds.merged(ConfigThresholds().model_dump()) == Thresholds()
    assert Thresholds.merged(ConfigThresholds()) == Thresholds()  # the pydantic section itself is accepted


def test_site_overrides_config_and_protocol_overrides_site():
    config = ConfigThresholds().model_dump()
    t = Thresholds.merged(config, {"predose_systolic_max": 150, "spo2_low": 90}, {"predose_systolic_max": 160})
    assert t.predose_systolic_max == 160  # the protocol wins
    assert t.spo2_low == 90  # the site's, the protocol says nothing
    assert t.systolic_high == 180  # the clinic's


def test_empty_or_missing_overrides_change_nothing():
    assert Thresholds.merged(ConfigThresholds().model_dump(), None, {}) == Thresholds()
    assert Thresholds.merged({}) == Thresholds()


def test_an_unknown_threshold_key_is_refused_naming_it():
    with pytest.raises(ValueError, match="sytolic_high"):
        Thresholds.merged(ConfigThresholds().model_dump(), None, {"sytolic_high": 170})
    with pytest.raises(ValueError, match="spo2_min"):
        Thresholds.merged({}, {"spo2_min": 90})


def test_a_whole_number_written_as_a_float_in_json_is_accepted():
    assert Thresholds.merged({}, {"predose_systolic_max": 150.0}).predose_systolic_max == 150


@pytest.mark.parametrize(("override", "named"), [
    ({"systolic_high": 210}, "systolic_critical"),  # high above critical (200)
    ({"diastolic_critical": 100}, "diastolic_critical"),
    ({"heart_rate_low": 130}, "heart_rate_low"),
    ({"spo2_low": 101}, "spo2_low"),
    ({"moaas_low": 6}, "moaas_low"),
    ({"sustained_recheck_minutes": 0}, "sustained_recheck_minutes"),
    ({"spo2_low": 91.5}, "spo2_low"),
    ({"spo2_low": "90"}, "spo2_low"),
])
def test_contradictory_or_malformed_thresholds_are_refused(override, named):
    with pytest.raises(ValueError, match=named):
        Thresholds.merged({}, override)


def _config_with_site_thresholds(tmp_path: Path, inline: str) -> Path:
    text = DEFAULT_CONFIG.read_text().replace('closed_days = ["2026-12-25", "2027-01-01"]',
                                              f'closed_days = ["2026-12-25", "2027-01-01"]\nthresholds = {inline}', 1)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_site_may_override_thresholds_in_config(tmp_path: Path):
    s = load_settings(_config_with_site_thresholds(tmp_path, "{ spo2_low = 90 }"), env={})
    assert s.sites[0].thresholds == {"spo2_low": 90}
    assert s.sites[1].thresholds == {}
    assert Thresholds.merged(s.thresholds.model_dump(), s.sites[0].thresholds).spo2_low == 90


def test_an_unknown_site_threshold_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"sites\.0\.thresholds: .*spo2_min"):
        load_settings(_config_with_site_thresholds(tmp_path, "{ spo2_min = 90 }"), env={})


# --- blood pressure before dosing ---------------------------------------------------------------


def test_infusion_is_held_when_predose_systolic_exceeds_limit():
    [d] = evaluate_vitals(normal(-10, "baseline", id=4, systolic=152, diastolic=88), [], DEFAULTS)
    assert (d.rule, d.priority, d.cause_id, d.suggested_action) == ("predose_bp_high", "medium", 4, "prescriber_called")
    assert d.message == ("Pre-dose blood pressure 152/88 mmHg is above the systolic limit 140 mmHg. "
                         "Hold dosing: a prescriber decides whether to dose.")


def test_infusion_is_held_when_predose_diastolic_exceeds_limit():
    [d] = evaluate_vitals(normal(-10, "baseline", systolic=138, diastolic=91), [], DEFAULTS)
    assert d.rule == "predose_bp_high" and "diastolic limit 90 mmHg" in d.message and "138/91 mmHg" in d.message


def test_predose_blood_pressure_at_the_limit_is_not_held():
    assert evaluate_vitals(normal(-10, "baseline", systolic=140, diastolic=90), [], DEFAULTS) == []


def test_a_protocol_may_raise_the_predose_limit():
    t = Thresholds.merged({}, None, {"predose_systolic_max": 150})
    assert evaluate_vitals(normal(-10, "baseline", systolic=148, diastolic=88), [], t) == []
    assert rules_of(evaluate_vitals(normal(-10, "baseline", systolic=151, diastolic=88), [], t)) == ["predose_bp_high"]


def test_a_baseline_reading_raises_only_the_predose_gate():
    # Even a critical pressure before dosing is a hold for the prescriber, not an "act now" alert; the
    # other vital signs are judged once dosing has begun (the gate reads any baseline alert as a BP hold).
    reading = normal(-10, "baseline", systolic=210, diastolic=125, heart_rate=130, spo2=90, respiratory_rate=6)
    assert rules_of(evaluate_vitals(reading, [], DEFAULTS)) == ["predose_bp_high"]


# --- blood pressure during the session -----------------------------------------------------------


def test_critical_systolic_during_the_infusion_means_act_now():
    [d] = evaluate_vitals(normal(20, id=9, systolic=201, diastolic=100), [], DEFAULTS)
    assert (d.rule, d.priority, d.cause_id, d.suggested_action) == ("bp_critical", "high", 9, "pause_or_slow")
    assert d.message == ("Blood pressure 201/100 mmHg is above the critical systolic limit 200 mmHg. "
                         "Act now: pause the infusion and call the prescriber.")


def test_critical_diastolic_alone_is_critical():
    [d] = evaluate_vitals(normal(20, systolic=150, diastolic=121), [], DEFAULTS)
    assert d.rule == "bp_critical" and "diastolic limit 120 mmHg" in d.message


def test_critical_blood_pressure_in_recovery_calls_the_prescriber():
    [d] = evaluate_vitals(normal(60, "recovery", systolic=205, diastolic=125), [], DEFAULTS)
    assert d.rule == "bp_critical" and d.suggested_action == "prescriber_called"
    assert "systolic limit 200 mmHg and diastolic limit 120 mmHg" in d.message
    assert d.message.endswith("Act now: call the prescriber.")


def test_critical_is_not_also_reported_as_high():
    earlier = [normal(15, systolic=190, diastolic=100)]
    assert rules_of(evaluate_vitals(normal(20, systolic=210, diastolic=100), earlier, DEFAULTS)) == ["bp_critical"]


def test_first_high_blood_pressure_asks_for_a_recheck_in_five_minutes():
    [d] = evaluate_vitals(normal(20, id=11, systolic=186, diastolic=104), [normal(10)], DEFAULTS)
    assert (d.rule, d.priority, d.suggested_action) == ("bp_high", "medium", "continue_recheck")
    assert d.message == ("Blood pressure 186/104 mmHg is above the systolic limit 180 mmHg. "
                         "Recheck in 5 minutes; if it is still high, act.")


@pytest.mark.parametrize(("systolic", "diastolic", "expected"), [
    (180, 110, []),  # at the limits: fine
    (181, 90, ["bp_high"]),
    (170, 111, ["bp_high"]),
    (200, 120, ["bp_high"]),  # at the critical limits: high, not critical
    (200, 121, ["bp_critical"]),
    (201, 80, ["bp_critical"]),
])
def test_blood_pressure_limits_during_the_session(systolic, diastolic, expected):
    assert rules_of(evaluate_vitals(normal(20, systolic=systolic, diastolic=diastolic), [], DEFAULTS)) == expected


def test_high_blood_pressure_still_high_five_minutes_later_is_sustained():
    first = normal(15, id=1, systolic=185, diastolic=95)
    [d] = evaluate_vitals(normal(20, id=2, systolic=184, diastolic=96), [first], DEFAULTS)
    assert (d.rule, d.priority, d.cause_id, d.suggested_action) == ("bp_high_sustained", "high", 2, "pause_or_slow")
    assert d.message == ("Blood pressure still high: 184/96 mmHg now and 185/95 mmHg 5 minutes earlier, above the "
                         "systolic limit 180 mmHg. Act: slow or pause the infusion and call the prescriber.")


@pytest.mark.parametrize(("gap_seconds", "expected"), [
    (2 * 60, "bp_high"),  # rechecked too soon: not yet sustained
    (3 * 60 + 59, "bp_high"),
    (4 * 60, "bp_high_sustained"),  # a "5 minute" recheck taken at 4 counts (sustained_recheck_minutes − 1)
    (5 * 60, "bp_high_sustained"),
    (20 * 60, "bp_high_sustained"),  # still one episode
    (20 * 60 + 1, "bp_high"),  # too long ago: a new episode, recheck again
])
def test_sustained_blood_pressure_depends_on_the_gap(gap_seconds, expected):
    now = normal(30, systolic=190, diastolic=100)
    earlier = Reading(None, now.measured_at - timedelta(seconds=gap_seconds), "dosing", 188, 98, 80, 97, 14)
    assert rules_of(evaluate_vitals(now, [earlier], DEFAULTS)) == [expected]


def test_a_normal_reading_in_between_breaks_the_episode():
    earlier = [normal(10, systolic=190, diastolic=100), normal(13, systolic=150, diastolic=90)]
    assert rules_of(evaluate_vitals(normal(16, systolic=190, diastolic=100), earlier, DEFAULTS)) == ["bp_high"]


def test_readings_without_blood_pressure_do_not_break_the_episode():
    earlier = [normal(10, systolic=190, diastolic=100), vitals(13, heart_rate=80, spo2=97)]
    assert rules_of(evaluate_vitals(normal(15, systolic=190, diastolic=100), earlier, DEFAULTS)) == [
        "bp_high_sustained"]


def test_an_unbroken_run_of_high_readings_is_sustained_even_if_the_last_recheck_was_quick():
    # High at 10, 13 and 15: the latest earlier one is only 2 minutes old, but the pressure has been
    # high since 10, i.e. for 5 minutes.
    earlier = [normal(10, systolic=190, diastolic=100), normal(13, systolic=188, diastolic=100)]
    [d] = evaluate_vitals(normal(15, systolic=186, diastolic=100), earlier, DEFAULTS)
    assert d.rule == "bp_high_sustained" and "190/100 mmHg 5 minutes earlier" in d.message


def test_an_earlier_critical_reading_counts_as_high():
    earlier = [normal(15, systolic=205, diastolic=100)]
    assert rules_of(evaluate_vitals(normal(20, systolic=185, diastolic=100), earlier, DEFAULTS)) == [
        "bp_high_sustained"]


def test_a_high_baseline_followed_by_a_high_reading_on_dosing_is_sustained():
    earlier = [normal(-8, "baseline", systolic=184, diastolic=96)]
    assert rules_of(evaluate_vitals(normal(10, systolic=186, diastolic=98), earlier, DEFAULTS)) == [
        "bp_high_sustained"]


def test_sustained_in_recovery_calls_the_prescriber():
    [d] = evaluate_vitals(normal(60, "recovery", systolic=185, diastolic=100),
                          [normal(55, "recovery", systolic=185, diastolic=100)], DEFAULTS)
    assert d.rule == "bp_high_sustained" and d.suggested_action == "prescriber_called"
    assert d.message.endswith("Act: call the prescriber.")


def test_readings_measured_after_the_one_evaluated_are_ignored():
    # A reading entered late (measured at 20) is judged on what came before it, not on what came after.
    later = normal(24, systolic=190, diastolic=100)
    assert rules_of(evaluate_vitals(normal(20, systolic=190, diastolic=100), [later], DEFAULTS)) == ["bp_high"]


def test_the_reading_itself_among_the_earlier_ones_is_ignored():
    reading = normal(20, id=7, systolic=190, diastolic=100)
    same_row = Reading(7, at(15), "dosing", 190, 100)  # same id (e.g. loaded again with another time)
    assert rules_of(evaluate_vitals(reading, [reading, same_row], DEFAULTS)) == ["bp_high"]


def test_the_order_of_earlier_readings_does_not_matter():
    earlier = [normal(m, systolic=185, diastolic=100) for m in (0, 5, 10)] + [normal(12)]
    for seed in range(5):
        shuffled = earlier[:]
        random.Random(seed).shuffle(shuffled)
        assert rules_of(evaluate_vitals(normal(17, systolic=185, diastolic=100), shuffled, DEFAULTS)) == ["bp_high"]
    assert rules_of(evaluate_vitals(normal(17, systolic=185, diastolic=100), earlier[:3], DEFAULTS)) == [
        "bp_high_sustained"]


def test_a_longer_recheck_interval_needs_a_longer_episode():
    t = Thresholds.merged({}, {"sustained_recheck_minutes": 10})
    now = normal(30, systolic=190, diastolic=100)
    assert rules_of(evaluate_vitals(now, [normal(22, systolic=190, diastolic=100)], t)) == ["bp_high"]
    assert rules_of(evaluate_vitals(now, [normal(21, systolic=190, diastolic=100)], t)) == ["bp_high_sustained"]
    assert "Recheck in 10 minutes" in evaluate_vitals(now, [], t)[0].message


# --- heart rate, SpO2, respiratory rate ----------------------------------------------------------


def test_slow_heart_rate():
    [d] = evaluate_vitals(normal(20, heart_rate=48), [], DEFAULTS)
    assert (d.rule, d.priority, d.suggested_action) == ("hr_low", "medium", "prescriber_called")
    assert d.message == "Heart rate 48 bpm is below 50 bpm. Check the patient and call the prescriber."


def test_fast_heart_rate_once_asks_for_a_recheck():
    [d] = evaluate_vitals(normal(20, heart_rate=128), [], DEFAULTS)
    assert (d.rule, d.priority, d.suggested_action) == ("hr_high", "low", "continue_recheck")
    assert d.message == "Heart rate 128 bpm is above 120 bpm. Recheck in 5 minutes."


def test_fast_heart_rate_sustained_five_minutes():
    [d] = evaluate_vitals(normal(25, heart_rate=125), [normal(20, heart_rate=130)], DEFAULTS)
    assert (d.rule, d.priority, d.suggested_action) == ("hr_high_sustained", "medium", "prescriber_called")
    assert d.message == ("Heart rate still above 120 bpm: 125 bpm now and 130 bpm 5 minutes earlier. "
                         "Tell the prescriber.")


@pytest.mark.parametrize(("earlier", "expected"), [
    ([normal(22, heart_rate=130)], ["hr_high"]),  # 3 minutes: too soon
    ([normal(21, heart_rate=130)], ["hr_high_sustained"]),  # 4 minutes
    ([normal(4, heart_rate=130)], ["hr_high"]),  # 21 minutes: a new episode
    ([normal(21, heart_rate=110)], ["hr_high"]),  # the earlier one was not fast
    ([normal(20, heart_rate=130), vitals(23, systolic=150, diastolic=90)], ["hr_high_sustained"]),  # BP-only between
])
def test_sustained_heart_rate(earlier, expected):
    assert rules_of(evaluate_vitals(normal(25, heart_rate=125), earlier, DEFAULTS)) == expected


@pytest.mark.parametrize(("values", "expected"), [
    ({"heart_rate": 50}, []),
    ({"heart_rate": 120}, []),
    ({"spo2": 92}, []),
    ({"spo2": 91}, ["spo2_low"]),
    ({"respiratory_rate": 8}, []),
    ({"respiratory_rate": 7}, ["rr_low"]),
])
def test_limits_are_crossed_only_beyond_them(values, expected):
    assert rules_of(evaluate_vitals(normal(20, **values), [], DEFAULTS)) == expected


def test_low_spo2_is_high_priority():
    [d] = evaluate_vitals(normal(20, id=3, spo2=89), [], DEFAULTS)
    assert (d.rule, d.priority, d.cause_id, d.suggested_action) == ("spo2_low", "high", 3, "pause_or_slow")
    assert d.message.startswith("SpO2 89 % is below 92 %. Act now:")


def test_a_clinic_may_set_spo2_low_at_90():
    t = Thresholds.merged({}, {"spo2_low": 90})
    assert evaluate_vitals(normal(20, spo2=91), [], t) == []
    assert rules_of(evaluate_vitals(normal(20, spo2=89), [], t)) == ["spo2_low"]


def test_slow_breathing_is_high_priority():
    [d] = evaluate_vitals(normal(60, "recovery", respiratory_rate=6), [], DEFAULTS)
    assert (d.rule, d.priority, d.suggested_action) == ("rr_low", "high", "prescriber_called")
    assert d.message.startswith("Respiratory rate 6 breaths/min is below 8 breaths/min. Act now:")


def test_several_findings_come_most_urgent_first():
    reading = normal(20, systolic=186, diastolic=100, heart_rate=126, spo2=88)
    assert rules_of(evaluate_vitals(reading, [], DEFAULTS)) == ["spo2_low", "bp_high", "hr_high"]


def test_a_partial_reading_is_judged_on_what_was_measured():
    assert rules_of(evaluate_vitals(vitals(20, spo2=90), [], DEFAULTS)) == ["spo2_low"]
    assert rules_of(evaluate_vitals(vitals(20, systolic=185), [], DEFAULTS)) == ["bp_high"]
    assert evaluate_vitals(vitals(20), [], DEFAULTS) == []


def test_discharge_phase_readings_are_judged_like_recovery():
    assert rules_of(evaluate_vitals(normal(80, "discharge", systolic=202), [], DEFAULTS)) == ["bp_critical"]


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase"):
        evaluate_vitals(normal(20, "peak"), [], DEFAULTS)


def test_alert_decisions_use_the_clinic_vocabulary():
    with pytest.raises(ValueError):
        AlertDecision("x", "urgent", "m", None, "continue_recheck")
    with pytest.raises(ValueError):
        AlertDecision("x", "high", "m", None, "panic")


def test_reading_from_a_row():
    row = VitalsReading(id=5, session_id=1, patient_id=1, phase="dosing", measured_at=at(10), recorded_by_id=1,
                        systolic=150, diastolic=90, heart_rate=80, client_key="k" * 8)
    r = Reading.from_row(row)
    assert r == Reading(5, at(10), "dosing", 150, 90, 80, None, None, None)
    assert r.bp == "150/90 mmHg" and r.has_bp
    assert vitals(1, systolic=150).bp == "150/– mmHg"


_in_normal_range = st.fixed_dictionaries({
    "systolic": st.integers(90, 180), "diastolic": st.integers(50, 89), "heart_rate": st.integers(50, 120),
    "spo2": st.integers(92, 100), "respiratory_rate": st.integers(8, 30)})
_any_plausible = st.fixed_dictionaries({
    "systolic": st.none() | st.integers(50, 300), "diastolic": st.none() | st.integers(20, 200),
    "heart_rate": st.none() | st.integers(20, 250), "spo2": st.none() | st.integers(50, 100),
    "respiratory_rate": st.none() | st.integers(4, 60)})


@given(values=_in_normal_range, phase=st.sampled_from(["dosing", "recovery", "discharge"]),
       earlier=st.lists(_any_plausible, max_size=4))
def test_normal_vitals_never_raise_an_alert(values, phase, earlier):
    history = [vitals(10 + i, phase, **v) for i, v in enumerate(earlier)]
    assert evaluate_vitals(vitals(20, phase, **values), history, DEFAULTS) == []


@given(values=_any_plausible, phase=st.sampled_from(["dosing", "recovery", "discharge"]),
       earlier=st.lists(st.tuples(st.integers(0, 40), _any_plausible), max_size=5))
def test_every_alert_is_well_formed_and_rules_do_not_repeat(values, phase, earlier):
    history = [vitals(m, phase, **v) for m, v in earlier]
    decisions = evaluate_vitals(vitals(40, phase, id=1, **values), history, DEFAULTS)
    assert len(set(rules_of(decisions))) == len(decisions)
    assert [d.priority for d in decisions] == sorted((d.priority for d in decisions),
                                                     key=["high", "medium", "low"].index)
    for d in decisions:
        assert d.priority in ALERT_PRIORITIES and d.suggested_action in ALERT_ACTIONS and d.cause_id == 1
        assert "predose" not in d.rule
    bp = [r for r in rules_of(decisions) if r.startswith("bp_")]
    assert len(bp) <= 1  # critical, sustained and high exclude each other
    s, d_ = values["systolic"], values["diastolic"]
    if (s or 0) > 200 or (d_ or 0) > 120:
        assert bp == ["bp_critical"]


# --- sedation ------------------------------------------------------------------------------------


def test_moaas_zero_is_an_emergency():
    [d] = evaluate_sedation(0, DEFAULTS, cause_id=12)
    assert (d.rule, d.priority, d.cause_id, d.suggested_action) == ("unresponsive", "high", 12, "stop")
    assert "no response" in d.message and "loss of consciousness" in d.message and "Emergency" in d.message


@pytest.mark.parametrize(("moaas", "expected"), [(1, ["sedation_deep"]), (2, ["sedation_deep"]), (3, []), (4, []),
                                                  (5, [])])
def test_deep_sedation_at_or_below_the_limit(moaas, expected):
    assert rules_of(evaluate_sedation(moaas, DEFAULTS)) == expected


def test_deep_sedation_message_says_what_the_score_means():
    [d] = evaluate_sedation(2, DEFAULTS)
    assert d.priority == "high" and d.suggested_action == "pause_or_slow" and d.cause_id is None
    assert d.message.startswith("MOAA/S 2 (responds only to mild prodding or shaking)")


def test_the_sedation_limit_is_configurable():
    assert rules_of(evaluate_sedation(3, Thresholds.merged({}, {"moaas_low": 3}))) == ["sedation_deep"]
    assert rules_of(evaluate_sedation(0, Thresholds.merged({}, {"moaas_low": 0}))) == ["unresponsive"]


@pytest.mark.parametrize("moaas", [-1, 6, 2.5, True])
def test_a_moaas_outside_0_to_5_is_refused(moaas):
    with pytest.raises(ValueError):
        evaluate_sedation(moaas, DEFAULTS)


def test_alert_dedupe_key():
    assert alert_dedupe_key("bp_high", "vitals_reading", 17) == "bp_high:vitals_reading:17"


# --- cadence -------------------------------------------------------------------------------------

IV = Cadence.from_json(spec("iv-induction").cadence, VitalsCadence())
NASAL = Cadence.from_json(spec("esketamine-nasal").cadence, VitalsCadence())
IM = Cadence.from_json(spec("im-ketamine").cadence, VitalsCadence())


def test_cadence_from_a_protocol():
    expected = Cadence(baseline=True, dosing_every_minutes=10, recovery_every_minutes=15, at_minutes=[],
                       discharge=True, observation_from="dosing_end",
                       scores={"CADSS-6": ["baseline", 40, "discharge"], "MOAA/S": ["baseline", 40, "discharge"]},
                       grace_minutes=5)
    assert expected == IV
    assert IV.grace == 5
    assert NASAL.dosing_every_minutes is None and NASAL.at_minutes == [40] and NASAL.observation_from == "dosing_start"


def test_cadence_keys_left_out_take_the_clinic_defaults():
    c = Cadence.from_json({}, VitalsCadence(dosing_every_minutes=12, recovery_every_minutes=20,
                                            overdue_grace_minutes=7))
    assert (c.baseline, c.dosing_every_minutes, c.recovery_every_minutes, c.grace_minutes) == (True, 12, 20, 7)
    assert (c.at_minutes, c.discharge, c.observation_from, c.scores) == ([], True, "dosing_end", {})


def test_an_explicit_null_interval_means_no_periodic_checks():
    c = Cadence.from_json({"dosing_every_minutes": None}, {"dosing_every_minutes": 15, "recovery_every_minutes": 15,
                                                           "overdue_grace_minutes": 5})
    assert c.dosing_every_minutes is None and c.recovery_every_minutes == 15


@pytest.mark.parametrize(("cadence", "named"), [
    ({"observation_from": "arrival"}, "observation_from"),
    ({"scores": {"CADSS-7": [40]}}, "CADSS-7"),
    ({"scores": {"CADSS-6": ["later"]}}, "scores.CADSS-6"),
    ({"at_minutes": [0]}, "at_minutes"),
    ({"dosing_every_minutes": "10"}, "dosing_every_minutes"),
])
def test_a_malformed_cadence_is_refused(cadence, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        Cadence.from_json(cadence, VitalsCadence())


def minutes_of(times: list[datetime]) -> list[float]:
    return [(t - T0).total_seconds() / 60 for t in times]


def test_iv_vitals_every_10_minutes_while_dosing_then_every_15():
    times = vitals_times(IV, dosing_start=T0, dosing_end=at(40), until=at(100))
    assert minutes_of(times) == [10, 20, 30, 40, 55, 70, 85, 100]


def test_the_end_of_an_infusion_is_a_check_when_the_interval_does_not_fall_on_it():
    c = Cadence(dosing_every_minutes=15, recovery_every_minutes=15)
    assert minutes_of(vitals_times(c, dosing_start=T0, dosing_end=at(40), until=at(70))) == [15, 30, 40, 55, 70]


def test_an_end_within_5_minutes_of_a_dosing_check_is_the_same_check():
    times = vitals_times(IV, dosing_start=T0, dosing_end=at(41), until=at(75))
    assert minutes_of(times) == [10, 20, 30, 40, 56, 71]


def test_dosing_checks_run_on_while_dosing_has_no_end():
    assert minutes_of(vitals_times(IV, dosing_start=T0, dosing_end=None, until=at(60))) == [10, 20, 30, 40, 50, 60]


def test_spravato_vitals_at_40_minutes_then_every_30():
    # No checks during the 10 minutes of devices; recovery every 30 from the end (10) gives 40, which is
    # also the fixed 40-minute check.
    times = vitals_times(NASAL, dosing_start=T0, dosing_end=at(10), until=at(130))
    assert minutes_of(times) == [40, 70, 100, 130]


def test_im_vitals_every_15_minutes_after_the_injection():
    assert minutes_of(vitals_times(IM, dosing_start=T0, dosing_end=at(5), until=at(50))) == [20, 35, 50]


def test_fixed_checks_merge_with_periodic_ones_within_5_minutes():
    c = Cadence(dosing_every_minutes=10, recovery_every_minutes=15, at_minutes=[25, 42, 47])
    # 25 is 5 minutes from 20 and 30: kept; 42 is 2 from 40: merged; 47 is 7 from 40 and 8 from 55: kept
    assert minutes_of(vitals_times(c, dosing_start=T0, dosing_end=at(40), until=at(55))) == [
        10, 20, 25, 30, 40, 47, 55]


def test_fixed_checks_while_dosing_has_no_end():
    assert minutes_of(vitals_times(NASAL, dosing_start=T0, dosing_end=None, until=at(240))) == [40]


def due(c: Cadence = IV, *, now: float, start: float | None = 0, end: float | None = 40,
        vitals: list[float] = (), scores: dict[str, list[float]] | None = None, horizon: int = 240) -> list[Due]:
    return due_checks(c, dosing_start=None if start is None else at(start), dosing_end=None if end is None else at(end),
                      now=at(now), vitals_at=[at(m) for m in vitals],
                      scores_at={k: [at(m) for m in v] for k, v in (scores or {}).items()}, horizon_minutes=horizon)


def brief(items: list[Due]) -> list[tuple[str, float, bool]]:
    """(label, minutes after dosing start, overdue) of each item."""
    return [(d.label, (d.due_at - T0).total_seconds() / 60, d.overdue) for d in items]


def test_before_dosing_only_the_baseline_items_are_due_now():
    items = due(now=-12, start=None, end=None)
    assert items == [Due("vitals", "Baseline vitals", at(-12), False, "baseline"),
                     Due("CADSS-6", "Baseline CADSS-6", at(-12), False, "baseline"),
                     Due("MOAA/S", "Baseline MOAA/S", at(-12), False, "baseline")]


def test_baseline_items_done_are_no_longer_due():
    items = due(now=-5, start=None, end=None, vitals=[-10], scores={"CADSS-6": [-8]})
    assert brief(items) == [("Baseline MOAA/S", -5, False)]
    assert due(now=-5, start=None, end=None, vitals=[-10], scores={"CADSS-6": [-8], "MOAA/S": [-8]}) == []


def test_baseline_items_are_never_overdue():
    assert all(not d.overdue for d in due(now=-200, start=None, end=None))


def test_a_planned_start_still_in_the_future_counts_as_not_started():
    assert brief(due(now=-3, start=0, end=None)) == [("Baseline vitals", -3, False), ("Baseline CADSS-6", -3, False),
                                                    ("Baseline MOAA/S", -3, False)]


def test_five_minutes_into_an_iv_infusion():
    # Baseline taken at 14:50. Next: vitals at 15:10, CADSS-6 and MOAA/S at 15:40.
    items = due(now=5, end=None, vitals=[-10], scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    assert items == [Due("vitals", "Vitals", at(10), False, 10),
                     Due("CADSS-6", "CADSS-6 at 40 min", at(40), False, 40),
                     Due("MOAA/S", "MOAA/S at 40 min", at(40), False, 40)]


def test_vitals_become_overdue_after_the_grace_period():
    assert brief(due(now=15, end=None, vitals=[-10]))[0] == ("Vitals", 10, False)  # 15:15 is 15:10 + 5: not yet
    items = due(now=16, end=None, vitals=[-10])
    assert brief(items)[:2] == [("Vitals", 10, True), ("Vitals", 20, False)]


def test_only_the_next_vitals_check_is_listed_not_the_whole_afternoon():
    items = [d for d in due(now=1, end=40, vitals=[-10]) if d.kind == "vitals"]
    assert brief(items) == [("Vitals", 10, False)]


def test_a_reading_up_to_3_minutes_early_satisfies_the_check():
    assert brief(due(now=9, end=None, vitals=[-10, 7]))[0] == ("Vitals", 20, False)
    assert brief(due(now=9, end=None, vitals=[-10, 6.9]))[0] == ("Vitals", 10, False)  # too early


def test_a_late_reading_satisfies_the_check_it_was_late_for():
    # 15:18 is in the window of 15:10 ([15:07, 15:20)) and, being within 3 minutes of 15:20, in its window too.
    assert brief(due(now=19, end=None, vitals=[-10, 18]))[0] == ("Vitals", 30, False)
    # 15:16 satisfies 15:10 only
    assert brief(due(now=19, end=None, vitals=[-10, 16]))[0] == ("Vitals", 20, False)


def test_a_missed_check_is_superseded_by_a_later_reading():
    # Nothing near 15:10; a reading at 15:21 counts for 15:20. The 15:10 check was missed (its overdue
    # alert was raised at 15:16) and is no longer listed.
    assert brief(due(now=22, end=None, vitals=[-10, 21])) == [("Vitals", 30, False), ("CADSS-6 at 40 min", 40, False),
                                                             ("MOAA/S at 40 min", 40, False)]


def test_every_missed_check_stays_overdue_until_a_reading_is_taken():
    items = due(now=36, end=None, vitals=[-10], scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    assert brief(items) == [("Vitals", 10, True), ("Vitals", 20, True), ("Vitals", 30, True), ("Vitals", 40, False),
                            ("CADSS-6 at 40 min", 40, False), ("MOAA/S at 40 min", 40, False)]


def test_end_of_infusion_scores_and_vitals_fall_due_together():
    history = [-10, 10, 20, 30]
    items = due(now=45, end=40, vitals=history, scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    assert brief(items) == [("Vitals", 40, False), ("CADSS-6 at 40 min", 40, False), ("MOAA/S at 40 min", 40, False)]
    items = due(now=46, end=40, vitals=history, scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    assert brief(items) == [("Vitals", 40, True), ("CADSS-6 at 40 min", 40, True), ("MOAA/S at 40 min", 40, True),
                            ("Vitals", 55, False)]


def test_a_score_taken_up_to_3_minutes_early_counts():
    base = {"CADSS-6": [-9, 37], "MOAA/S": [-9, 36.5]}
    assert [d.label for d in due(now=38, end=None, vitals=[-10, 10, 20, 30], scores=base)] == [
        "Vitals", "MOAA/S at 40 min"]


def test_the_last_check_is_satisfied_by_any_later_reading():
    c = Cadence(dosing_every_minutes=None, recovery_every_minutes=None, at_minutes=[40], scores={})
    assert brief(due(c, now=44, end=10, vitals=[-10])) == [("Vitals", 40, False)]
    assert due(c, now=90, end=10, vitals=[-10, 85]) == []


def test_nothing_is_due_after_the_horizon():
    # A session left open: recovery checks stop 240 minutes after dosing began (the last at 18:55).
    items = due(now=400, end=40, vitals=[-10, 10, 20, 30], scores={"CADSS-6": [-9, 40], "MOAA/S": [-9, 40]})
    assert [m for _, m, _ in brief(items)] == [40 + 15 * k for k in range(14)]
    assert all(d.overdue for d in items)
    assert due(now=400, end=40, vitals=[-10, 10, 20, 30], scores={"CADSS-6": [40], "MOAA/S": [40]}, horizon=60) == [
        d for d in items if d.due_at <= at(60)]


def test_spravato_session_after_the_last_device():
    items = due(NASAL, now=12, end=10, vitals=[-10], scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    assert brief(items) == [("Vitals", 40, False), ("CADSS-6 at 40 min", 40, False), ("MOAA/S at 40 min", 40, False)]
    assert items[0].point == 40


def test_next_due_is_the_most_pressing_item():
    assert next_due(IV, dosing_start=T0, dosing_end=None, now=at(16), vitals_at=[at(-10)],
                    scores_at={}) == Due("vitals", "Vitals", at(10), True, 10)
    assert next_due(IV, dosing_start=None, dosing_end=None, now=at(-5), vitals_at=[at(-10)],
                    scores_at={"CADSS-6": [at(-9)], "MOAA/S": [at(-9)]}) is None


@settings(max_examples=60, deadline=None)
@given(now=st.integers(0, 240), end=st.none() | st.integers(20, 60), every=st.sampled_from([None, 5, 10, 15]),
       recovery=st.sampled_from([None, 15, 30]))
def test_a_reading_taken_at_every_due_time_leaves_nothing_overdue(now, end, every, recovery):
    c = Cadence(dosing_every_minutes=every, recovery_every_minutes=recovery, at_minutes=[40], scores={})
    times = vitals_times(c, dosing_start=T0, dosing_end=None if end is None else at(end), until=at(now))
    items = due_checks(c, dosing_start=T0, dosing_end=None if end is None else at(end), now=at(now),
                       vitals_at=times, scores_at={})
    assert not any(d.overdue for d in items)
    assert len(items) <= 1 and all(d.due_at > at(now) for d in items)


@settings(max_examples=60, deadline=None)
@given(now=st.integers(0, 300), readings=st.lists(st.integers(-20, 300), max_size=12))
def test_due_items_are_sorted_with_at_most_one_upcoming_vitals_check(now, readings):
    taken = [m for m in readings if m <= now]
    items = due(now=now, end=40, vitals=taken, scores={"CADSS-6": [m for m in taken if m > 30]})
    assert [d.due_at for d in items] == sorted(d.due_at for d in items)
    assert sum(1 for d in items if d.kind == "vitals" and not d.overdue) <= 1
    for d in items:
        assert d.overdue == (at(now) > d.due_at + timedelta(minutes=5))
        assert not any(d.due_at - timedelta(minutes=3) <= at(m) <= d.due_at for m in taken if d.kind == "vitals")


def test_overdue_alerts_one_per_vitals_time_and_one_per_score_time():
    items = due(now=46, end=40, vitals=[-10, 10, 20, 30], scores={"CADSS-6": [-9], "MOAA/S": [-9]})
    alerts = overdue_alerts(items, session_id=9)
    # 15:40 UTC on 23 November 2026 is 1795448400 seconds after the epoch
    assert [key for key, _ in alerts] == ["vitals_overdue:treatment_session:9:1795448400",
                                          "score_overdue:treatment_session:9:1795448400"]
    vitals_alert, score_alert = (d for _, d in alerts)
    assert vitals_alert == AlertDecision("vitals_overdue", "medium",
                                         "Vitals overdue: they were due 40 minutes after dosing began.", 9,
                                         "continue_recheck")
    assert score_alert.rule == "score_overdue" and score_alert.priority == "medium"
    assert score_alert.message == "CADSS-6 and MOAA/S overdue: were due 40 minutes after dosing began."


def test_overdue_alerts_keep_their_key_on_every_sweep():
    first = overdue_alerts(due(now=16, end=None, vitals=[-10]), session_id=3)
    later = overdue_alerts(due(now=19, end=None, vitals=[-10]), session_id=3)
    assert [k for k, _ in first] == [k for k, _ in later] == ["vitals_overdue:treatment_session:3:1795446600"]


def test_nothing_overdue_raises_nothing():
    assert overdue_alerts(due(now=5, end=None, vitals=[-10]), session_id=3) == []
    assert overdue_alerts([], session_id=3) == []


# --- discharge -----------------------------------------------------------------------------------

END = at(40)  # the infusion ended at 15:40
BASELINE = Reading(1, at(-10), "baseline", 128, 80, 72, 98, 14, 36.6)


def criteria(**changes) -> list[Criterion]:
    """Criteria at 16:25 (45 minutes after the infusion ended) with everything in order, except `changes`."""
    values = dict(now=END + timedelta(minutes=45), observation_from=END, min_observation_minutes=30,
                  latest_vitals=Reading(8, END + timedelta(minutes=41), "discharge", 132, 84, 78, 98, 14),
                  baseline_vitals=BASELINE, t=DEFAULTS, latest_moaas=5, baseline_cadss=1, latest_cadss=2,
                  nausea_controlled=True, escort_present=True, instructions_given=True) | changes
    return discharge_criteria(**values)


def criterion(code: str, **changes) -> Criterion:
    return next(c for c in criteria(**changes) if c.code == code)


def test_all_criteria_met_in_their_order():
    result = criteria()
    assert [c.code for c in result] == ["min_observation", "vitals_back", "moaas_5", "dissociation_resolved",
                                        "nausea_controlled", "escort_present", "instructions_given"]
    assert all(c.met for c in result) and discharge_ready(result)
    assert result[0] == Criterion("min_observation", "Minimum observation time", True,
                                  "45 of 30 minutes since the infusion ended.")
    assert result[1].evidence == ("BP 132/84 mmHg, HR 78 bpm, SpO2 98 %, RR 14 breaths/min, measured 4 minutes ago "
                                  "(baseline BP 128/80 mmHg).")
    assert result[2].evidence == "MOAA/S 5."
    assert result[3].evidence == "CADSS-6 2 (baseline 1; needs 2 or less)."
    assert [c.evidence for c in result[4:]] == ["Yes.", "Yes.", "Yes."]


@pytest.mark.parametrize(("minutes", "met"), [(29, False), (30, True), (31, True)])
def test_minimum_observation_time(minutes, met):
    c = criterion("min_observation", now=END + timedelta(minutes=minutes, seconds=30 if minutes == 29 else 0))
    assert c.met is met and c.evidence == f"{minutes} of 30 minutes since the infusion ended."


def test_observation_counted_from_the_first_spravato_device():
    c = criterion("min_observation", now=at(119), observation_from=T0, min_observation_minutes=120,
                  observation_anchor="dosing_start")
    assert not c.met and c.evidence == "119 of 120 minutes since dosing began."


def test_observation_has_not_started_while_dosing_goes_on():
    c = criterion("min_observation", observation_from=None)
    assert not c.met and c.evidence == "Dosing has not ended yet."


def test_vitals_older_than_20_minutes_must_be_taken_again():
    now = END + timedelta(minutes=45)
    c = criterion("vitals_back", latest_vitals=Reading(8, now - timedelta(minutes=21), "recovery", 120, 80, 70, 98))
    assert not c.met and c.evidence == "Last vitals 21 minutes ago: take a new set (needed within 20 minutes)."
    assert criterion("vitals_back", latest_vitals=Reading(8, now - timedelta(minutes=20), "recovery",
                                                          120, 80, 70, 98)).met


def test_no_vitals_no_discharge():
    c = criterion("vitals_back", latest_vitals=None)
    assert not c.met and c.evidence == "No vitals recorded yet."


@pytest.mark.parametrize(("values", "met", "problem"), [
    ((140, 90, 78, 98), True, None),
    ((142, 85, 78, 98), False, "blood pressure above 140/90 mmHg"),
    ((130, 92, 78, 98), False, "blood pressure above 140/90 mmHg"),
    ((130, 85, 50, 98), True, None),
    ((130, 85, 121, 98), False, "heart rate outside 50–120 bpm"),
    ((130, 85, 49, 98), False, "heart rate outside 50–120 bpm"),
    ((130, 85, 78, 91), False, "SpO2 below 92 %"),
    ((130, 85, 78, None), False, "SpO2 not measured"),
    ((None, None, 78, 98), False, "blood pressure not measured"),
])
def test_vitals_back_within_predose_limits(values, met, problem):
    now = END + timedelta(minutes=45)
    c = criterion("vitals_back", latest_vitals=Reading(8, now - timedelta(minutes=2), "discharge", *values))
    assert c.met is met
    if problem:
        assert c.evidence.endswith(f": {problem}.")


def test_a_patient_dosed_above_the_predose_limit_may_leave_at_that_baseline():
    # The prescriber let dosing go ahead at 150/95; back to 148/92 is back to baseline.
    baseline = Reading(1, at(-10), "baseline", 150, 95, 72, 98)
    now = END + timedelta(minutes=45)
    assert criterion("vitals_back", baseline_vitals=baseline,
                     latest_vitals=Reading(8, now, "discharge", 148, 92, 78, 98)).met
    c = criterion("vitals_back", baseline_vitals=baseline, latest_vitals=Reading(8, now, "discharge", 152, 92, 78, 98))
    assert not c.met
    assert c.evidence == ("BP 152/92 mmHg, HR 78 bpm, SpO2 98 %, measured just now (baseline BP 150/95 mmHg): "
                          "blood pressure above 150/95 mmHg (the pre-dose baseline 150/95 mmHg, above 140/90).")


def test_slow_breathing_at_discharge_is_not_back_to_normal():
    now = END + timedelta(minutes=45)
    c = criterion("vitals_back", latest_vitals=Reading(8, now, "discharge", 120, 80, 70, 97, 7))
    assert not c.met and c.evidence.endswith("respiratory rate below 8 breaths/min.")


@pytest.mark.parametrize(("moaas", "met", "evidence"), [
    (5, True, "MOAA/S 5."), (4, False, "MOAA/S 4 (needs 5)."), (None, False, "MOAA/S not scored yet.")])
def test_moaas_must_be_5(moaas, met, evidence):
    c = criterion("moaas_5", latest_moaas=moaas)
    assert (c.met, c.evidence) == (met, evidence)


@pytest.mark.parametrize(("baseline", "latest", "met", "evidence"), [
    (1, 2, True, "CADSS-6 2 (baseline 1; needs 2 or less)."),
    (0, 3, False, "CADSS-6 3 (baseline 0; needs 2 or less)."),
    (4, 4, True, "CADSS-6 4 (baseline 4; needs 4 or less)."),  # back to baseline
    (4, 5, False, "CADSS-6 5 (baseline 4; needs 4 or less)."),
    (None, 2, True, "CADSS-6 2 (no baseline; needs 2 or less)."),
    (1, None, False, "CADSS-6 not scored since dosing began."),
])
def test_dissociation_resolved(baseline, latest, met, evidence):
    c = criterion("dissociation_resolved", baseline_cadss=baseline, latest_cadss=latest)
    assert (c.met, c.evidence) == (met, evidence)


@pytest.mark.parametrize("code", ["nausea_controlled", "escort_present", "instructions_given"])
@pytest.mark.parametrize(("value", "met", "evidence"), [(True, True, "Yes."), (False, False, "No."),
                                                        (None, False, "Not recorded yet.")])
def test_recorded_criteria(code, value, met, evidence):
    c = criterion(code, **{code: value})
    assert (c.met, c.evidence) == (met, evidence)


def test_one_unmet_criterion_means_not_ready():
    assert not discharge_ready(criteria(escort_present=None))
    assert not discharge_ready([])


# --- dose ----------------------------------------------------------------------------------------


def iv(amount: float = 0.5, weight: float | None = 70, minutes: int = 40, **kw) -> DosePlan:
    return dose_plan(route="iv", dose_rule="mg_per_kg", amount=amount, weight_kg=weight, infusion_minutes=minutes,
                     dose_min=0.1, dose_max=0.75, **kw)


def test_iv_dose_and_pump_rate_from_mg_per_kg():
    # 0.5 mg/kg × 70 kg = 35 mg over 40 minutes = 52.5 mg/h; at 1 mg/mL, 35 mL at 52.5 mL/h
    assert iv(concentration_mg_per_ml=1) == DosePlan(dose_mg=35.0, mg_per_kg=0.5, rate_mg_per_h=52.5,
                                                     rate_ml_per_h=52.5, volume_ml=35.0, devices=None)


def test_doses_round_half_up_to_a_tenth():
    # 0.5 × 70.3 = 35.15 → 35.2 mg; 35.2 × 60 / 40 = 52.8 mg/h
    plan = iv(weight=70.3)
    assert (plan.dose_mg, plan.rate_mg_per_h, plan.rate_ml_per_h) == (35.2, 52.8, None)


def test_pump_rate_in_ml_per_hour_from_the_bag_concentration():
    # 0.75 × 83.3 = 62.475 → 62.5 mg; 62.5 × 60 / 40 = 93.75 → 93.8 mg/h; at 2 mg/mL 31.25 → 31.3 mL
    # and 46.875 → 46.9 mL/h
    plan = iv(amount=0.75, weight=83.3, concentration_mg_per_ml=2)
    assert (plan.dose_mg, plan.rate_mg_per_h, plan.volume_ml, plan.rate_ml_per_h) == (62.5, 93.8, 31.3, 46.9)


def test_a_longer_infusion_runs_slower():
    assert iv(weight=80, minutes=100).rate_mg_per_h == 24.0  # 40 mg over 100 minutes


@pytest.mark.parametrize(("amount", "message"), [
    (0.8, "0.8 mg/kg is outside this protocol's range (0.1–0.75 mg/kg)."),
    (0.05, "0.05 mg/kg is outside this protocol's range (0.1–0.75 mg/kg)."),
])
def test_a_dose_outside_the_protocol_range_is_refused(amount, message):
    with pytest.raises(DoseError) as err:
        iv(amount=amount)
    assert err.value.field == "amount" and str(err.value) == message and isinstance(err.value, ValueError)


def test_the_ends_of_the_protocol_range_are_allowed():
    assert iv(amount=0.1).dose_mg == 7.0 and iv(amount=0.75).dose_mg == 52.5


def test_a_mg_per_kg_dose_needs_todays_weight():
    with pytest.raises(DoseError) as err:
        iv(weight=None)
    assert err.value.field == "weight_kg" and "Weigh the patient" in str(err.value)


def test_an_implausible_weight_is_refused():
    with pytest.raises(DoseError) as err:
        iv(weight=400)
    assert err.value.field == "weight_kg"
    assert str(err.value) == "Weight 400 kg is not plausible (25–350). Check the reading."


@pytest.mark.parametrize("concentration", [0, -1])
def test_the_concentration_must_be_positive(concentration):
    with pytest.raises(DoseError) as err:
        iv(concentration_mg_per_ml=concentration)
    assert err.value.field == "concentration_mg_per_ml"


def test_an_infusion_needs_its_length():
    with pytest.raises(DoseError) as err:
        iv(minutes=0)
    assert err.value.field == "infusion_minutes"


def test_im_injection_has_a_volume_but_no_rate():
    plan = dose_plan(route="im", dose_rule="mg_per_kg", amount=0.5, weight_kg=60, infusion_minutes=5,
                     dose_min=0.25, dose_max=0.75, concentration_mg_per_ml=50)
    assert plan == DosePlan(dose_mg=30.0, mg_per_kg=0.5, rate_mg_per_h=None, rate_ml_per_h=None, volume_ml=0.6,
                            devices=None)


def test_a_fixed_mg_infusion():
    plan = dose_plan(route="iv", dose_rule="fixed_mg", amount=35, weight_kg=None, infusion_minutes=40,
                     dose_min=10, dose_max=60)
    assert (plan.dose_mg, plan.mg_per_kg, plan.rate_mg_per_h) == (35.0, None, 52.5)


def nasal(amount: float, dose_rule: str = "fixed_mg") -> DosePlan:
    return dose_plan(route="intranasal", dose_rule=dose_rule, amount=amount, weight_kg=70, infusion_minutes=10,
                     dose_min=28, dose_max=84)


@pytest.mark.parametrize(("amount", "devices"), [(28, 1), (56, 2), (84.0, 3)])
def test_spravato_is_given_in_28_mg_devices(amount, devices):
    assert nasal(amount) == DosePlan(dose_mg=float(amount), mg_per_kg=None, rate_mg_per_h=None, rate_ml_per_h=None,
                                     volume_ml=None, devices=devices)


def test_a_nasal_dose_that_is_not_whole_devices_is_refused():
    with pytest.raises(DoseError) as err:
        nasal(60)
    assert err.value.field == "amount" and "one device is 28 mg" in str(err.value)


def test_a_nasal_dose_is_not_by_weight():
    with pytest.raises(DoseError) as err:
        dose_plan(route="intranasal", dose_rule="mg_per_kg", amount=0.5, weight_kg=70, infusion_minutes=10,
                  dose_min=0.1, dose_max=1)
    assert err.value.field == "dose_rule"


def test_an_unknown_route_is_refused():
    with pytest.raises(DoseError) as err:
        dose_plan(route="oral", dose_rule="fixed_mg", amount=50, weight_kg=None, infusion_minutes=0,
                  dose_min=10, dose_max=100)
    assert err.value.field == "route"


@given(amount=st.decimals(min_value="0.1", max_value="0.75", places=2).map(float),
       weight=st.decimals(min_value=25, max_value=350, places=1).map(float),
       minutes=st.integers(20, 100))
def test_dose_and_rate_stay_within_rounding_of_the_exact_values(amount, weight, minutes):
    plan = iv(amount=amount, weight=weight, minutes=minutes, concentration_mg_per_ml=1)
    assert abs(plan.dose_mg - amount * weight) <= 0.05 + 1e-9
    assert abs(plan.rate_mg_per_h - plan.dose_mg * 60 / minutes) <= 0.05 + 1e-9
    assert plan.rate_ml_per_h == plan.rate_mg_per_h and plan.volume_ml == plan.dose_mg
    assert round(plan.dose_mg, 1) == plan.dose_mg


def test_nasal_devices_are_5_minutes_apart():
    assert nasal_device_due(T0, 1) == at(5)
    assert nasal_device_due(T0, 2) == at(10)
    assert nasal_device_due(T0, 0) == T0


# --- the dosing gate -----------------------------------------------------------------------------

TODAY = date(2026, 11, 23)
ITEMS = ("consent_current", "escort_confirmed", "fasting_confirmed", "interacting_medications", "weight_today",
         "baseline_vitals", "baseline_cadss", "baseline_moaas")
ALL_DONE = {"consent_current": "yes", "escort_confirmed": "yes", "fasting_confirmed": "yes",
            "interacting_medications": "Benzodiazepines: no; Opioids: no", "weight_today": "72.5 kg",
            "baseline_vitals": "yes", "baseline_cadss": "1", "baseline_moaas": "5"}
LICENSED = {"nursing_licence": date(2027, 6, 30), "acls": date(2027, 1, 31)}
CREDENTIALS = ("nursing_licence", ("acls", "bls"))


def gate(**changes) -> list[str]:
    values = dict(checklist=ALL_DONE, required_items=ITEMS, consent_status="current", nurse_credentials=LICENSED,
                  required_credentials=CREDENTIALS, today=TODAY, predose_bp_high=False,
                  prescriber_decision=None) | changes
    return dosing_gate_problems(**values)


def test_dosing_may_start_when_everything_is_in_order():
    assert gate() == []
    assert gate(consent_status="expiring") == []  # due for renewal, still valid


def test_dosing_cannot_start_with_a_checklist_item_missing():
    checklist = {k: v for k, v in ALL_DONE.items() if k not in ("escort_confirmed", "baseline_moaas")}
    assert gate(checklist=checklist) == ["Adult escort confirmed: not recorded.", "Baseline MOAA/S: not recorded."]


def test_an_item_answered_no_is_not_done():
    assert gate(checklist=ALL_DONE | {"fasting_confirmed": "No"}) == ["Fasting confirmed: answered “No”."]
    assert gate(checklist=ALL_DONE | {"fasting_confirmed": "  "}) == ["Fasting confirmed: not recorded."]


@pytest.mark.parametrize(("status", "problem"), [
    (None, "No consent on file for this treatment."),
    ("expired", "The patient's consent has expired: renew it before dosing."),
    ("revoked", "The patient has revoked consent."),
])
def test_dosing_cannot_start_without_current_consent(status, problem):
    assert gate(consent_status=status) == [problem]


def test_dosing_cannot_start_when_the_nurses_licence_has_expired():
    assert gate(nurse_credentials=LICENSED | {"nursing_licence": date(2026, 11, 22)}) == [
        "Nursing licence expired on 22 November 2026: the administering nurse needs a current one."]


def test_a_credential_expiring_today_is_still_valid_today():
    assert gate(nurse_credentials=LICENSED | {"nursing_licence": TODAY}) == []


def test_bls_will_do_where_acls_or_bls_is_required():
    assert gate(nurse_credentials={"nursing_licence": date(2027, 6, 30), "bls": date(2027, 3, 1)}) == []
    assert gate(nurse_credentials={"nursing_licence": date(2027, 6, 30), "bls": date(2027, 3, 1),
                                   "acls": date(2026, 1, 1)}) == []


def test_neither_acls_nor_bls():
    assert gate(nurse_credentials={"nursing_licence": date(2027, 6, 30)}) == [
        "No ACLS or BLS on record for the administering nurse."]
    assert gate(nurse_credentials={"nursing_licence": date(2027, 6, 30), "acls": date(2026, 10, 3)}) == [
        "ACLS expired on 3 October 2026: the administering nurse needs a current one."]


def test_a_high_predose_blood_pressure_waits_for_the_prescriber():
    assert gate(predose_bp_high=True) == [
        "Pre-dose blood pressure is above the limit: a prescriber must decide whether to dose."]
    assert gate(predose_bp_high=True, prescriber_decision="dose") == []
    assert gate(predose_bp_high=True, prescriber_decision="dose: accepted at 150/95, usual for him") == []


def test_a_prescribers_hold_blocks_dosing():
    assert gate(predose_bp_high=True, prescriber_decision="hold: recheck in 15 minutes") == [
        "A prescriber decided to hold the dose."]
    assert gate(predose_bp_high=False, prescriber_decision="hold") == ["A prescriber decided to hold the dose."]


def test_prescriber_choice_reads_the_decision_word():
    assert prescriber_choice("Dose: ok") == "dose" and prescriber_choice("hold") == "hold"
    assert prescriber_choice(None) is None and prescriber_choice("  ") is None


def test_every_problem_is_listed_in_order():
    problems = gate(checklist={}, consent_status="revoked", nurse_credentials={}, predose_bp_high=True)
    assert len(problems) == len(ITEMS) + 1 + 2 + 1
    assert problems[0] == "Consent current: not recorded."
    assert problems[len(ITEMS):] == [
        "The patient has revoked consent.", "No Nursing licence on record for the administering nurse.",
        "No ACLS or BLS on record for the administering nurse.",
        "Pre-dose blood pressure is above the limit: a prescriber must decide whether to dose."]
