"""The staff rota, pure: weekly patterns + exceptions → the concrete shifts of a site.

No Flask, no database, no clock. Everything here takes values and returns values:

- a **weekly pattern** says "this person works this weekday, HH:MM–HH:MM local, in this role, from
  this day (until that day)";
- an **exception** overrides the patterns for a stretch of time: *leave* removes (or cuts) the
  person's shifts, an *extra* shift adds one, a *swap* hands the person's shifts to someone else.

Wall-clock times are laid out day by day in the site's own zone and only then turned into UTC
instants, so a pattern of 08:00–18:00 starts at 08:00 local on both sides of a DST change (and a
night that loses or gains an hour gives a shorter or longer shift, as the clock on the wall says).

The order exceptions are applied in is fixed, so the result never depends on the order they were
typed in: patterns, then extras, then swaps, then leave. Leave has the last word: a person on leave
is never on shift, and covering an absence is a swap *from* the absent person (made before or after
the leave, it moves their shift to the cover before the leave removes what is left).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from clinic.sessions.planner import StaffShift

ROTA_ROLES = ("nurse", "prescriber")
LEAVE, SWAP, EXTRA = "leave", "swap", "extra"
EXCEPTION_KINDS = (LEAVE, SWAP, EXTRA)
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class WeeklyPattern:
    """One line of the weekly rota. `start`/`end` are wall-clock times in the site's zone, on one day."""

    staff_id: int
    role: str
    weekday: int  # 0 = Monday
    start: time
    end: time
    valid_from: date
    valid_until: date | None = None  # the last day it applies; None = open-ended
    pattern_id: int | None = None

    def applies_on(self, day: date) -> bool:
        """Whether this pattern puts the person on shift on local `day`."""
        return (day.weekday() == self.weekday and self.valid_from <= day
                and (self.valid_until is None or day <= self.valid_until))


@dataclass(frozen=True)
class RotaException:
    """Leave, a swap or an extra shift, as UTC instants [start, end)."""

    staff_id: int
    kind: str  # leave | swap | extra
    start: datetime
    end: datetime
    role: str | None = None  # needed for an extra shift
    swapped_with_id: int | None = None  # needed for a swap: who takes the shifts over
    exception_id: int | None = None


@dataclass(frozen=True, order=True)
class ShiftSpec:
    """A concrete shift: who is on site, when (UTC), as what, and where it came from."""

    start: datetime
    end: datetime
    staff_id: int
    role: str
    source: str = "pattern"  # pattern | extra | swap

    def as_staff_shift(self) -> StaffShift:
        """The shift as the series planner reads it."""
        return StaffShift(self.role, self.start, self.end, self.staff_id)


# --- local days and instants --------------------------------------------------------------------


def at_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `wall` on `day` in `zone`.

    A wall time that does not exist (the hour skipped in spring) is read with the offset before the
    change, i.e. it lands one hour later on the new clock (02:30 → 03:30); a wall time that happens
    twice (the hour repeated in autumn) is its first occurrence.
    """
    return datetime.combine(day, wall, zone).astimezone(UTC)


def day_bounds(start_day: date, end_day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight starting `start_day`, local midnight after `end_day`) as UTC instants."""
    return at_local(start_day, time(0), zone), at_local(end_day + timedelta(days=1), time(0), zone)


