"""The benchmark's independent checker: a tiny hand-made schedule with one known violation of each kind."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from clinic.sessions.planner import SeriesRule, SiteCalendar, StaffShift


def _load_benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "place_courses.py"
    spec = importlib.util.spec_from_file_location("place_courses", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["place_courses"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()

NY = ZoneInfo("America/New_York")
CLOSED = date(2027, 1, 18)  # a Monday
SITE = SiteCalendar(zone=NY, hours={d: ((time(8), time(18)),) for d in range(5)}, chair_ids=(1, 2),
                    closed_days=frozenset({CLOSED}), nurse_ratio_dosing=2, nurse_ratio_recovery=4)
# 3 sessions, 1–5 calendar days apart, at most 2 a week; 15 min pre + 40 dosing + 45 recovery.
RULE = SeriesRule(sessions=3, pre_minutes=15, dosing_minutes=40, post_minutes=45, min_days_between=1,
                  max_days_between=5, max_per_week=2)
RULES = {"t": RULE}


def at(day: int, hh: int, mm: int = 0) -> datetime:
    """Local time in New York on January `day`, 2027, as UTC."""
    return datetime.combine(date(2027, 1, day), time(hh, mm), NY).astimezone(UTC)


def session(course: int, patient: int, chair: int, number: int, day: int, hh: int, mm: int = 0, *,
            dosing_offset: int = 15):
    start = at(day, hh, mm)
    ds = start + timedelta(minutes=dosing_offset)
    return bench.PlacedSession(course, "t", "A", patient, chair, number, start, start + timedelta(minutes=100), ds,
                               ds + timedelta(minutes=40))


def shifts() -> list[StaffShift]:
    out = []
    for day in range(11, 25):
        if day == 14:  # Thursday: one nurse, until 10:30 only
            out.append(StaffShift("nurse", at(day, 7), at(day, 10, 30), 1))
        else:
            out += [StaffShift("nurse", at(day, 7), at(day, 20), n) for n in (1, 2)]
        if day == 12:  # Tuesday: no prescriber from 10:00 to 10:30
            out += [StaffShift("prescriber", at(day, 7), at(day, 10), 9),
                    StaffShift("prescriber", at(day, 10, 30), at(day, 20), 9)]
        elif day == 13:  # Wednesday: a handover at noon (adjacent shifts cover without a gap)
            out += [StaffShift("prescriber", at(day, 7), at(day, 12), 9),
                    StaffShift("prescriber", at(day, 12), at(day, 20), 10)]
        else:
            out.append(StaffShift("prescriber", at(day, 7), at(day, 20), 9))
    return out


CLEAN = [
    # course 1: Wed, Fri, then Wed of the next week (gaps 2 and 5 days, at most 2 in any 7 days)
    session(1, 1, 1, 1, 13, 9), session(1, 1, 1, 2, 15, 9), session(1, 1, 1, 3, 20, 9),
    # dosing 11:45–12:25 runs across the prescribers' noon handover
    session(10, 10, 2, 1, 13, 11, 30),
]

ONE_OF_EACH = {
    "closed_day": [session(2, 2, 2, 1, 18, 10)],
    "hours": [session(3, 3, 2, 1, 12, 17)],  # ends 18:40, after closing
    "chair_site": [session(4, 4, 99, 1, 12, 9)],
    "chair_overlap": [session(5, 5, 1, 1, 13, 9, 30)],  # chair 1 is course 1's until 10:40
    "patient_overlap": [session(6, 1, 2, 1, 15, 9, 30)],  # patient 1 is in chair 1 until 10:40
    "nurse_load": [session(13, 13, 2, 1, 14, 10)],  # the only nurse leaves at 10:30, mid-dosing
    "prescriber": [session(12, 12, 2, 1, 12, 9, 45)],  # dosing 10:00–10:40, no prescriber until 10:30
    "spacing_min": [session(7, 7, 2, 1, 11, 13), session(7, 7, 2, 2, 11, 15)],  # same day
    "spacing_max": [session(8, 8, 1, 1, 12, 13), session(8, 8, 1, 2, 19, 13)],  # 7 days apart
    "weekly": [session(9, 9, 1, 1, 11, 8), session(9, 9, 1, 2, 12, 8), session(9, 9, 1, 3, 14, 8)],
    "shape": [session(11, 11, 1, 1, 11, 10, dosing_offset=20)],  # dosing starts 20 min in, not 15
}


def test_a_clean_schedule_has_no_violations():
    result = bench.check_schedule(CLEAN, {"A": SITE}, {"A": shifts()}, RULES)
    assert result.total == 0, result.examples


def test_one_known_violation_of_each_kind_is_counted_once():
    assert set(ONE_OF_EACH) == set(bench.VIOLATION_KINDS)
    schedule = CLEAN + [s for group in ONE_OF_EACH.values() for s in group]
    result = bench.check_schedule(schedule, {"A": SITE}, {"A": shifts()}, RULES)
    assert dict(result.counts) == {kind: 1 for kind in bench.VIOLATION_KINDS}, result.examples


def test_each_violation_is_found_on_its_own():
    for kind, bad in ONE_OF_EACH.items():
        result = bench.check_schedule(CLEAN + bad, {"A": SITE}, {"A": shifts()}, RULES)
        assert result.total == 1 and result.counts[kind] == 1, (kind, result.examples)


def test_session_numbers_out_of_order_are_a_shape_violation():
    swapped = [session(1, 1, 1, 2, 13, 9), session(1, 1, 1, 1, 15, 9)]
    result = bench.check_schedule(swapped, {"A": SITE}, {"A": shifts()}, RULES)
    assert result.counts["shape"] == 1 and result.total == 1


def test_opening_hours_are_read_in_the_site_zone_across_the_clock_change():
    # 08:00 New York is 13:00 UTC before 14 March 2027 and 12:00 UTC after it; both are inside the hours.
    rule = {"t": RULE}
    start_of_day = [StaffShift(r, datetime(2027, 3, d, 10, tzinfo=UTC), datetime(2027, 3, d, 23, tzinfo=UTC))
                    for d in (12, 15) for r in ("nurse", "prescriber")]
    ok = [bench.PlacedSession(1, "t", "A", 1, 1, n, s, s + timedelta(minutes=100), s + timedelta(minutes=15),
                              s + timedelta(minutes=55))
          for n, s in ((1, datetime(2027, 3, 12, 13, tzinfo=UTC)), (2, datetime(2027, 3, 15, 12, tzinfo=UTC)))]
    assert bench.check_schedule(ok, {"A": SITE}, {"A": start_of_day}, rule).total == 0
    early = [bench.PlacedSession(2, "t", "A", 2, 2, 1, s, s + timedelta(minutes=100), s + timedelta(minutes=15),
                                 s + timedelta(minutes=55)) for s in [datetime(2027, 3, 15, 11, 45, tzinfo=UTC)]]
    result = bench.check_schedule(early, {"A": SITE}, {"A": start_of_day}, rule)
    assert result.counts["hours"] == 1  # 07:45 local after the change, though 12:45 UTC would be fine before it
