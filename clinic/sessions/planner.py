"""The series planner: protocol + constraints + existing bookings + "now" → proposed sessions.

A pure function (no database, no clock). It places every session of a series at once, each one
satisfying together:

- the site's opening hours in the site's own time zone (so correct across both DST changes) and its
  closed days, for the session's whole chair time (pre-assessment + dosing + recovery);
- a chair free for the whole chair time;
- nurse capacity: at no moment is the nursing load above what the nurses on shift can carry, where a
  patient in dosing needs 1/ratio_dosing of a nurse and a patient in pre-assessment or recovery needs
  1/ratio_recovery of one;
- a prescriber on site for the whole dosing window;
- the patient is never booked twice at overlapping times;
- the protocol's minimum and maximum days between sessions and its sessions-per-week limit, counted
  over any 7 consecutive days (per phase for protocols such as esketamine: twice weekly for four
  weeks, then weekly);
- level-loading: on a day, the start time with the fewest other starts nearby wins, so starts are
  staggered rather than piled at opening time.

A session that cannot be placed is never dropped or moved silently: the plan says which constraint
blocked it most often and offers the nearest alternatives (outside the spacing window if need be),
and the sessions after it are reported as waiting on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The constraints, in the order they are checked; the names are shown to people.
CLOSED = "the site is closed that day"
HOURS = "outside opening hours"
WINDOW = "outside the preferred days or times"
PAST = "in the past"
CHAIR = "no chair free"
NURSES = "not enough nurses on shift"
PRESCRIBER = "no prescriber on site during dosing"
PATIENT = "the patient is already booked then"
WEEKLY = "the weekly session limit is reached"


@dataclass(frozen=True)
class Phase:
    """A block of the series: `sessions` sessions at most `per_week` a week."""

    sessions: int
    per_week: int


@dataclass(frozen=True)
class SeriesRule:
    """What a protocol says about placing its sessions."""

    sessions: int
    pre_minutes: int
    dosing_minutes: int
    post_minutes: int
    min_days_between: int
    max_days_between: int | None
    max_per_week: int
    phases: tuple[Phase, ...] = ()

    @property
    def chair_minutes(self) -> int:
        return self.pre_minutes + self.dosing_minutes + self.post_minutes

    def per_week_for(self, number: int) -> int:
        """The weekly limit that applies to session `number` (1-based)."""
        seen = 0
        for phase in self.phases:
            seen += phase.sessions
            if number <= seen:
                return min(phase.per_week, self.max_per_week)
        return self.max_per_week


@dataclass(frozen=True)
class SiteCalendar:
    """A site as the planner needs it. `hours` maps weekday (0 = Monday) to local opening spans."""

    zone: ZoneInfo
    hours: dict[int, tuple[tuple[time, time], ...]]
    chair_ids: tuple[int, ...]
    closed_days: frozenset[date] = frozenset()
    nurse_ratio_dosing: int = 2
    nurse_ratio_recovery: int = 4
    granularity_minutes: int = 15


@dataclass(frozen=True)
class Booking:
    """An existing active session at the site (or anywhere, for the patient check)."""

    chair_id: int | None
    patient_id: int
    start: datetime
    end: datetime
    dosing_start: datetime
    dosing_end: datetime


@dataclass(frozen=True)
class StaffShift:
    role: str  # "nurse" or "prescriber"
    start: datetime
    end: datetime
    staff_id: int | None = None


@dataclass(frozen=True)
class Preferences:
    earliest: date
    weekdays: frozenset[int] | None = None  # 0 = Monday; None = any open day
    window: tuple[time, time] | None = None  # local start-time window; None = any time open


@dataclass(frozen=True)
class Slot:
    """One placed session."""

    number: int
    chair_id: int
    start: datetime
    end: datetime
    dosing_start: datetime
    dosing_end: datetime

    def as_booking(self, patient_id: int) -> Booking:
        return Booking(self.chair_id, patient_id, self.start, self.end, self.dosing_start, self.dosing_end)


@dataclass(frozen=True)
class Unplaced:
    """A session the planner could not place, with why and what is nearest."""

    number: int
    reason: str
    blockers: dict[str, int] = field(default_factory=dict)
    alternatives: tuple[Slot, ...] = ()
    alternative_notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeriesPlan:
    slots: tuple[Slot, ...]
    unplaced: tuple[Unplaced, ...]

    @property
    def complete(self) -> bool:
        return not self.unplaced


# --- the load model -----------------------------------------------------------------------------


def _phases_of(b: Booking | Slot) -> list[tuple[datetime, datetime, str]]:
    """(start, end, kind) of the attention phases of a session: pre/recovery are 'watch', dosing is 'dose'."""
    out = []
    if b.dosing_start > b.start:
        out.append((b.start, b.dosing_start, "watch"))
    out.append((b.dosing_start, b.dosing_end, "dose"))
    if b.end > b.dosing_end:
        out.append((b.dosing_end, b.end, "watch"))
    return out


def nurse_load_ok(
    candidate: Slot | Booking,
    bookings: Sequence[Booking],
    nurse_shifts: Sequence[StaffShift],
    ratio_dosing: int,
    ratio_recovery: int,
) -> bool:
    """Whether adding `candidate` keeps the nursing load within the nurses on shift at every moment.

    Load is piecewise constant, so it is enough to check it at every boundary inside the candidate's
    chair time. Integer arithmetic: dosing × ratio_recovery + watch × ratio_dosing ≤ nurses × both.
    """
    lo, hi = candidate.start, candidate.end
    relevant = [b for b in bookings if b.start < hi and b.end > lo]
    shifts = [s for s in nurse_shifts if s.start < hi and s.end > lo]
    points = {lo}
    for b in [*relevant, candidate]:
        for start, end, _ in _phases_of(b):
            points.update(t for t in (start, end) if lo <= t < hi)
    points.update(t for s in shifts for t in (s.start, s.end) if lo <= t < hi)
    all_phases = [p for b in [*relevant, candidate] for p in _phases_of(b)]
    for t in points:
        dosing = sum(1 for s, e, k in all_phases if k == "dose" and s <= t < e)
        watch = sum(1 for s, e, k in all_phases if k == "watch" and s <= t < e)
        nurses = sum(1 for s in shifts if s.start <= t < s.end)
        if dosing * ratio_recovery + watch * ratio_dosing > nurses * ratio_dosing * ratio_recovery:
            return False
    return True


def within_weekly_limit(days: Iterable[date], candidate: date, limit: int) -> bool:
    """Whether a session on `candidate` keeps every 7 consecutive days at `limit` sessions or fewer."""
    days = list(days)
    for first in (candidate - timedelta(days=k) for k in range(7)):
        last = first + timedelta(days=6)
        if 1 + sum(1 for d in days if first <= d <= last) > limit:
            return False
    return True


def covered(start: datetime, end: datetime, shifts: Iterable[StaffShift]) -> bool:
    """Whether the union of `shifts` covers [start, end) without a gap."""
    t = start
    for s in sorted(shifts, key=lambda s: s.start):
        if s.start > t:
            break
        t = max(t, s.end)
        if t >= end:
            return True
    return t >= end


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


# --- candidates ---------------------------------------------------------------------------------


def _local_starts(day: date, site: SiteCalendar, rule: SeriesRule, prefs: Preferences
                  ) -> tuple[list[datetime], str | None]:
    """Start instants (UTC) on `day` that fit the opening hours and the preferences, or why none do.

    Wall-clock times are laid out in the site's zone and converted one by one, so a day on which the
    clocks change still opens and closes at its local hours.
    """
    if day in site.closed_days:
        return [], CLOSED
    spans = site.hours.get(day.weekday(), ())
    if not spans:
        return [], CLOSED
    if prefs.weekdays is not None and day.weekday() not in prefs.weekdays:
        return [], WINDOW
    step = timedelta(minutes=site.granularity_minutes)
    length = timedelta(minutes=rule.chair_minutes)
    starts: list[datetime] = []
    reason = HOURS
    for open_t, close_t in spans:
        close_utc = datetime.combine(day, close_t, site.zone).astimezone(UTC)
        wall = datetime.combine(day, open_t)
        while wall.date() == day:
            as_utc = wall.replace(tzinfo=site.zone).astimezone(UTC)
            if as_utc + length > close_utc:
                break
            # A wall-clock time that does not exist (spring forward) does not round-trip: skip it.
            if as_utc.astimezone(site.zone).replace(tzinfo=None) == wall:
                if prefs.window is None or prefs.window[0] <= wall.time() <= prefs.window[1]:
                    starts.append(as_utc)
                else:
                    reason = WINDOW
            wall += step
    return starts, (None if starts else reason)


def _slot(number: int, chair_id: int, start: datetime, rule: SeriesRule) -> Slot:
    dosing_start = start + timedelta(minutes=rule.pre_minutes)
    dosing_end = dosing_start + timedelta(minutes=rule.dosing_minutes)
    return Slot(number, chair_id, start, start + timedelta(minutes=rule.chair_minutes), dosing_start, dosing_end)


@dataclass
class _Context:
    rule: SeriesRule
    site: SiteCalendar
    bookings: list[Booking]
    nurse_shifts: list[StaffShift]
    prescriber_shifts: list[StaffShift]
    patient_id: int
    now: datetime


def _check(ctx: _Context, number: int, start: datetime, series_days: list[date]) -> tuple[Slot | None, str]:
    """The slot at `start` on the first free chair, or the first constraint that blocks it."""
    if start < ctx.now:
        return None, PAST
    if not within_weekly_limit(series_days, start.astimezone(ctx.site.zone).date(), ctx.rule.per_week_for(number)):
        return None, WEEKLY
    probe = _slot(number, -1, start, ctx.rule)
    if any(b.patient_id == ctx.patient_id and _overlaps(b.start, b.end, probe.start, probe.end)
           for b in ctx.bookings):
        return None, PATIENT
    busy = {b.chair_id for b in ctx.bookings if _overlaps(b.start, b.end, probe.start, probe.end)}
    free = [c for c in ctx.site.chair_ids if c not in busy]
    if not free:
        return None, CHAIR
    if not covered(probe.dosing_start, probe.dosing_end, ctx.prescriber_shifts):
        return None, PRESCRIBER
    if not nurse_load_ok(probe, ctx.bookings, ctx.nurse_shifts, ctx.site.nurse_ratio_dosing,
                         ctx.site.nurse_ratio_recovery):
        return None, NURSES
    return replace(probe, chair_id=free[0]), ""


def _crowding(start: datetime, bookings: Sequence[Booking], site: SiteCalendar) -> int:
    """Level-loading: how many of the site's sessions start close to `start` (fewer is better)."""
    near = timedelta(minutes=max(30, 2 * site.granularity_minutes))
    chairs = set(site.chair_ids)
    return sum(1 for b in bookings if b.chair_id in chairs and abs(b.start - start) < near)