def days(start_day: date, end_day: date) -> list[date]:
    """Every day from `start_day` to `end_day`, both included."""
    return [start_day + timedelta(days=i) for i in range((end_day - start_day).days + 1)]


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def exception_window(starts_on: date, ends_on: date | None, start_time: time | None, end_time: time | None,
                     zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC window of an exception typed as local days and optional times.

    Without times the window is whole days: from midnight starting `starts_on` to midnight after
    `ends_on` (or `starts_on`). With a start time it begins then; with an end time it ends then on the
    last day. The caller checks that the end comes after the start.
    """
    last = ends_on or starts_on
    start = at_local(starts_on, start_time or time(0), zone)
    end = at_local(last, end_time, zone) if end_time else at_local(last + timedelta(days=1), time(0), zone)
    return start, end


# --- patterns against each other ----------------------------------------------------------------


def _overlap(a_start, a_end, b_start, b_end) -> bool:
    return a_start < b_end and b_start < a_end


def patterns_clash(a: WeeklyPattern, b: WeeklyPattern) -> bool:
    """Whether two patterns would put the same person on shift twice at once.

    Same person, same weekday, overlapping hours and overlapping validity (sites do not matter: a
    person cannot be at two sites at once). Touching ends (08:00–12:00 and 12:00–16:00) do not clash.
    """
    if a.staff_id != b.staff_id or a.weekday != b.weekday:
        return False
    if not _overlap(a.start, a.end, b.start, b.end):
        return False
    far = date.max
    return a.valid_from <= (b.valid_until or far) and b.valid_from <= (a.valid_until or far)


def first_clash(new: WeeklyPattern, existing: Iterable[WeeklyPattern]) -> WeeklyPattern | None:
    """The first existing pattern that `new` clashes with, if any."""
    return next((p for p in existing if patterns_clash(new, p)), None)


# --- expansion ----------------------------------------------------------------------------------


def _without(shift: ShiftSpec, start: datetime, end: datetime) -> list[ShiftSpec]:
    """What is left of `shift` outside [start, end) (zero, one or two pieces)."""
    if not _overlap(shift.start, shift.end, start, end):
        return [shift]
    pieces = []
    if shift.start < start:
        pieces.append(replace(shift, end=start))
    if end < shift.end:
        pieces.append(replace(shift, start=end))
    return pieces


def expand_shifts(
    patterns: Sequence[WeeklyPattern],
    exceptions: Sequence[RotaException],
    start_day: date,
    end_day: date,
    zone: ZoneInfo,
    *,
    closed_days: Iterable[date] = (),
) -> list[ShiftSpec]:
    """The concrete shifts of local days `start_day` to `end_day` (both included), sorted by start.

    1. Each pattern that applies on a day gives a shift from its start to its end, local to `zone`
       (days in `closed_days`, when the site is shut, give none).
    2. Each extra shift starting within the days is added (`role` required).
    3. Each swap hands the part of the person's shifts inside its window to `swapped_with_id`, in the
       same role; a shift only partly inside is split, the person keeping the rest.
    4. Each leave removes the part of the person's shifts inside its window: a whole-day leave removes
       the day's shift, a leave of a few hours cuts it (into two pieces if it falls in the middle).

    Exceptions outside the days change nothing. Only shifts *starting* within the days are returned,
    so consecutive ranges expand to disjoint lists.
    """
    if end_day < start_day:
        return []
    closed = frozenset(closed_days)
    lo, hi = day_bounds(start_day, end_day, zone)
    shifts: list[ShiftSpec] = []
    for day in days(start_day, end_day):
        if day in closed:
            continue
        for p in patterns:
            if p.applies_on(day):
                start, end = at_local(day, p.start, zone), at_local(day, p.end, zone)
                if end > start:  # always so (start < end, one offset rule); kept so no empty row is ever written
                    shifts.append(ShiftSpec(start, end, p.staff_id, p.role, "pattern"))

    by_kind = {kind: [e for e in exceptions if e.kind == kind] for kind in EXCEPTION_KINDS}
    for e in by_kind[EXTRA]:
        if e.role is None:
            raise ValueError("an extra shift needs a role")
        if lo <= e.start < hi:
            shifts.append(ShiftSpec(e.start, e.end, e.staff_id, e.role, "extra"))

    for e in by_kind[SWAP]:
        if e.swapped_with_id is None:
            raise ValueError("a swap needs the person who takes the shift over")
        moved: list[ShiftSpec] = []
        for s in shifts:
            if s.staff_id == e.staff_id and _overlap(s.start, s.end, e.start, e.end):
                moved.extend(_without(s, e.start, e.end))
                moved.append(replace(s, start=max(s.start, e.start), end=min(s.end, e.end),
                                     staff_id=e.swapped_with_id, source="swap"))
            else:
                moved.append(s)
        shifts = moved

    for e in by_kind[LEAVE]:
        shifts = [piece for s in shifts
                  for piece in (_without(s, e.start, e.end) if s.staff_id == e.staff_id else [s])]

    return sorted(s for s in shifts if s.end > s.start)


def double_bookings(shifts: Iterable[ShiftSpec]) -> list[tuple[ShiftSpec, ShiftSpec]]:
    """Pairs of shifts that put one person on shift twice at once (touching ends are fine)."""
    by_person: dict[int, list[ShiftSpec]] = {}
    for s in shifts:
        by_person.setdefault(s.staff_id, []).append(s)
    pairs = []
    for mine in by_person.values():
        mine.sort()
        for i, a in enumerate(mine):
            for b in mine[i + 1:]:
                if b.start >= a.end:
                    break
                pairs.append((a, b))
    return pairs


# --- head-count ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourCount:
    """Who is on shift for the whole of one local hour of a day (the fewest at any moment in it)."""

    local_start: datetime  # aware, in the site's zone
    start: datetime  # UTC
    nurses: int
    prescribers: int


def hourly_headcount(shifts: Sequence[ShiftSpec], day: date, zone: ZoneInfo) -> list[HourCount]:
    """Nurses and prescribers on shift in each hour of local `day` (23 or 25 hours on DST days).

    An hour counts the fewest people on shift at any moment within it, so a nurse leaving at 12:30
    does not count for 12:00–13:00: the figure is what can be relied on for the whole hour.
    """
    lo, hi = day_bounds(day, day, zone)
    relevant = [s for s in shifts if _overlap(s.start, s.end, lo, hi)]
    out = []
    t = lo
    while t < hi:
        t_end = min(t + timedelta(hours=1), hi)
        points = {t} | {x for s in relevant for x in (s.start, s.end) if t < x < t_end}
        counts = {role: min(len({s.staff_id for s in relevant if s.role == role and s.start <= p < s.end})
                            for p in points) for role in ROTA_ROLES}
        out.append(HourCount(t.astimezone(zone), t, counts["nurse"], counts["prescriber"]))
        t = t_end
    return out
