"""The seed protocols: the clinic's starting knowledge, checked without a database."""

from __future__ import annotations

import json

import pytest

from clinic.sessions.models import Protocol
from clinic.sessions.protocols import (
    OBSERVATION_FROM,
    SCALE_WHEN,
    SCORE_POINTS,
    SEED_PROTOCOLS,
    load_json,
    score_points,
    spec,
    vitals_check_minutes,
)
from clinic.vocab import DOSE_RULES, ROUTES, SCALES

REQUIRED = ("iv-induction", "iv-booster", "im-ketamine", "esketamine-nasal")


def test_the_four_starting_protocols_are_shipped_once_each():
    codes = [(s.code, s.version) for s in SEED_PROTOCOLS]
    assert len(codes) == len(set(codes))
    assert set(REQUIRED) <= {s.code for s in SEED_PROTOCOLS}


def test_iv_induction_is_six_infusions_of_half_a_milligram_per_kilo_over_forty_minutes():
    p = spec("iv-induction")
    assert (p.name, p.route, p.dose_rule) == ("IV ketamine induction", "iv", "mg_per_kg")
    assert (p.dose_default, p.dose_min, p.dose_max) == (0.5, 0.1, 0.75)
    assert p.infusion_minutes == 40 and p.induction_sessions == 6
    assert (p.min_days_between, p.max_days_between, p.max_per_week) == (1, 7, 3)
    assert (p.pre_minutes, p.post_minutes, p.min_observation_minutes) == (15, 45, 30)
    assert p.chair_minutes == 100


def test_booster_is_a_single_session_every_four_weeks():
    p = spec("iv-booster")
    assert p.induction_sessions == 1 and p.booster_interval_days == 28 and p.route == "iv"
    assert p.min_days_between <= p.booster_interval_days <= p.max_days_between


def test_im_ketamine_has_a_short_dosing_window_and_its_own_dose_range():
    p = spec("im-ketamine")
    assert p.route == "im" and p.infusion_minutes == 5 and p.induction_sessions == 6
    assert (p.dose_default, p.dose_min, p.dose_max) == (0.5, 0.25, 0.75)


def test_esketamine_is_fixed_dose_twice_weekly_then_weekly_for_eight_weeks():
    p = spec("esketamine-nasal")
    assert (p.route, p.dose_rule) == ("intranasal", "fixed_mg")
    assert (p.dose_default, p.dose_min, p.dose_max) == (56, 28, 84)
    phases = p.schedule["phases"]
    assert phases == [{"weeks": 4, "per_week": 2}, {"weeks": 4, "per_week": 1}]
    assert sum(ph["weeks"] for ph in phases) == 8
    assert p.induction_sessions == 12 and p.max_per_week == 2


def test_esketamine_observes_two_hours_from_the_first_device_and_checks_bp_at_forty_minutes():
    p = spec("esketamine-nasal")
    assert p.min_observation_minutes == 120 and p.cadence["observation_from"] == "dosing_start"
    assert p.cadence["baseline"] and p.cadence["discharge"] and 40 in p.cadence["at_minutes"]
    checks = vitals_check_minutes(p.cadence, infusion_minutes=p.infusion_minutes, until_minute=120)
    assert ("recovery", 40) in checks


@pytest.mark.parametrize("p", SEED_PROTOCOLS, ids=lambda p: p.code)
def test_every_protocol_is_internally_consistent(p):
    assert p.route in ROUTES and p.dose_rule in DOSE_RULES
    assert 0 < p.dose_min <= p.dose_default <= p.dose_max
    assert 0 <= p.infusion_minutes <= 240 and p.pre_minutes >= 0 and p.post_minutes >= 0
    assert p.max_days_between is None or p.max_days_between >= p.min_days_between >= 0
    assert 1 <= p.max_per_week <= 7 and p.induction_sessions >= 1
    if "phases" in p.schedule:
        assert sum(ph["weeks"] * ph["per_week"] for ph in p.schedule["phases"]) == p.induction_sessions
        assert max(ph["per_week"] for ph in p.schedule["phases"]) <= p.max_per_week
    assert p.schedule.get("target_per_week", 1) <= p.max_per_week
    # The minimum observation fits in the chair time booked after dosing starts.
    start = 0 if p.cadence["observation_from"] == "dosing_start" else p.infusion_minutes
    assert p.cadence["observation_from"] in OBSERVATION_FROM
    assert start + p.min_observation_minutes <= p.infusion_minutes + p.post_minutes
    for scale, points in p.cadence["scores"].items():
        assert scale in SCALES
        for point in points:
            assert point in SCORE_POINTS or (isinstance(point, int) and 0 < point < p.chair_minutes)
    for scale, when in p.scales.items():
        assert scale in SCALES and when in SCALE_WHEN
    assert {"CADSS-6", "MOAA/S"} <= set(p.cadence["scores"])


@pytest.mark.parametrize("p", SEED_PROTOCOLS, ids=lambda p: p.code)
def test_row_values_build_a_protocol_whose_json_reads_back(p):
    row = Protocol(**p.row_values())
    assert row.chair_minutes == p.chair_minutes
    assert load_json(row.cadence_json) == json.loads(json.dumps(p.cadence))
    assert load_json(row.schedule_json) == p.schedule
    assert load_json(row.scales_json) == p.scales
    assert load_json(row.thresholds_json) == p.thresholds
    assert score_points(load_json(row.cadence_json), "CADSS-6") == p.cadence["scores"]["CADSS-6"]


def test_iv_vitals_every_ten_minutes_while_dosing_then_every_fifteen_until_discharge():
    p = spec("iv-induction")
    checks = vitals_check_minutes(p.cadence, infusion_minutes=40, until_minute=80)
    assert checks == [("dosing", 10), ("dosing", 20), ("dosing", 30), ("dosing", 40),
                      ("recovery", 55), ("recovery", 70)]


def test_a_fixed_check_close_to_a_periodic_one_is_not_doubled():
    cadence = {"recovery_every_minutes": 15, "at_minutes": [41, 48]}
    checks = vitals_check_minutes(cadence, infusion_minutes=10, until_minute=60)
    assert checks == [("recovery", 25), ("recovery", 40), ("recovery", 48), ("recovery", 55)]


def test_no_periodic_checks_when_the_cadence_has_none():
    assert vitals_check_minutes({"baseline": True}, infusion_minutes=40, until_minute=90) == []


def test_load_json_treats_empty_text_as_an_empty_dict():
    assert load_json("") == {} and load_json(None) == {} and load_json("{}") == {}
