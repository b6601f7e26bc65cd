"""What makes a protocol coherent, and how it reads in plain words (no database)."""

from __future__ import annotations

import pytest

from clinic.sessions.protocol_rules import describe, describe_cadence, most_per_week, protocol_problems
from clinic.sessions.protocol_service import ProtocolIn
from clinic.sessions.protocols import SEED_PROTOCOLS, spec


def seed_values(code: str, **changes) -> dict:
    s = spec(code)
    values = {k: getattr(s, k) for k in (
        "route", "dose_rule", "dose_default", "dose_min", "dose_max", "infusion_minutes", "pre_minutes",
        "post_minutes", "min_observation_minutes", "induction_sessions", "min_days_between", "max_days_between",
        "max_per_week", "booster_interval_days")}
    values |= {"schedule": dict(s.schedule), "cadence": dict(s.cadence), "scales": dict(s.scales),
               "thresholds": dict(s.thresholds)}
    return values | changes


@pytest.mark.parametrize("code", [s.code for s in SEED_PROTOCOLS])
def test_every_seed_protocol_is_coherent(code):
    assert protocol_problems(seed_values(code)) == {}


def test_iv_induction_in_plain_words():
    assert describe(seed_values("iv-induction")) == (
        "6 sessions, at least 1 day apart (at most 7), at most 3 a week; 0.5 mg/kg (0.1–0.75) over 40 min; "
        "chair time 100 min")


def test_esketamine_in_plain_words_names_its_phases_and_fixed_dose():
    text = describe(seed_values("esketamine-nasal"))
    assert text.startswith("12 sessions, at least 2 days apart (at most 7), at most 2 a week "
                           "(twice a week for 4 weeks, then once a week for 4 weeks)")
    assert "56 mg (28–84) over 10 min" in text and "chair time 150 min" in text


def test_a_booster_reads_as_one_session_after_the_previous_one():
    assert describe(seed_values("iv-booster")).startswith(
        "1 session, 14–42 days after the previous one, usually every 28 days; 0.5 mg/kg")


def test_cadence_in_plain_words():
    lines = describe_cadence(seed_values("iv-induction")["cadence"])
    assert "Vitals every 10 min during dosing" in lines and "CADSS-6: baseline, 40 min, discharge" in lines


def test_the_usual_dose_lies_within_the_range():
    assert "dose_default" in protocol_problems(seed_values("iv-induction", dose_default=0.9))
    assert "dose_min" in protocol_problems(seed_values("iv-induction", dose_min=0.8))


def test_a_mg_per_kg_dose_above_an_anaesthetic_dose_is_refused():
    assert "dose_max" in protocol_problems(seed_values("iv-induction", dose_max=2.5))


def test_a_nasal_spray_is_dosed_in_whole_devices():
    assert "dose_default" in protocol_problems(seed_values("esketamine-nasal", dose_default=60))
    assert "dose_rule" in protocol_problems(seed_values("esketamine-nasal", dose_rule="mg_per_kg"))


def test_the_longest_gap_is_not_shorter_than_the_shortest():
    assert "max_days_between" in protocol_problems(seed_values("iv-induction", min_days_between=5,
                                                               max_days_between=3))


def test_sessions_of_a_course_fall_on_different_days():
    assert "min_days_between" in protocol_problems(seed_values("iv-induction", min_days_between=0))


@pytest.mark.parametrize(("gap", "fit"), [(0, 7), (1, 7), (2, 4), (3, 3), (4, 2), (6, 2), (7, 1), (14, 1)])
def test_how_many_sessions_fit_in_a_week(gap, fit):
    assert most_per_week(gap) == fit


def test_the_aim_per_week_respects_the_limit_and_the_spacing():
    assert "target_per_week" in protocol_problems(seed_values("iv-induction", schedule={"target_per_week": 4}))
    problems = protocol_problems(seed_values("iv-induction", min_days_between=3, max_per_week=7,
                                             schedule={"target_per_week": 4}))
    assert "at most 3 fit in a week" in problems["target_per_week"]