def _best_on_day(ctx: _Context, number: int, day: date, prefs: Preferences, series_days: list[date],
                 blockers: Counter) -> Slot | None:
    """The best slot on `day`: the least crowded start that passes every check (then the earliest)."""
    starts, why = _local_starts(day, ctx.site, ctx.rule, prefs)
    if why:
        blockers[why] += 1
        return None
    # Only what overlaps this day matters; narrowing once keeps the search linear in the day's load.
    lo = starts[0] - timedelta(hours=1)
    hi = starts[-1] + timedelta(minutes=ctx.rule.chair_minutes, hours=1)
    day_ctx = _Context(ctx.rule, ctx.site, [b for b in ctx.bookings if b.start < hi and b.end > lo],
                       [s for s in ctx.nurse_shifts if s.start < hi and s.end > lo],
                       [s for s in ctx.prescriber_shifts if s.start < hi and s.end > lo], ctx.patient_id, ctx.now)
    ranked = sorted(starts, key=lambda t: (_crowding(t, day_ctx.bookings, ctx.site), t))
    for start in ranked:
        slot, reason = _check(day_ctx, number, start, series_days)
        if slot is not None:
            return slot
        blockers[reason] += 1
    return None


def plan_series(
    rule: SeriesRule,
    site: SiteCalendar,
    *,
    bookings: Sequence[Booking],
    shifts: Sequence[StaffShift],
    prefs: Preferences,
    patient_id: int,
    now: datetime,
    first_number: int = 1,
    last_session_day: date | None = None,
    fixed: Sequence[Slot] = (),
    search_days: int = 42,
) -> SeriesPlan:
    """Propose sessions `first_number` … `rule.sessions` of a series.

    `bookings` are the site's active sessions plus the patient's anywhere; `shifts` the site's nurse
    and prescriber shifts; `fixed` the course's sessions already held or kept (they count for the
    weekly limits, and the spacing runs on from `last_session_day`). For the first session the search
    runs `search_days` days from `prefs.earliest`; every later one must fall within the protocol's
    spacing of the one before.
    """
    ctx = _Context(rule, site, list(bookings), [s for s in shifts if s.role == "nurse"],
                   [s for s in shifts if s.role == "prescriber"], patient_id, now)

    def local_day(t: datetime) -> date:
        return t.astimezone(site.zone).date()

    series_days = [local_day(s.start) for s in fixed]
    slots: list[Slot] = []
    previous = last_session_day
    for number in range(first_number, rule.sessions + 1):
        if previous is None:
            first_day, last_day = prefs.earliest, prefs.earliest + timedelta(days=search_days)
        else:
            first_day = max(previous + timedelta(days=rule.min_days_between), prefs.earliest)
            last_day = (previous + timedelta(days=rule.max_days_between) if rule.max_days_between is not None
                        else first_day + timedelta(days=search_days))
        first_day = max(first_day, local_day(now))
        blockers: Counter = Counter()
        placed = None
        day = first_day
        while day <= last_day and placed is None:
            placed = _best_on_day(ctx, number, day, prefs, series_days, blockers)
            day += timedelta(days=1)
        if placed is None:
            alternatives, notes = _nearest_alternatives(ctx, number, last_day, prefs, series_days,
                                                        previous, rule)
            reason = _explain(blockers, first_day, last_day)
            unplaced = [Unplaced(number, reason, dict(blockers), alternatives, notes)]
            unplaced += [Unplaced(n, f"waits on session {number}, which could not be placed")
                         for n in range(number + 1, rule.sessions + 1)]
            return SeriesPlan(tuple(slots), tuple(unplaced))
        slots.append(placed)
        ctx.bookings.append(placed.as_booking(patient_id))
        series_days.append(local_day(placed.start))
        previous = local_day(placed.start)
    return SeriesPlan(tuple(slots), ())


