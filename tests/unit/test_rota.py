"""The staff rota: weekly patterns laid out in the site's zone, then leave, swaps and extra shifts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.sessions.planner import StaffShift, covered
from clinic.sessions.rota import (
    RotaException,
    ShiftSpec,
    WeeklyPattern,
    at_local,
    day_bounds,
    double_bookings,
    exception_window,
    expand_shifts,
    first_clash,
    hourly_headcount,
    patterns_clash,
    week_start,
)

NY = ZoneInfo("America/New_York")
FALL_BACK = date(2026, 11, 1)  # a Sunday: 02:00 EDT becomes 01:00 EST
SPRING_FORWARD = date(2027, 3, 14)  # a Sunday: 02:00 EST becomes 03:00 EDT
MON = date(2026, 11, 2)
NURSE, OTHER_NURSE, PRESCRIBER = 1, 2, 3


def utc(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def pattern(staff=NURSE, weekday=0, start="08:00", end="18:00", role="nurse", valid_from=date(2026, 1, 1),
            valid_until=None) -> WeeklyPattern:
    return WeeklyPattern(staff, role, weekday, time.fromisoformat(start), time.fromisoformat(end), valid_from,
                         valid_until)


def local_hours(shift: ShiftSpec) -> tuple[str, str]:
    return shift.start.astimezone(NY).strftime("%H:%M"), shift.end.astimezone(NY).strftime("%H:%M")


# --- patterns laid out day by day ------------------------------------------------------------------


def test_a_weekday_pattern_gives_one_shift_on_that_weekday_only():
    shifts = expand_shifts([pattern(weekday=0)], [], MON, MON + timedelta(days=6), NY)
    assert len(shifts) == 1
    assert shifts[0] == ShiftSpec(utc(2026, 11, 2, 13), utc(2026, 11, 2, 23), NURSE, "nurse", "pattern")


def test_shifts_keep_local_hours_on_both_sides_of_the_autumn_change():
    saturday = pattern(weekday=5)
    monday = pattern(weekday=0)
    shifts = expand_shifts([saturday, monday], [], date(2026, 10, 31), MON, NY)
    assert [local_hours(s) for s in shifts] == [("08:00", "18:00"), ("08:00", "18:00")]
    assert shifts[0].start == utc(2026, 10, 31, 12)  # EDT, UTC-4
    assert shifts[1].start == utc(2026, 11, 2, 13)  # EST, UTC-5


def test_shifts_keep_local_hours_on_both_sides_of_the_spring_change():
    shifts = expand_shifts([pattern(weekday=5), pattern(weekday=0)], [], date(2027, 3, 13), date(2027, 3, 15), NY)
    assert [local_hours(s) for s in shifts] == [("08:00", "18:00"), ("08:00", "18:00")]
    assert shifts[0].start == utc(2027, 3, 13, 13)  # EST
    assert shifts[1].start == utc(2027, 3, 15, 12)  # EDT


def test_a_night_across_the_autumn_change_lasts_an_hour_longer():
    (shift,) = expand_shifts([pattern(weekday=6, start="00:00", end="06:00")], [], FALL_BACK, FALL_BACK, NY)
    assert shift.end - shift.start == timedelta(hours=7)
    assert local_hours(shift) == ("00:00", "06:00")


def test_a_night_across_the_spring_change_lasts_an_hour_shorter():
    (shift,) = expand_shifts([pattern(weekday=6, start="00:00", end="06:00")], [], SPRING_FORWARD,
                             SPRING_FORWARD, NY)
    assert shift.end - shift.start == timedelta(hours=5)
    assert local_hours(shift) == ("00:00", "06:00")


def test_a_day_shift_on_each_change_day_is_at_its_local_hours():
    sunday = pattern(weekday=6, start="09:00", end="13:00")
    autumn = expand_shifts([sunday], [], FALL_BACK, FALL_BACK, NY)[0]
    spring = expand_shifts([sunday], [], SPRING_FORWARD, SPRING_FORWARD, NY)[0]
    assert (autumn.start, autumn.end) == (utc(2026, 11, 1, 14), utc(2026, 11, 1, 18))
    assert (spring.start, spring.end) == (utc(2027, 3, 14, 13), utc(2027, 3, 14, 17))


def test_a_start_in_the_skipped_spring_hour_lands_after_the_change():
    (shift,) = expand_shifts([pattern(weekday=6, start="02:30", end="06:00")], [], SPRING_FORWARD,
                             SPRING_FORWARD, NY)
    assert local_hours(shift) == ("03:30", "06:00")


def test_a_pattern_wholly_inside_the_skipped_spring_hour_moves_an_hour_later_keeping_its_length():
    (shift,) = expand_shifts([pattern(weekday=6, start="02:00", end="02:45")], [], SPRING_FORWARD,
                             SPRING_FORWARD, NY)
    assert local_hours(shift) == ("03:00", "03:45")


def test_a_repeated_autumn_wall_time_is_read_as_its_first_occurrence():
    assert at_local(FALL_BACK, time(1, 30), NY) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_twelve_weeks_across_a_change_keep_every_monday_at_eight_local():
    shifts = expand_shifts([pattern(weekday=0)], [], date(2026, 10, 5), date(2026, 12, 27), NY)
    assert len(shifts) == 12
    assert {local_hours(s) for s in shifts} == {("08:00", "18:00")}
    assert {s.start.hour for s in shifts} == {12, 13}  # the UTC hour moves, the local one does not


def test_validity_range_is_inclusive_at_both_ends():
    p = pattern(weekday=0, valid_from=date(2026, 11, 9), valid_until=date(2026, 11, 23))
    shifts = expand_shifts([p], [], MON, date(2026, 12, 6), NY)
    assert [s.start.astimezone(NY).date() for s in shifts] == [date(2026, 11, 9), date(2026, 11, 16),
                                                               date(2026, 11, 23)]


def test_an_ended_pattern_and_one_not_yet_started_give_nothing():
    ended = pattern(valid_until=date(2026, 10, 31))
    future = pattern(staff=OTHER_NURSE, valid_from=date(2027, 1, 1))
    assert expand_shifts([ended, future], [], MON, date(2026, 11, 30), NY) == []


def test_closed_days_have_no_pattern_shifts():
    shifts = expand_shifts([pattern(weekday=0)], [], MON, date(2026, 11, 16), NY, closed_days={date(2026, 11, 9)})
    assert [s.start.astimezone(NY).date() for s in shifts] == [MON, date(2026, 11, 16)]


def test_an_empty_or_reversed_range_gives_nothing():
    assert expand_shifts([pattern()], [], MON + timedelta(days=1), MON, NY) == []


def test_shifts_are_sorted_by_start_then_person():
    shifts = expand_shifts([pattern(staff=OTHER_NURSE, start="07:00", end="15:00"), pattern(staff=NURSE),
                            pattern(staff=PRESCRIBER, role="prescriber")], [], MON, MON, NY)
    assert [(s.staff_id, local_hours(s)[0]) for s in shifts] == [(OTHER_NURSE, "07:00"), (NURSE, "08:00"),
                                                                 (PRESCRIBER, "08:00")]


# --- leave ----------------------------------------------------------------------------------------


def leave(staff, start, end) -> RotaException:
    return RotaException(staff, "leave", start, end)


def test_a_whole_day_of_leave_removes_that_days_shift_only():
    start, end = exception_window(MON, None, None, None, NY)
    shifts = expand_shifts([pattern(weekday=0), pattern(weekday=1)], [leave(NURSE, start, end)], MON,
                           MON + timedelta(days=6), NY)
    assert [s.start.astimezone(NY).date() for s in shifts] == [date(2026, 11, 3)]


def test_leave_removes_only_that_persons_shifts():
    start, end = exception_window(MON, None, None, None, NY)
    shifts = expand_shifts([pattern(staff=NURSE), pattern(staff=OTHER_NURSE)], [leave(NURSE, start, end)],
                           MON, MON, NY)
    assert [s.staff_id for s in shifts] == [OTHER_NURSE]


def test_leave_at_the_end_of_a_shift_cuts_it_short():
    start, end = exception_window(MON, None, time(14), None, NY)
    (shift,) = expand_shifts([pattern()], [leave(NURSE, start, end)], MON, MON, NY)
    assert local_hours(shift) == ("08:00", "14:00") and shift.source == "pattern"


def test_leave_at_the_start_of_a_shift_makes_it_start_later():
    start, end = exception_window(MON, None, None, time(10, 30), NY)
    (shift,) = expand_shifts([pattern()], [leave(NURSE, start, end)], MON, MON, NY)
    assert local_hours(shift) == ("10:30", "18:00")


def test_leave_in_the_middle_of_a_shift_splits_it_in_two():
    start, end = exception_window(MON, None, time(12), time(13), NY)
    shifts = expand_shifts([pattern()], [leave(NURSE, start, end)], MON, MON, NY)
    assert [local_hours(s) for s in shifts] == [("08:00", "12:00"), ("13:00", "18:00")]
    assert not covered(at_local(MON, time(11, 30), NY), at_local(MON, time(13, 30), NY),
                       [s.as_staff_shift() for s in shifts])


def test_a_weeks_leave_across_the_autumn_change_removes_every_shift_in_it():
    weekdays = [pattern(weekday=d) for d in range(7)]
    start, end = exception_window(date(2026, 10, 29), date(2026, 11, 4), None, None, NY)
    shifts = expand_shifts(weekdays, [leave(NURSE, start, end)], date(2026, 10, 26), date(2026, 11, 8), NY)
    assert sorted({s.start.astimezone(NY).date() for s in shifts}) == [
        date(2026, 10, 26), date(2026, 10, 27), date(2026, 10, 28),
        date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7), date(2026, 11, 8)]


def test_leave_on_the_spring_change_day_is_that_local_day():
    start, end = exception_window(SPRING_FORWARD, None, None, None, NY)
    assert end - start == timedelta(hours=23)
    shifts = expand_shifts([pattern(weekday=d, start="06:00", end="23:30") for d in (5, 6, 0)],
                           [leave(NURSE, start, end)], date(2027, 3, 13), date(2027, 3, 15), NY)
    assert [s.start.astimezone(NY).date() for s in shifts] == [date(2027, 3, 13), date(2027, 3, 15)]


def test_leave_wins_over_an_extra_shift():
    extra = RotaException(NURSE, "extra", at_local(MON, time(18), NY), at_local(MON, time(20), NY), role="nurse")
    start, end = exception_window(MON, None, None, None, NY)
    assert expand_shifts([], [extra, leave(NURSE, start, end)], MON, MON, NY) == []


# --- extra shifts -----------------------------------------------------------------------------------


def test_an_extra_shift_is_added_in_its_role():
    extra = RotaException(PRESCRIBER, "extra", at_local(MON, time(9), NY), at_local(MON, time(12), NY),
                          role="prescriber")
    (shift,) = expand_shifts([], [extra], MON, MON, NY)
    assert (shift.staff_id, shift.role, shift.source, local_hours(shift)) == (PRESCRIBER, "prescriber", "extra",
                                                                              ("09:00", "12:00"))


def test_an_extra_shift_outside_the_days_is_left_out():
    extra = RotaException(NURSE, "extra", at_local(MON, time(9), NY), at_local(MON, time(12), NY), role="nurse")
    assert expand_shifts([], [extra], MON + timedelta(days=1), MON + timedelta(days=7), NY) == []


def test_an_extra_shift_without_a_role_is_refused():
    extra = RotaException(NURSE, "extra", at_local(MON, time(9), NY), at_local(MON, time(12), NY))
    with pytest.raises(ValueError, match="role"):
        expand_shifts([], [extra], MON, MON, NY)


# --- swaps --------------------------------------------------------------------------------------


def swap(frm, to, start, end) -> RotaException:
    return RotaException(frm, "swap", start, end, swapped_with_id=to)


def test_a_swap_moves_the_whole_shift_to_the_other_person_in_the_same_role():
    start, end = exception_window(MON, None, None, None, NY)
    (shift,) = expand_shifts([pattern()], [swap(NURSE, OTHER_NURSE, start, end)], MON, MON, NY)
    assert (shift.staff_id, shift.role, shift.source, local_hours(shift)) == (OTHER_NURSE, "nurse", "swap",
                                                                              ("08:00", "18:00"))


def test_a_swap_of_the_afternoon_splits_the_shift_between_them():
    start, end = exception_window(MON, None, time(13), None, NY)
    shifts = expand_shifts([pattern()], [swap(NURSE, OTHER_NURSE, start, end)], MON, MON, NY)
    assert [(s.staff_id, local_hours(s)) for s in shifts] == [(NURSE, ("08:00", "13:00")),
                                                              (OTHER_NURSE, ("13:00", "18:00"))]


def test_a_swap_leaves_other_days_alone():
    start, end = exception_window(MON, None, None, None, NY)
    shifts = expand_shifts([pattern(weekday=0), pattern(weekday=1)], [swap(NURSE, OTHER_NURSE, start, end)],
                           MON, MON + timedelta(days=1), NY)
    assert [s.staff_id for s in shifts] == [OTHER_NURSE, NURSE]


def test_cover_for_someone_on_leave_survives_the_leave():
    start, end = exception_window(MON, None, None, None, NY)
    (shift,) = expand_shifts([pattern()], [leave(NURSE, start, end), swap(NURSE, OTHER_NURSE, start, end)],
                             MON, MON, NY)
    assert shift.staff_id == OTHER_NURSE


def test_a_cover_who_is_on_leave_is_not_on_shift_either():
    start, end = exception_window(MON, None, None, None, NY)
    assert expand_shifts([pattern()], [swap(NURSE, OTHER_NURSE, start, end), leave(OTHER_NURSE, start, end)],
                         MON, MON, NY) == []


def test_two_way_swap_exchanges_two_days():
    mon, tue = exception_window(MON, None, None, None, NY), exception_window(MON + timedelta(days=1), None, None,
                                                                             None, NY)
    shifts = expand_shifts([pattern(staff=NURSE, weekday=0), pattern(staff=OTHER_NURSE, weekday=1)],
                           [swap(NURSE, OTHER_NURSE, *mon), swap(OTHER_NURSE, NURSE, *tue)], MON,
                           MON + timedelta(days=1), NY)
    assert [s.staff_id for s in shifts] == [OTHER_NURSE, NURSE]


def test_a_swap_can_hand_over_an_extra_shift():
    extra = RotaException(NURSE, "extra", at_local(MON, time(18), NY), at_local(MON, time(20), NY), role="nurse")
    start, end = exception_window(MON, None, None, None, NY)
    (shift,) = expand_shifts([], [extra, swap(NURSE, OTHER_NURSE, start, end)], MON, MON, NY)
    assert shift.staff_id == OTHER_NURSE


def test_a_swap_without_a_taker_is_refused():
    start, end = exception_window(MON, None, None, None, NY)
    with pytest.raises(ValueError, match="takes the shift over"):
        expand_shifts([pattern()], [RotaException(NURSE, "swap", start, end)], MON, MON, NY)


def test_the_order_exceptions_are_given_in_does_not_matter():
    start, end = exception_window(MON, None, None, None, NY)
    half = exception_window(MON, None, time(15), None, NY)
    exc = [swap(NURSE, OTHER_NURSE, start, end), leave(OTHER_NURSE, *half),
           RotaException(PRESCRIBER, "extra", at_local(MON, time(7), NY), at_local(MON, time(9), NY),
                         role="prescriber")]
    expected = expand_shifts([pattern()], exc, MON, MON, NY)
    assert expand_shifts([pattern()], list(reversed(exc)), MON, MON, NY) == expected
    assert [(s.staff_id, local_hours(s)) for s in expected] == [(PRESCRIBER, ("07:00", "09:00")),
                                                                (OTHER_NURSE, ("08:00", "15:00"))]


# --- exception windows typed as local days --------------------------------------------------------


def test_whole_day_windows_run_midnight_to_midnight_local():
    assert exception_window(MON, None, None, None, NY) == (utc(2026, 11, 2, 5), utc(2026, 11, 3, 5))
    assert exception_window(FALL_BACK, None, None, None, NY)[1] - exception_window(
        FALL_BACK, None, None, None, NY)[0] == timedelta(hours=25)


def test_a_window_over_several_days_ends_at_the_end_time_of_the_last_day():
    start, end = exception_window(MON, MON + timedelta(days=2), time(9), time(17), NY)
    assert (start, end) == (utc(2026, 11, 2, 14), utc(2026, 11, 4, 22))


# --- patterns against each other ----------------------------------------------------------------


def test_patterns_clash_when_hours_and_validity_overlap_for_one_person_and_weekday():
    assert patterns_clash(pattern(), pattern(start="17:00", end="20:00"))
    assert not patterns_clash(pattern(), pattern(start="18:00", end="20:00"))  # touching ends
    assert not patterns_clash(pattern(), pattern(weekday=1))
    assert not patterns_clash(pattern(), pattern(staff=OTHER_NURSE))
    assert not patterns_clash(pattern(valid_until=date(2026, 11, 1)), pattern(valid_from=date(2026, 11, 2)))
    assert patterns_clash(pattern(valid_until=date(2026, 11, 2)), pattern(valid_from=date(2026, 11, 2)))
    assert patterns_clash(pattern(role="nurse"), pattern(role="prescriber"))  # one person, one place at a time


def test_first_clash_names_the_pattern_in_the_way():
    existing = [pattern(weekday=1), pattern(weekday=0, start="07:00", end="09:00")]
    assert first_clash(pattern(), existing) is existing[1]
    assert first_clash(pattern(weekday=2), existing) is None


def test_double_bookings_finds_one_person_twice_at_once():
    a = ShiftSpec(utc(2026, 11, 2, 13), utc(2026, 11, 2, 23), NURSE, "nurse")
    b = ShiftSpec(utc(2026, 11, 2, 22), utc(2026, 11, 3, 1), NURSE, "nurse", "extra")
    c = ShiftSpec(utc(2026, 11, 2, 23), utc(2026, 11, 3, 1), NURSE, "nurse", "extra")
    d = ShiftSpec(utc(2026, 11, 2, 13), utc(2026, 11, 2, 23), OTHER_NURSE, "nurse")
    assert double_bookings([a, b, d]) == [(a, b)]
    assert double_bookings([a, c, d]) == []


# --- head-count per hour -------------------------------------------------------------------------


def test_headcount_counts_who_is_there_for_the_whole_hour():
    shifts = expand_shifts([pattern(staff=NURSE), pattern(staff=OTHER_NURSE, start="08:00", end="12:30"),
                            pattern(staff=PRESCRIBER, role="prescriber", start="09:00", end="17:00")], [],
                           MON, MON, NY)
    hours = {h.local_start.hour: (h.nurses, h.prescribers) for h in hourly_headcount(shifts, MON, NY)}
    assert len(hours) == 24
    assert hours[7] == (0, 0) and hours[8] == (2, 0) and hours[9] == (2, 1)
    assert hours[12] == (1, 1)  # the second nurse leaves at 12:30
    assert hours[17] == (1, 0) and hours[18] == (0, 0)


def test_headcount_has_25_hours_in_autumn_and_23_in_spring():
    assert len(hourly_headcount([], FALL_BACK, NY)) == 25
    spring = hourly_headcount([], SPRING_FORWARD, NY)
    assert len(spring) == 23 and 2 not in {h.local_start.hour for h in spring}


def test_headcount_does_not_count_one_person_twice():
    a = ShiftSpec(at_local(MON, time(8), NY), at_local(MON, time(12), NY), NURSE, "nurse")
    b = ShiftSpec(at_local(MON, time(11), NY), at_local(MON, time(14), NY), NURSE, "nurse", "extra")
    hours = {h.local_start.hour: h.nurses for h in hourly_headcount([a, b], MON, NY)}
    assert hours[11] == 1


# --- small helpers ------------------------------------------------------------------------------


def test_week_start_is_monday():
    assert week_start(date(2026, 11, 8)) == MON  # a Sunday
    assert week_start(MON) == MON


def test_as_staff_shift_is_what_the_planner_reads():
    s = ShiftSpec(utc(2026, 11, 2, 13), utc(2026, 11, 2, 23), NURSE, "nurse")
    assert s.as_staff_shift() == StaffShift("nurse", s.start, s.end, NURSE)


# --- properties ---------------------------------------------------------------------------------

any_day = st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 31))
wall = st.integers(min_value=0, max_value=23 * 4).map(lambda q: time(q // 4, q % 4 * 15))


@given(any_day, st.integers(min_value=0, max_value=27), wall, st.integers(min_value=1, max_value=16))
def test_expansion_of_consecutive_ranges_is_the_expansion_of_the_whole(start, split, start_t, hours):
    end_t = time(min(23, start_t.hour + hours), start_t.minute if start_t.hour + hours <= 23 else 59)
    patterns = [pattern(weekday=d, start=start_t.strftime("%H:%M"), end=end_t.strftime("%H:%M")) for d in range(7)]
    end = start + timedelta(days=27)
    middle = start + timedelta(days=split)
    whole = expand_shifts(patterns, [], start, end, NY)
    parts = expand_shifts(patterns, [], start, middle, NY) + expand_shifts(patterns, [], middle + timedelta(days=1),
                                                                           end, NY)
    assert whole == parts
    lo, hi = day_bounds(start, end, NY)
    assert all(lo <= s.start < hi and s.end > s.start for s in whole)


@given(any_day, st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=6),
       st.sampled_from(["leave", "swap"]))
def test_exceptions_never_add_time_nor_leave_anyone_on_shift_during_their_leave(start, a, b, kind):
    patterns = [pattern(staff=NURSE, weekday=d) for d in range(7)] + [pattern(staff=OTHER_NURSE, weekday=d,
                                                                              start="12:00", end="20:00")
                                                                      for d in range(7)]
    first, last = start + timedelta(days=min(a, b)), start + timedelta(days=max(a, b))
    window = exception_window(first, last, time(10), time(15), NY)
    exc = [leave(NURSE, *window)] if kind == "leave" else [swap(NURSE, OTHER_NURSE, *window)]
    base = expand_shifts(patterns, [], start, start + timedelta(days=6), NY)
    after = expand_shifts(patterns, exc, start, start + timedelta(days=6), NY)
    total = sum((s.end - s.start for s in after), timedelta())
    assert total <= sum((s.end - s.start for s in base), timedelta())
    if kind == "leave":
        assert all(not (s.staff_id == NURSE and s.start < window[1] and window[0] < s.end) for s in after)
    else:
        assert total == sum((s.end - s.start for s in base), timedelta())  # a swap moves time, never loses it