def test_phases_add_up_to_the_course():
    schedule = {"phases": [{"weeks": 4, "per_week": 2}, {"weeks": 3, "per_week": 1}]}
    problems = protocol_problems(seed_values("esketamine-nasal", schedule=schedule))
    assert "add up to 11 sessions" in problems["phases"]
    schedule = {"phases": [{"weeks": 2, "per_week": 3}, {"weeks": 6, "per_week": 1}]}
    assert "phases.0.per_week" in protocol_problems(seed_values("esketamine-nasal", schedule=schedule))


def test_observation_must_fit_into_the_chair_time():
    assert "min_observation_minutes" in protocol_problems(seed_values("iv-induction", min_observation_minutes=50))
    # Counted from the first device, the esketamine observation may use the dosing time too.
    assert protocol_problems(seed_values("esketamine-nasal", min_observation_minutes=135)) == {}
    assert "min_observation_minutes" in protocol_problems(seed_values("esketamine-nasal",
                                                                      min_observation_minutes=136))


def test_vitals_during_dosing_cannot_be_spaced_beyond_the_dosing_itself():
    cadence = seed_values("iv-induction")["cadence"] | {"dosing_every_minutes": 45}
    assert "dosing_every_minutes" in protocol_problems(seed_values("iv-induction", cadence=cadence))


def test_scores_and_extra_vitals_fall_within_the_session():
    cadence = seed_values("iv-induction")["cadence"] | {"at_minutes": [200]}
    assert "at_minutes" in protocol_problems(seed_values("iv-induction", cadence=cadence))
    cadence = seed_values("iv-induction")["cadence"] | {"scores": {"CADSS-6": ["baseline", 300]}}
    assert "scores" in protocol_problems(seed_values("iv-induction", cadence=cadence))


def test_the_input_model_builds_the_documented_json_shapes():
    data = ProtocolIn(name="Test", route="intranasal", dose_rule="fixed_mg", dose_default=56, dose_min=28,
                      dose_max=84, infusion_minutes=10, pre_minutes=15, post_minutes=125,
                      min_observation_minutes=120, induction_sessions=12, min_days_between=2, max_days_between=7,
                      max_per_week=2, phases=[{"weeks": 4, "per_week": 2}, {"weeks": 4, "per_week": 1}],
                      then_min_days=7, then_max_days=14, dosing_every_minutes=None, recovery_every_minutes=30,
                      at_minutes=[40], observation_from="dosing_start",
                      scores={"CADSS-6": "baseline, 40, discharge", "MOAA/S": ["baseline", "40", "discharge"]},
                      scales={"PHQ-9": "each_session_pre"})
    v = data.row_values()
    seed = spec("esketamine-nasal")
    assert v["schedule"] == seed.schedule
    assert v["cadence"] == seed.cadence
    assert v["scales"] == {"PHQ-9": "each_session_pre"} and v["thresholds"] == {}
    assert protocol_problems(v) == {}


@pytest.mark.parametrize(("field", "value"), [
    ("scores", {"CADSS-6": "baseline, soon"}),
    ("scores", {"HAM-A": "baseline"}),
    ("scales", {"PHQ-9": "whenever"}),
    ("scales", {"BDI": "each_session_pre"}),
    ("thresholds", {"systolic_hgh": 150}),
    ("max_per_week", 8),
    ("route", "oral"),
])
def test_the_input_model_refuses_values_outside_the_vocabulary(field, value):
    from pydantic import ValidationError

    base = {"name": "Test", "route": "iv", "dose_rule": "mg_per_kg", "dose_default": 0.5, "dose_min": 0.1,
            "dose_max": 0.75, "infusion_minutes": 40, "pre_minutes": 15, "post_minutes": 45,
            "min_observation_minutes": 30, "induction_sessions": 6, "min_days_between": 1, "max_per_week": 3}
    with pytest.raises(ValidationError) as err:
        ProtocolIn(**(base | {field: value}))
    assert err.value.errors()[0]["loc"][0] == field