def _explain(blockers: Counter, first_day: date, last_day: date) -> str:
    window = (f"on {first_day:%a %d %b %Y}" if first_day == last_day
              else f"between {first_day:%a %d %b} and {last_day:%a %d %b %Y}")
    if not blockers:
        return f"no opening {window}"
    main, _ = blockers.most_common(1)[0]
    return f"no slot {window}: mostly {main}"


def _nearest_alternatives(ctx: _Context, number: int, after: date, prefs: Preferences, series_days: list[date],
                          previous: date | None, rule: SeriesRule, *, want: int = 3,
                          look_days: int = 21) -> tuple[tuple[Slot, ...], tuple[str, ...]]:
    """The nearest slots past the window (relaxing the preferences if they were the obstacle)."""
    found: list[Slot] = []
    notes: list[str] = []
    relaxed = Preferences(prefs.earliest)
    for p in (prefs, relaxed):
        day = after + timedelta(days=1)
        while day <= after + timedelta(days=look_days) and len(found) < want:
            slot = _best_on_day(ctx, number, day, p, series_days, Counter())
            if slot and slot.start not in {f.start for f in found}:
                found.append(slot)
                bits = []
                if previous is not None and rule.max_days_between is not None:
                    gap = (day - previous).days
                    if gap > rule.max_days_between:
                        bits.append(f"{gap} days after the previous session (maximum {rule.max_days_between})")
                if p is relaxed and prefs != relaxed:
                    bits.append("outside the preferred days or times")
                notes.append("; ".join(bits) or "next opening")
            day += timedelta(days=1)
        if found:
            break
    return tuple(found), tuple(notes)


