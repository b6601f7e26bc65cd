"""The series planner: every constraint, both DST changes, and what it says when it cannot place."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from clinic.sessions.planner import (
    CHAIR,
    CLOSED,
    NURSES,
    PRESCRIBER,
    Booking,
    Phase,
    Preferences,
    SeriesRule,
    SiteCalendar,
    StaffShift,
    covered,
    nurse_load_ok,
    plan_series,
    within_weekly_limit,
)

NY = ZoneInfo("America/New_York")
WEEKDAYS = {d: ((time(8), time(18)),) for d in range(5)}
IV = SeriesRule(sessions=6, pre_minutes=15, dosing_minutes=40, post_minutes=45, min_days_between=1,
                max_days_between=7, max_per_week=3)
ONE = SeriesRule(sessions=1, pre_minutes=15, dosing_minutes=40, post_minutes=45, min_days_between=1,
                 max_days_between=None, max_per_week=3)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday


def site(chairs=(1, 2), hours=None, closed=(), ratio_dosing=2, ratio_recovery=4) -> SiteCalendar:
    return SiteCalendar(zone=NY, hours=hours or WEEKDAYS, chair_ids=tuple(chairs), closed_days=frozenset(closed),
                        nurse_ratio_dosing=ratio_dosing, nurse_ratio_recovery=ratio_recovery)


def staff(first: date, days: int, nurses: int = 2, prescribers: int = 1, start=time(7), end=time(19),
          skip_prescriber: set[date] = frozenset()) -> list[StaffShift]:
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        s = datetime.combine(d, start, NY).astimezone(UTC)
        e = datetime.combine(d, end, NY).astimezone(UTC)
        out += [StaffShift("nurse", s, e, n) for n in range(nurses)]
        if d not in skip_prescriber:
            out += [StaffShift("prescriber", s, e, 100 + p) for p in range(prescribers)]
    return out


def local(t: datetime) -> datetime:
    return t.astimezone(NY)


def test_iv_induction_is_placed_whole_within_every_rule():
    plan = plan_series(IV, site(), bookings=[], shifts=staff(date(2026, 11, 23), 40),
                       prefs=Preferences(date(2026, 11, 23)), patient_id=1, now=NOW)
    assert plan.complete and len(plan.slots) == 6
    days = [local(s.start).date() for s in plan.slots]
    gaps = [(b - a).days for a, b in zip(days, days[1:], strict=False)]
    assert all(1 <= g <= 7 for g in gaps)
    for first in days:  # any 7 consecutive days hold at most 3 sessions
        assert sum(1 for d in days if first <= d <= first + timedelta(days=6)) <= 3
    for s in plan.slots:
        assert time(8) <= local(s.start).time() and local(s.end).time() <= time(18)
        assert s.end - s.start == timedelta(minutes=100)
        assert s.dosing_start == s.start + timedelta(minutes=15)
        assert local(s.start).weekday() < 5


def test_a_busy_chair_is_not_booked_again():
    s = site(chairs=(1,))
    day = date(2026, 11, 23)
    taken = [Booking(1, 9, datetime.combine(day, time(8), NY).astimezone(UTC),
                     datetime.combine(day, time(17, 30), NY).astimezone(UTC),
                     datetime.combine(day, time(8, 15), NY).astimezone(UTC),
                     datetime.combine(day, time(8, 55), NY).astimezone(UTC))]
    plan = plan_series(ONE, s, bookings=taken, shifts=staff(day, 5), prefs=Preferences(day), patient_id=1, now=NOW)
    slot = plan.slots[0]
    assert not (slot.start < taken[0].end and taken[0].start < slot.end)


def test_closed_days_are_skipped():
    day = date(2026, 12, 24)
    plan = plan_series(ONE, site(closed={date(2026, 12, 24), date(2026, 12, 25)}), bookings=[],
                       shifts=staff(day, 10), prefs=Preferences(day), patient_id=1, now=NOW)
    assert local(plan.slots[0].start).date() == date(2026, 12, 28)  # Thu, Fri closed; weekend closed


def test_nurse_load_counts_dosing_and_recovery_against_the_ratio():
    t0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    nurse = [StaffShift("nurse", t0 - timedelta(hours=2), t0 + timedelta(hours=6))]

    def session(offset_min: int) -> Booking:
        s = t0 + timedelta(minutes=offset_min)
        return Booking(None, offset_min, s, s + timedelta(minutes=100), s + timedelta(minutes=15),
                       s + timedelta(minutes=55))

    # One nurse, 1:2 while dosing: two patients dosing together are fine, a third is not.
    assert nurse_load_ok(session(0), [session(0)], nurse, 2, 4)
    assert not nurse_load_ok(session(0), [session(0), session(5)], nurse, 2, 4)
    # Dosing (1/2 each) + recovery (1/4 each): one dosing + two in recovery fill one nurse exactly.
    assert nurse_load_ok(session(60), [session(0), session(0)], nurse, 2, 4)
    assert not nurse_load_ok(session(60), [session(0), session(0), session(0)], nurse, 2, 4)
    # Without a nurse on shift nothing fits.
    assert not nurse_load_ok(session(0), [], [], 2, 4)


def test_planner_waits_for_nurses_rather_than_overloading_them():
    day = date(2026, 11, 23)
    shifts = staff(day, 1, nurses=1)
    bookings = []
    plans = []
    for patient in range(1, 5):
        plan = plan_series(ONE, site(chairs=(1, 2, 3, 4)), bookings=bookings, shifts=shifts,
                           prefs=Preferences(day), patient_id=patient, now=NOW, search_days=0)
        plans.append(plan)
        bookings += [s.as_booking(patient) for s in plan.slots]
    placed = [b for b in bookings]
    for b in placed:
        assert nurse_load_ok(b, [x for x in placed if x is not b], [s for s in shifts if s.role == "nurse"], 2, 4)
    assert all(p.complete for p in plans)


def test_no_prescriber_on_site_means_no_dosing_that_day():
    day = date(2026, 11, 23)
    plan = plan_series(ONE, site(), bookings=[], shifts=staff(day, 5, skip_prescriber={day}),
                       prefs=Preferences(day), patient_id=1, now=NOW)
    assert local(plan.slots[0].start).date() == date(2026, 11, 24)


def test_the_patient_is_never_booked_twice_at_once():
    day = date(2026, 11, 23)
    elsewhere = Booking(77, 1, datetime.combine(day, time(8), NY).astimezone(UTC),
                        datetime.combine(day, time(12), NY).astimezone(UTC),
                        datetime.combine(day, time(8, 15), NY).astimezone(UTC),
                        datetime.combine(day, time(8, 55), NY).astimezone(UTC))
    plan = plan_series(ONE, site(), bookings=[elsewhere], shifts=staff(day, 3), prefs=Preferences(day),
                       patient_id=1, now=NOW)
    assert plan.slots[0].start >= elsewhere.end


def test_starts_are_staggered_not_piled_at_opening():
    day = date(2026, 11, 23)
    shifts = staff(day, 1, nurses=4)
    bookings: list[Booking] = []
    for patient in range(1, 6):
        plan = plan_series(ONE, site(chairs=(1, 2, 3, 4, 5, 6)), bookings=bookings, shifts=shifts,
                           prefs=Preferences(day), patient_id=patient, now=NOW, search_days=0)
        bookings += [s.as_booking(patient) for s in plan.slots]
    starts = sorted(b.start for b in bookings)
    assert len(set(starts)) == 5
    assert all((b - a) >= timedelta(minutes=30) for a, b in zip(starts, starts[1:], strict=False))


def test_opening_hours_hold_in_local_time_across_spring_forward():
    day = date(2027, 3, 15)  # Monday after the clocks went forward on 14 March
    before = plan_series(ONE, site(), bookings=[], shifts=staff(date(2027, 3, 12), 1), prefs=Preferences(
        date(2027, 3, 12)), patient_id=1, now=NOW, search_days=0)
    after = plan_series(ONE, site(), bookings=[], shifts=staff(day, 1), prefs=Preferences(day), patient_id=1,
                        now=NOW, search_days=0)
    assert local(before.slots[0].start).time() == time(8) == local(after.slots[0].start).time()
    assert before.slots[0].start.hour == 13 and after.slots[0].start.hour == 12  # EST vs EDT in UTC


def test_opening_hours_hold_in_local_time_across_fall_back():
    sat_hours = {5: ((time(0, 30), time(3, 30)),)}  # a night clinic open across 01:00–02:00 on 1 Nov 2026
    night = SeriesRule(sessions=1, pre_minutes=15, dosing_minutes=40, post_minutes=45, min_days_between=1,
                       max_days_between=None, max_per_week=3)
    day = date(2026, 10, 31)
    hours = {6: ((time(0, 30), time(3, 30)),)}
    s = SiteCalendar(zone=NY, hours=hours | sat_hours, chair_ids=(1,))
    shifts = [StaffShift(r, datetime(2026, 11, 1, 3, tzinfo=UTC), datetime(2026, 11, 1, 10, tzinfo=UTC))
              for r in ("nurse", "prescriber")]
    plan = plan_series(night, s, bookings=[], shifts=shifts, prefs=Preferences(day, weekdays=frozenset({6})),
                       patient_id=1, now=datetime(2026, 10, 1, tzinfo=UTC))
    slot = plan.slots[0]
    # 1 Nov has 25 hours: 00:30 local is 04:30 UTC, and 3:30 local closing is 08:30 UTC (EST).
    assert slot.start == datetime(2026, 11, 1, 4, 30, tzinfo=UTC)
    assert slot.end <= datetime.combine(date(2026, 11, 1), time(3, 30), NY).astimezone(UTC)


def test_an_unplaceable_session_says_why_and_offers_the_nearest_alternatives():
    day = date(2026, 11, 23)
    shifts = staff(day, 40)
    # Only one chair, booked all day on every weekday of the first week.
    taken = []
    for i in range(5):
        d = day + timedelta(days=i)
        taken.append(Booking(1, 99, datetime.combine(d, time(8), NY).astimezone(UTC),
                             datetime.combine(d, time(18), NY).astimezone(UTC),
                             datetime.combine(d, time(8, 15), NY).astimezone(UTC),
                             datetime.combine(d, time(8, 55), NY).astimezone(UTC)))
    rule = SeriesRule(sessions=3, pre_minutes=15, dosing_minutes=40, post_minutes=45, min_days_between=1,
                      max_days_between=3, max_per_week=3)
    plan = plan_series(rule, site(chairs=(1,)), bookings=taken, shifts=shifts, prefs=Preferences(day),
                       patient_id=1, now=NOW, search_days=4)
    assert not plan.complete and plan.slots == ()
    first = plan.unplaced[0]
    assert first.number == 1 and CHAIR in first.reason and first.blockers[CHAIR] > 0
    assert first.alternatives and local(first.alternatives[0].start).date() == date(2026, 11, 30)
    assert [u.number for u in plan.unplaced] == [1, 2, 3]
    assert "waits on session 1" in plan.unplaced[1].reason


def test_closed_window_is_explained():
    day = date(2026, 11, 28)  # a Saturday; the site opens weekdays only
    plan = plan_series(ONE, site(), bookings=[], shifts=staff(day, 10), prefs=Preferences(day), patient_id=1,
                       now=NOW, search_days=1)
    assert not plan.complete and CLOSED in plan.unplaced[0].reason


def test_missing_prescriber_is_named_as_the_blocker():
    day = date(2026, 11, 23)
    plan = plan_series(ONE, site(), bookings=[], shifts=staff(day, 1, prescribers=0), prefs=Preferences(day),
                       patient_id=1, now=NOW, search_days=0)
    assert PRESCRIBER in plan.unplaced[0].reason


def test_nurse_shortage_is_named_as_the_blocker():
    day = date(2026, 11, 23)
    plan = plan_series(ONE, site(), bookings=[], shifts=staff(day, 1, nurses=0), prefs=Preferences(day),
                       patient_id=1, now=NOW, search_days=0)
    assert NURSES in plan.unplaced[0].reason


def test_preferred_weekdays_and_time_window_are_kept():
    day = date(2026, 11, 23)
    prefs = Preferences(day, weekdays=frozenset({1, 3}), window=(time(13), time(15)))
    plan = plan_series(IV, site(), bookings=[], shifts=staff(day, 60), prefs=prefs, patient_id=1, now=NOW)
    assert plan.complete
    for s in plan.slots:
        assert local(s.start).weekday() in {1, 3}
        assert time(13) <= local(s.start).time() <= time(15)


def test_esketamine_phases_twice_weekly_then_weekly():
    rule = SeriesRule(sessions=12, pre_minutes=15, dosing_minutes=15, post_minutes=120, min_days_between=2,
                      max_days_between=8, max_per_week=2, phases=(Phase(8, 2), Phase(4, 1)))
    day = date(2026, 11, 23)
    plan = plan_series(rule, site(), bookings=[], shifts=staff(day, 90), prefs=Preferences(day), patient_id=1,
                       now=NOW)
    assert plan.complete
    weeks = Counter(local(s.start).isocalendar()[:2] for s in plan.slots)
    per_week = [weeks[w] for w in sorted(weeks)]
    assert per_week[:4] == [2, 2, 2, 2] and per_week[4:] == [1, 1, 1, 1]


def test_nothing_is_booked_in_the_past():
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 12:00 in New York
    plan = plan_series(ONE, site(), bookings=[], shifts=staff(date(2026, 11, 23), 3),
                       prefs=Preferences(date(2026, 11, 23)), patient_id=1, now=now)
    assert plan.slots[0].start >= now


def test_weekly_limit_counts_any_seven_consecutive_days():
    thu, fri, mon, tue = date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30), date(2026, 12, 1)
    assert within_weekly_limit([thu, fri], mon, 3)
    assert not within_weekly_limit([thu, fri, mon], tue, 3)  # Thu..Wed is one 7-day stretch
    assert within_weekly_limit([thu, fri, mon], date(2026, 12, 3), 3)  # Thu 3 Dec: Thu 26 Nov is 7 days back


def test_covered_needs_the_whole_window():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    shifts = [StaffShift("prescriber", t, t + h), StaffShift("prescriber", t + h, t + 3 * h)]
    assert covered(t, t + 3 * h, shifts)
    assert not covered(t, t + 4 * h, shifts)
    assert not covered(t - h, t + h, shifts)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 36), st.sampled_from([1, 2, 3])), max_size=25))
def test_placed_slots_never_break_a_rule_whatever_is_already_booked(existing):
    day = date(2026, 11, 23)
    shifts = staff(day, 30)
    bookings = []
    for i, (d, quarter, chair) in enumerate(existing):
        start = datetime.combine(day + timedelta(days=d), time(8), NY).astimezone(UTC) + timedelta(minutes=15 * quarter)
        b = Booking(chair, 1000 + i, start, start + timedelta(minutes=100), start + timedelta(minutes=15),
                    start + timedelta(minutes=55))
        if any(x.chair_id == chair and x.start < b.end and b.start < x.end for x in bookings):
            continue
        bookings.append(b)
    plan = plan_series(IV, site(chairs=(1, 2, 3)), bookings=bookings, shifts=shifts, prefs=Preferences(day),
                       patient_id=1, now=NOW)
    nurses = [s for s in shifts if s.role == "nurse"]
    placed: list[Booking] = []
    for slot in plan.slots:
        b = slot.as_booking(1)
        assert not any(x.chair_id == b.chair_id and x.start < b.end and b.start < x.end for x in bookings + placed)
        assert time(8) <= local(b.start).time() and local(b.end).time() <= time(18)
        placed.append(b)
    for b in bookings + placed:
        others = [x for x in bookings + placed if x is not b]
        if b in placed:
            assert nurse_load_ok(b, others, nurses, 2, 4)
    assert len(plan.slots) + len(plan.unplaced) == IV.sessions