def slot_problem(
    rule: SeriesRule,
    site: SiteCalendar,
    slot: Slot,
    *,
    bookings: Sequence[Booking],
    shifts: Sequence[StaffShift],
    patient_id: int,
    now: datetime,
) -> str | None:
    """Why `slot` (on its own chair) cannot be booked now, or None if it can.

    Used to check a confirmed proposal again inside the booking transaction: the world may have
    changed since the proposal was made.
    """
    if slot.start < now:
        return PAST
    if slot.chair_id not in site.chair_ids:
        return CHAIR
    day = slot.start.astimezone(site.zone).date()
    starts, why = _local_starts(day, site, rule, Preferences(day))
    if why == CLOSED:
        return CLOSED
    if slot.start not in starts:
        return HOURS
    if any(b.patient_id == patient_id and _overlaps(b.start, b.end, slot.start, slot.end) for b in bookings):
        return PATIENT
    if any(b.chair_id == slot.chair_id and _overlaps(b.start, b.end, slot.start, slot.end) for b in bookings):
        return CHAIR
    if not covered(slot.dosing_start, slot.dosing_end, [s for s in shifts if s.role == "prescriber"]):
        return PRESCRIBER
    if not nurse_load_ok(slot, bookings, [s for s in shifts if s.role == "nurse"], site.nurse_ratio_dosing,
                         site.nurse_ratio_recovery):
        return NURSES
    return None


def spacing_problems(rule: SeriesRule, slots: Sequence[Slot], zone: ZoneInfo,
                     previous_day: date | None = None) -> list[str]:
    """The protocol's spacing and weekly limits, checked over a whole series (in the site's days)."""
    problems = []
    days = [s.start.astimezone(zone).date() for s in sorted(slots, key=lambda s: s.start)]
    prev = previous_day
    for slot, day in zip(sorted(slots, key=lambda s: s.start), days, strict=True):
        if prev is not None:
            gap = (day - prev).days
            if gap < rule.min_days_between:
                problems.append(f"session {slot.number}: {gap} days after the previous one "
                                f"(at least {rule.min_days_between})")
            if rule.max_days_between is not None and gap > rule.max_days_between:
                problems.append(f"session {slot.number}: {gap} days after the previous one "
                                f"(at most {rule.max_days_between})")
        prev = day
    for i, (slot, day) in enumerate(zip(sorted(slots, key=lambda s: s.start), days, strict=True)):
        if not within_weekly_limit(days[:i], day, rule.per_week_for(slot.number)):
            problems.append(f"session {slot.number}: more than {rule.per_week_for(slot.number)} "
                            "sessions within 7 days")
            break
    return problems
