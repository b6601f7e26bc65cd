"""Benchmark: place 500 treatment courses (about 3,000 sessions) into 2 sites / 20 chairs over 12 weeks.

    .venv/bin/python benchmarks/place_courses.py                      # pure planner, in memory (default)
    .venv/bin/python benchmarks/place_courses.py --db sqlite --courses 100
    .venv/bin/python benchmarks/place_courses.py --db postgresql --courses 100

A deterministic generator (seeded `random.Random`) builds the network: two sites in two time zones
(12 + 8 chairs), 12 weeks of nurse and prescriber shifts with day-to-day variation (leave, a short
week, a missing afternoon prescriber), and a stream of course orders with a realistic protocol mix
and patient preferences. Each course is then placed in order of ordering day, as the booking service
would: the planner sees the site's bookings (and the patient's) made so far, and a series is booked
whole or not at all.

Mode `pure` calls `plan_series` against a growing in-memory list of bookings. Mode `--db` goes
through the real services (`propose` then `book_course`) against a freshly migrated database (a
temporary SQLite file, or a fresh PostgreSQL schema that is dropped afterwards).

Afterwards an independent checker (`check_schedule`, which uses only the planner's public
dataclasses, never its helpers) re-verifies every booked session: opening hours in the site's zone
and closed days, chair and patient double booking, nurse load at every boundary, prescriber cover
of every dosing window, the protocol's spacing and weekly limits. Any violation makes the exit
status 1.
"""

from __future__ import annotations

import argparse
import random
import sys
import time as clock
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: make `clinic` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clinic.sessions.planner import (  # noqa: E402 - after the path fix above
    Booking,
    Phase,
    Preferences,
    SeriesPlan,
    SeriesRule,
    SiteCalendar,
    StaffShift,
    plan_series,
)
from clinic.sessions.protocols import spec  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = date(2027, 1, 11)  # a Monday; the 12 weeks include the spring-forward change (14 March 2027)
WEEKS = 12
SEARCH_DAYS = 42  # what `propose` uses by default
GRANULARITY = 15

# The protocol mix: 350 × 6 + 50 × 12 + 40 × 6 + 60 × 1 = 3,000 sessions in 500 courses.
MIX = {"iv-induction": 350, "esketamine-nasal": 50, "im-ketamine": 40, "iv-booster": 60}
# Earliest-start spread (days from START): inductions over the first 8 weeks; esketamine (8 weeks
# long, and often 9 once a session slips) over the first 3, so that it can finish inside the 12;
# boosters over the first 10.
EARLIEST_SPREAD = {"iv-induction": 55, "im-ketamine": 55, "esketamine-nasal": 20, "iv-booster": 69}


# --- the network --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SitePlan:
    code: str
    name: str
    zone: str
    chairs: int
    hours: dict[int, tuple[tuple[time, time], ...]]
    closed: tuple[date, ...]
    ratio_dosing: int
    ratio_recovery: int
    nurses_early: int  # usual weekday nurses on the early shift ...
    nurses_late: int  # ... and on the late one
    nurse_pool: int
    prescriber_pool: int


def _span(a: str, b: str) -> tuple[tuple[time, time], ...]:
    return ((time.fromisoformat(a), time.fromisoformat(b)),)


SITES = (
    SitePlan(code="HBR", name="Harbourview", zone="America/New_York", chairs=12,
             hours={0: _span("08:00", "18:00"), 1: _span("08:00", "18:00"), 2: _span("08:00", "18:00"),
                    3: _span("08:00", "19:00"), 4: _span("08:00", "18:00"), 5: _span("08:00", "12:30")},
             closed=(date(2027, 1, 18),),  # Martin Luther King Jr. Day
             ratio_dosing=2, ratio_recovery=4, nurses_early=3, nurses_late=2, nurse_pool=8, prescriber_pool=3),
    SitePlan(code="LKS", name="Lakeside", zone="America/Chicago", chairs=8,
             hours={0: _span("08:00", "19:00"), 1: _span("08:00", "19:00"), 2: _span("08:00", "19:00"),
                    3: _span("08:00", "19:00"), 4: _span("08:00", "17:00")},
             closed=(date(2027, 2, 15),),  # Presidents' Day
             ratio_dosing=2, ratio_recovery=3, nurses_early=2, nurses_late=2, nurse_pool=6, prescriber_pool=2),
)

WEEKDAY_SETS = {
    "HBR": ({0, 2, 4}, {1, 3}, {0, 1, 2, 3}, {1, 2, 3, 4}, {0, 2}, {1, 3, 5}, {0, 3, 5}),
    "LKS": ({0, 2, 4}, {1, 3}, {0, 1, 2, 3}, {1, 2, 3, 4}, {0, 2}, {1, 3, 4}),
}
WINDOWS = ((time(8), time(10, 30)), (time(10), time(13)), (time(12, 30), time(16)), (time(15), time(17, 30)))


@dataclass(frozen=True)
class Order:
    """One course order, as a prescriber would place it."""

    index: int
    patient: int
    protocol: str
    site: str
    earliest: date
    ordered: date
    weekdays: frozenset[int] | None = None
    window: tuple[time, time] | None = None

    def preferences(self) -> Preferences:
        return Preferences(self.earliest, self.weekdays, self.window)


@dataclass
class Network:
    start: date
    weeks: int
    now: datetime
    calendars: dict[str, SiteCalendar]
    shifts: dict[str, list[StaffShift]]
    orders: list[Order]
    staff: dict[int, tuple[str, str]] = field(default_factory=dict)  # staff id -> (site, role)
    seed: int = 0

    @property
    def end(self) -> date:
        return self.start + timedelta(weeks=self.weeks)


def series_rule(code: str) -> SeriesRule:
    """The planner's rule for a seed protocol (what `booking.protocol_rule` derives from the row)."""
    p = spec(code)
    phases = tuple(Phase(ph["weeks"] * ph["per_week"], ph["per_week"]) for ph in p.schedule.get("phases", []))
    return SeriesRule(sessions=p.induction_sessions, pre_minutes=p.pre_minutes, dosing_minutes=p.infusion_minutes,
                      post_minutes=p.post_minutes, min_days_between=p.min_days_between,
                      max_days_between=p.max_days_between, max_per_week=p.max_per_week, phases=phases)


RULES = {code: series_rule(code) for code in MIX}


def _at(day: date, t: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, t, zone).astimezone(UTC)


def _plus(t: time, minutes: int) -> time:
    return (datetime.combine(date(2000, 1, 1), t) + timedelta(minutes=minutes)).time()


def _shifts_for_site(rng: random.Random, plan: SitePlan, first_staff_id: int, start: date, weeks: int
                     ) -> tuple[list[StaffShift], dict[int, tuple[str, str]]]:
    """Nurse and prescriber shifts at one site, with leave, a short-staffed week and missing cover."""
    zone = ZoneInfo(plan.zone)
    nurses = list(range(first_staff_id, first_staff_id + plan.nurse_pool))
    prescribers = list(range(nurses[-1] + 1, nurses[-1] + 1 + plan.prescriber_pool))
    staff = {n: (plan.code, "nurse") for n in nurses} | {p: (plan.code, "prescriber") for p in prescribers}
    short_week = rng.randrange(2, weeks - 2)  # a week with one nurse fewer every day (flu, a vacancy)
    out: list[StaffShift] = []
    for i in range(weeks * 7):
        day = start + timedelta(days=i)
        spans = plan.hours.get(day.weekday(), ())
        if not spans or day in plan.closed:
            continue
        opens, closes = spans[0][0], spans[-1][1]
        long_day = (datetime.combine(day, closes) - datetime.combine(day, opens)) > timedelta(hours=6)
        if long_day:
            early = (_plus(opens, -30), _plus(opens, 8 * 60 + 30))
            late = (_plus(closes, -8 * 60 - 30), _plus(closes, 30))
            n_early, n_late = plan.nurses_early, plan.nurses_late
            r = rng.random()
            if r < 0.04:
                n_early, n_late = n_early - 1, n_late - 1  # two off sick
            elif r < 0.16:
                if rng.random() < 0.5:
                    n_early -= 1
                else:
                    n_late -= 1
            if i // 7 == short_week:
                n_early -= 1
            extra = rng.random() < 0.10  # an agency nurse for the middle of the day
            blocks = [early] * max(n_early, 1) + [late] * max(n_late, 1)
            if extra:
                blocks.append((_plus(opens, 120), _plus(opens, 8 * 60)))
        else:  # a short (Saturday) morning
            blocks = [(_plus(opens, -15), _plus(closes, 15))] * (1 if rng.random() < 0.15 else 2)
        for who, (a, b) in zip(rng.sample(nurses, len(blocks)), blocks, strict=True):
            out.append(StaffShift("nurse", _at(day, a, zone), _at(day, b, zone), who))
        if long_day:
            am, pm = (_plus(opens, -15), time(13, 15)), (time(12, 45), _plus(closes, 15))
            on_am, on_pm = rng.sample(prescribers, 2)
            r = rng.random()
            if r >= 0.05:
                out.append(StaffShift("prescriber", _at(day, am[0], zone), _at(day, am[1], zone), on_am))
            if r < 0.05 or r >= 0.12:  # sometimes no prescriber for the afternoon (or the morning)
                out.append(StaffShift("prescriber", _at(day, pm[0], zone), _at(day, pm[1], zone), on_pm))
        else:
            out.append(StaffShift("prescriber", _at(day, _plus(opens, -15), zone), _at(day, _plus(closes, 15), zone),
                                  rng.choice(prescribers)))
    return out, staff


def build_network(seed: int = 2027, courses: int | None = None, *, start: date = START, weeks: int = WEEKS
                  ) -> Network:
    """The sites, their shifts, and the course orders (the first `courses` of them), all from `seed`."""
    rng = random.Random(seed)
    calendars: dict[str, SiteCalendar] = {}
    shifts: dict[str, list[StaffShift]] = {}
    staff: dict[int, tuple[str, str]] = {}
    chair = 1
    for plan in SITES:
        calendars[plan.code] = SiteCalendar(
            zone=ZoneInfo(plan.zone), hours=plan.hours, chair_ids=tuple(range(chair, chair + plan.chairs)),
            closed_days=frozenset(plan.closed), nurse_ratio_dosing=plan.ratio_dosing,
            nurse_ratio_recovery=plan.ratio_recovery, granularity_minutes=GRANULARITY)
        chair += plan.chairs
        shifts[plan.code], site_staff = _shifts_for_site(rng, plan, 1 + len(staff), start, weeks)
        staff |= site_staff

    site_weights = [p.chairs for p in SITES]
    orders: list[Order] = []
    patient = 0

    def new_order(protocol: str, patient_id: int, site: str, earliest: date) -> Order:
        weekdays = window = None
        if rng.random() < 0.30:
            weekdays = frozenset(rng.choice(WEEKDAY_SETS[site]))
        if rng.random() < 0.25:
            window = rng.choice(WINDOWS)
        ordered = earliest - timedelta(days=rng.randint(0, 14))
        return Order(0, patient_id, protocol, site, earliest, ordered, weekdays, window)

    for protocol, count in MIX.items():
        if protocol == "iv-booster":
            continue
        for _ in range(count):
            patient += 1
            site = rng.choices([p.code for p in SITES], weights=site_weights)[0]
            earliest = start + timedelta(days=rng.randint(0, EARLIEST_SPREAD[protocol]))
            orders.append(new_order(protocol, patient, site, earliest))
    # Boosters are for maintenance patients: a third of them come back for a second one four weeks later.
    boosters = MIX["iv-booster"]
    repeat = boosters // 3
    for _ in range(boosters - repeat):
        patient += 1
        site = rng.choices([p.code for p in SITES], weights=site_weights)[0]
        earliest = start + timedelta(days=rng.randint(0, EARLIEST_SPREAD["iv-booster"] - 28))
        orders.append(new_order("iv-booster", patient, site, earliest))
        if repeat:
            repeat -= 1
            orders.append(new_order("iv-booster", patient, site, earliest + timedelta(days=28)))
    # Placed in the order they were written (earlier orders first), ties broken by the shuffle.
    rng.shuffle(orders)
    orders.sort(key=lambda o: o.ordered)
    orders = [replace(o, index=i) for i, o in enumerate(orders)]
    if courses is not None:
        orders = orders[:courses]
    now = datetime.combine(start - timedelta(days=3), time(17), UTC)  # the Friday before, at noon in New York
    return Network(start, weeks, now, calendars, shifts, orders, staff, seed)


# --- placed sessions and the outcome of a run ---------------------------------------------------


@dataclass(frozen=True)
class PlacedSession:
    course: int
    protocol: str
    site: str
    patient_id: int
    chair_id: int
    number: int
    start: datetime
    end: datetime
    dosing_start: datetime
    dosing_end: datetime


@dataclass
class RunResult:
    sessions: list[PlacedSession]
    plans: dict[int, SeriesPlan]  # order index -> the planner's proposal
    seconds: float
    calendars: dict[str, SiteCalendar]  # with the chair ids the run used
    extra: dict[str, str] = field(default_factory=dict)


def _horizon(order: Order, rule: SeriesRule) -> tuple[datetime, datetime]:
    """The window of bookings and shifts `propose` reads for an order."""
    start = datetime.combine(order.earliest, time(0), UTC) - timedelta(days=1)
    return start, start + timedelta(days=SEARCH_DAYS + 7 * rule.sessions + 30)


def run_pure(net: Network) -> RunResult:
    """Place every order with `plan_series` against the bookings made so far (whole series or nothing)."""
    by_site: dict[str, list[Booking]] = defaultdict(list)
    by_patient: dict[int, list[Booking]] = defaultdict(list)
    placed: list[PlacedSession] = []
    plans: dict[int, SeriesPlan] = {}
    t0 = clock.perf_counter()
    for order in net.orders:
        rule = RULES[order.protocol]
        lo, hi = _horizon(order, rule)
        site_bookings = [b for b in by_site[order.site] if b.start < hi and b.end > lo]
        mine = [b for b in by_patient[order.patient] if b.start < hi and b.end > lo and b not in site_bookings]
        shifts = [s for s in net.shifts[order.site] if s.start < hi and s.end > lo]
        plan = plan_series(rule, net.calendars[order.site], bookings=site_bookings + mine, shifts=shifts,
                           prefs=order.preferences(), patient_id=order.patient, now=net.now,
                           search_days=SEARCH_DAYS)
        plans[order.index] = plan
        if not plan.complete:
            continue
        for slot in plan.slots:
            b = slot.as_booking(order.patient)
            by_site[order.site].append(b)
            by_patient[order.patient].append(b)
            placed.append(PlacedSession(order.index, order.protocol, order.site, order.patient, slot.chair_id,
                                        slot.number, slot.start, slot.end, slot.dosing_start, slot.dosing_end))
    return RunResult(placed, plans, clock.perf_counter() - t0, dict(net.calendars))


# --- the same through the real services and a database ------------------------------------------


def run_db(net: Network, backend: str) -> RunResult:
    """Place every order with `propose` + `book_course` against a freshly migrated database."""
    import tempfile
    import uuid

    import sqlalchemy as sa

    if backend == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="chairside-bench-")
        url = f"sqlite:///{tmp.name}/bench.db"
        try:
            return _run_db(net, url, "SQLite (temporary file)")
        finally:
            tmp.cleanup()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        return _run_db(net, f"{PG_URL}?options=-csearch_path%3D{schema}", f"PostgreSQL (schema {schema}, dropped)")
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _run_db(net: Network, url: str, label: str) -> RunResult:
    import json

    from sqlmodel import Session, select

    from clinic.audit import Actor
    from clinic.auth.models import StaffRole, StaffSite, StaffUser
    from clinic.db import make_engine, upgrade
    from clinic.patients.models import Consent, EligibilityEvaluation, Patient
    from clinic.sessions.booking import CourseOrder, SlotIn, book_course, propose
    from clinic.sessions.models import Chair, Protocol, Shift, Site, TreatmentCourse, TreatmentSession
    from clinic.sessions.protocols import seed_protocols

    engine = make_engine(url)
    try:
        t_setup = clock.perf_counter()
        upgrade(engine)
        codes = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        with Session(engine, expire_on_commit=False) as db:
            protocols = seed_protocols(db)
            db.commit()
            site_ids: dict[str, int] = {}
            calendars: dict[str, SiteCalendar] = {}
            for plan in SITES:
                cal = net.calendars[plan.code]
                hours = {codes[d]: [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in spans]
                         for d, spans in plan.hours.items()}
                site = Site(code=plan.code, name=plan.name, time_zone=plan.zone, hours_json=json.dumps(hours),
                            closed_days_json=json.dumps([d.isoformat() for d in plan.closed]),
                            nurse_ratio_dosing=plan.ratio_dosing, nurse_ratio_recovery=plan.ratio_recovery)
                db.add(site)
                db.flush()
                chairs = [Chair(site_id=site.id, label=f"{plan.code[0]}{i + 1:02d}") for i in range(plan.chairs)]
                db.add_all(chairs)
                db.flush()
                site_ids[plan.code] = site.id
                calendars[plan.code] = replace(cal, chair_ids=tuple(c.id for c in chairs))
            staff_ids: dict[int, int] = {}
            for sid, (code, role) in sorted(net.staff.items()):
                user = StaffUser(username=f"{role}.{code.lower()}.{sid}", full_name=f"{role.title()} {sid}",
                                 password_hash="benchmark-not-a-login")
                db.add(user)
                db.flush()
                db.add(StaffRole(staff_user_id=user.id, role=role))
                db.add(StaffSite(staff_user_id=user.id, site_id=site_ids[code]))
                staff_ids[sid] = user.id
            for code, shifts in net.shifts.items():
                db.add_all([Shift(staff_user_id=staff_ids[s.staff_id], site_id=site_ids[code], role=s.role,
                                  starts_at=s.start, ends_at=s.end) for s in shifts])
            prescriber_id = next(staff_ids[s] for s, (_, role) in sorted(net.staff.items()) if role == "prescriber")
            actor = Actor(prescriber_id, "benchmark prescriber", roles=frozenset({"prescriber"}))
            patient_ids: dict[int, int] = {}
            for order in net.orders:
                if order.patient in patient_ids:
                    continue
                p = Patient(mrn=f"BENCH-{order.patient:05d}", given_name="Bench", family_name=f"Patient{order.patient}",
                            date_of_birth=date(1980, 1, 1) + timedelta(days=order.patient * 37), sex="unknown")
                db.add(p)
                db.flush()
                patient_ids[order.patient] = p.id
                db.add(EligibilityEvaluation(patient_id=p.id, prescriber_id=prescriber_id,
                                             evaluated_at=net.now - timedelta(days=7),
                                             diagnosis="Treatment-resistant depression", decision="eligible",
                                             reasons="Benchmark patient", valid_until=net.end + timedelta(days=90)))
                kind = "esketamine" if order.protocol == "esketamine-nasal" else "ketamine"
                db.add(Consent(patient_id=p.id, kind=kind, text_version="BENCH-1",
                               signed_at=net.now - timedelta(days=1), expires_at=net.now + timedelta(days=365)))
            db.commit()
            setup_seconds = clock.perf_counter() - t_setup

            plans: dict[int, SeriesPlan] = {}
            refused: Counter = Counter()
            t0 = clock.perf_counter()
            for order in net.orders:
                co = CourseOrder(patient_id=patient_ids[order.patient], protocol_id=protocols[order.protocol].id,
                                 site_id=site_ids[order.site], earliest_start=order.earliest,
                                 weekdays=sorted(order.weekdays or ()),
                                 window_start=order.window[0] if order.window else None,
                                 window_end=order.window[1] if order.window else None)
                proposal = propose(db, co, now=net.now, granularity_minutes=GRANULARITY, search_days=SEARCH_DAYS)
                plans[order.index] = proposal.plan
                if proposal.problems:
                    refused["readiness: " + "; ".join(proposal.problems)] += 1
                if not proposal.plan.complete or proposal.problems:
                    db.rollback()
                    continue
                slots = [SlotIn(number=s.number, chair_id=s.chair_id, starts_at=s.start) for s in proposal.plan.slots]
                try:
                    book_course(db, actor, co, slots, now=net.now, granularity_minutes=GRANULARITY)
                except Exception as exc:  # noqa: BLE001 - a refused booking is a result to report
                    db.rollback()
                    refused[f"{type(exc).__name__}: {exc}"[:120]] += 1
            seconds = clock.perf_counter() - t0

            # Read back what the database holds, for the checker.
            by_db_patient = {v: k for k, v in patient_ids.items()}
            site_codes = {v: k for k, v in site_ids.items()}
            q = (select(TreatmentSession, TreatmentCourse, Protocol)
                 .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
                 .join(Protocol, Protocol.id == TreatmentCourse.protocol_id))
            sessions = []
            for s, c, p in db.exec(q):
                ds = s.starts_at + timedelta(minutes=p.pre_minutes)
                sessions.append(PlacedSession(c.id, p.code, site_codes[s.site_id], by_db_patient[s.patient_id],
                                              s.chair_id, s.number_in_course, s.starts_at, s.ends_at, ds,
                                              ds + timedelta(minutes=p.infusion_minutes)))
            db.rollback()
    finally:
        engine.dispose()
    extra = {"database": label, "setup (migrate + seed)": f"{setup_seconds:.1f} s"}
    if refused:
        extra["refused by book_course"] = "; ".join(f"{n} × {why}" for why, n in refused.most_common(3))
    return RunResult(sessions, plans, seconds, calendars, extra)


# --- the independent checker --------------------------------------------------------------------

VIOLATION_KINDS = (
    "closed_day",  # a session on a day the site is closed
    "hours",  # a session not wholly inside one opening span (local time, site zone)
    "chair_site",  # a chair that is not the site's
    "chair_overlap",  # two sessions overlapping on one chair
    "patient_overlap",  # one patient in two sessions at once
    "nurse_load",  # a period where patients need more nursing than the nurses on shift give
    "prescriber",  # a dosing window not wholly covered by prescriber shifts
    "spacing_min",  # fewer calendar days between consecutive sessions of a course than the protocol's minimum
    "spacing_max",  # more than its maximum
    "weekly",  # more sessions within 7 consecutive days than the protocol (phase) allows
    "shape",  # chair time / dosing window not the protocol's, or session numbers not 1..n in time order
)


@dataclass
class CheckResult:
    counts: Counter
    examples: list[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _weekly_limit(rule: SeriesRule, number: int) -> int:
    upto = 0
    for phase in rule.phases:
        upto += phase.sessions
        if number <= upto:
            return min(phase.per_week, rule.max_per_week)
    return rule.max_per_week


def _merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _nurse_overloads(sessions: Sequence[PlacedSession], nurse_shifts: Sequence[StaffShift], ratio_dosing: int,
                     ratio_recovery: int) -> list[tuple[datetime, int, int, int]]:
    """Boundaries at which the load exceeds the nurses on shift: (instant, dosing, watching, nurses).

    Pre-assessment and recovery need 1/ratio_recovery of a nurse, dosing 1/ratio_dosing; all
    intervals are half-open, so everything that changes at an instant is applied before it is judged.
    """
    change: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0])  # dosing, watching, nurses
    for s in sessions:
        for a, b, k in ((s.start, s.dosing_start, 1), (s.dosing_start, s.dosing_end, 0), (s.dosing_end, s.end, 1)):
            if b > a:
                change[a][k] += 1
                change[b][k] -= 1
    for sh in nurse_shifts:
        change[sh.start][2] += 1
        change[sh.end][2] -= 1
    dosing = watching = nurses = 0
    bad = []
    for t in sorted(change):
        d, w, n = change[t]
        dosing, watching, nurses = dosing + d, watching + w, nurses + n
        if dosing * ratio_recovery + watching * ratio_dosing > nurses * ratio_dosing * ratio_recovery:
            bad.append((t, dosing, watching, nurses))
    return bad


def check_schedule(sessions: Sequence[PlacedSession], calendars: dict[str, SiteCalendar],
                   shifts: dict[str, Sequence[StaffShift]], rules: dict[str, SeriesRule]) -> CheckResult:
    """Re-verify every booked session against every constraint, from first principles.

    Counts are per offending session, except nurse load (per overloaded period: a run of consecutive
    overloaded boundaries) and weekly limits (per course and week).
    """
    counts: Counter = Counter({k: 0 for k in VIOLATION_KINDS})
    examples: list[str] = []

    def flag(kind: str, what: str) -> None:
        counts[kind] += 1
        if len(examples) < 20:
            examples.append(f"{kind}: {what}")

    def name(s: PlacedSession) -> str:
        return f"course {s.course} #{s.number} ({s.protocol}, {s.site}) at {s.start.isoformat()}"

    # Opening hours, closed days, the chair's site and the session's shape.
    for s in sessions:
        cal, rule = calendars[s.site], rules[s.protocol]
        local_start, local_end = s.start.astimezone(cal.zone), s.end.astimezone(cal.zone)
        day = local_start.date()
        spans = cal.hours.get(day.weekday(), ())
        if day in cal.closed_days or not spans:
            flag("closed_day", name(s))
        elif local_end.date() != day or not any(a <= local_start.time() and local_end.time() <= b for a, b in spans):
            flag("hours", f"{name(s)}: {local_start:%a %H:%M}–{local_end:%H:%M} local")
        if s.chair_id not in cal.chair_ids:
            flag("chair_site", f"{name(s)}: chair {s.chair_id}")
        if (s.dosing_start - s.start != timedelta(minutes=rule.pre_minutes)
                or s.dosing_end - s.dosing_start != timedelta(minutes=rule.dosing_minutes)
                or s.end - s.start != timedelta(minutes=rule.pre_minutes + rule.dosing_minutes + rule.post_minutes)):
            flag("shape", f"{name(s)}: chair time or dosing window is not the protocol's")

    # Double booking of a chair or a patient.
    for kind, key in (("chair_overlap", lambda s: s.chair_id), ("patient_overlap", lambda s: s.patient_id)):
        groups: dict[int, list[PlacedSession]] = defaultdict(list)
        for s in sessions:
            groups[key(s)].append(s)
        for group in groups.values():
            group.sort(key=lambda s: s.start)
            latest: PlacedSession | None = None
            for s in group:
                if latest is not None and s.start < latest.end:
                    flag(kind, f"{name(s)} overlaps {name(latest)}")
                if latest is None or s.end > latest.end:
                    latest = s

    # Nurse load and prescriber cover, per site.
    for code, cal in calendars.items():
        here = [s for s in sessions if s.site == code]
        nurse_shifts = [sh for sh in shifts.get(code, ()) if sh.role == "nurse"]
        previous_bad: datetime | None = None
        boundaries = sorted({t for s in here for t in (s.start, s.dosing_start, s.dosing_end, s.end)}
                            | {t for sh in nurse_shifts for t in (sh.start, sh.end)})
        position = {t: i for i, t in enumerate(boundaries)}
        for t, dosing, watching, nurses in _nurse_overloads(here, nurse_shifts, cal.nurse_ratio_dosing,
                                                            cal.nurse_ratio_recovery):
            if previous_bad is None or position[t] != position[previous_bad] + 1:
                flag("nurse_load", f"{code} at {t.isoformat()}: {dosing} dosing + {watching} in pre/recovery, "
                                   f"{nurses} nurses (1:{cal.nurse_ratio_dosing} / 1:{cal.nurse_ratio_recovery})")
            previous_bad = t
        cover = _merge((sh.start, sh.end) for sh in shifts.get(code, ()) if sh.role == "prescriber")
        for s in here:
            if not any(a <= s.dosing_start and s.dosing_end <= b for a, b in cover):
                flag("prescriber", f"{name(s)}: dosing {s.dosing_start:%H:%M}–{s.dosing_end:%H:%M} UTC uncovered")

    # Spacing and weekly limits, per course, in the site's calendar days.
    courses: dict[int, list[PlacedSession]] = defaultdict(list)
    for s in sessions:
        courses[s.course].append(s)
    for series in courses.values():
        series.sort(key=lambda s: s.start)  # spacing runs in time order; the numbers must follow it
        rule, zone = rules[series[0].protocol], calendars[series[0].site].zone
        if [s.number for s in series] != list(range(1, len(series) + 1)) or len(series) > rule.sessions:
            flag("shape", f"course {series[0].course}: sessions {[s.number for s in series]} not 1..n in time order")
        days = [s.start.astimezone(zone).date() for s in series]
        for s, before, day in zip(series[1:], days, days[1:], strict=False):
            gap = (day - before).days
            if gap < rule.min_days_between:
                flag("spacing_min", f"{name(s)}: {gap} days after the previous one (min {rule.min_days_between})")
            if rule.max_days_between is not None and gap > rule.max_days_between:
                flag("spacing_max", f"{name(s)}: {gap} days after the previous one (max {rule.max_days_between})")
        # Any 7 consecutive days that contain a session hold no more than that session's limit
        # (counted once per course).
        over = None
        for s, day in zip(series, days, strict=True):
            limit = _weekly_limit(rule, s.number)
            for back in range(7):
                first = day - timedelta(days=back)
                count = sum(1 for d in days if first <= d <= first + timedelta(days=6))
                if count > limit and over is None:
                    over = f"{name(s)}: {count} sessions in the 7 days from {first} (max {limit})"
        if over:
            flag("weekly", over)
    return CheckResult(counts, examples)


# --- utilisation --------------------------------------------------------------------------------


def utilisation(sessions: Sequence[PlacedSession], calendars: dict[str, SiteCalendar], start: date, weeks: int
                ) -> dict[str, tuple[float, float, float]]:
    """Per site (and "all"): booked chair-hours, available chair-hours, and the busiest week's share."""
    out: dict[str, tuple[float, float, float]] = {}
    weekly_all: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for code, cal in calendars.items():
        weekly: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])  # week -> booked, available
        for i in range(weeks * 7):
            day = start + timedelta(days=i)
            if day in cal.closed_days:
                continue
            for a, b in cal.hours.get(day.weekday(), ()):
                opens = datetime.combine(day, a, cal.zone).astimezone(UTC)
                closes = datetime.combine(day, b, cal.zone).astimezone(UTC)
                weekly[i // 7][1] += (closes - opens).total_seconds() / 3600 * len(cal.chair_ids)
        for s in sessions:
            week = (s.start.astimezone(cal.zone).date() - start).days // 7
            if s.site == code and 0 <= week < weeks:  # (no session can fall outside: no shifts there)
                weekly[week][0] += (s.end - s.start).total_seconds() / 3600
        for w in range(weeks):
            weekly_all[w][0] += weekly[w][0]
            weekly_all[w][1] += weekly[w][1]
        booked = sum(weekly[w][0] for w in range(weeks))
        available = sum(weekly[w][1] for w in range(weeks))
        out[code] = (booked, available, max(b / a for b, a in (weekly[w] for w in range(weeks)) if a))
    booked = sum(v[0] for v in out.values())
    available = sum(v[1] for v in out.values())
    out["all"] = (booked, available, max(b / a for b, a in weekly_all.values() if a))
    return out


# --- the report ---------------------------------------------------------------------------------


def _main_blocker(plan: SeriesPlan) -> str:
    first = plan.unplaced[0]
    if first.blockers:
        return max(first.blockers, key=first.blockers.get)
    return first.reason.split(" between ")[0]


def report(net: Network, result: RunResult, check: CheckResult, mode: str) -> list[str]:
    orders = {o.index: o for o in net.orders}
    plans = result.plans
    complete = [i for i, p in plans.items() if p.complete]
    incomplete = [i for i, p in plans.items() if not p.complete]
    booked_courses = {s.course for s in result.sessions}
    proposed_any = sum(1 for p in plans.values() if p.slots)
    wanted = sum(RULES[o.protocol].sessions for o in net.orders)
    lines = [
        f"Chairside benchmark — mode: {mode}, seed {net.seed}",
        f"network: {len(net.calendars)} sites / {sum(len(c.chair_ids) for c in net.calendars.values())} chairs, "
        f"{net.weeks} weeks from {net.start.isoformat()}, "
        f"{sum(len(v) for v in net.shifts.values())} staff shifts, {len(net.orders)} course orders "
        f"({wanted} sessions wanted: " + ", ".join(f"{c} {n}" for c, n in
                                                    Counter(o.protocol for o in net.orders).most_common()) + ")",
    ]
    for k, v in result.extra.items():
        lines.append(f"{k}: {v}")
    lines.append(f"courses: {len(plans)} ordered, {proposed_any} with at least one session proposed, "
                 f"{len(complete)} fully placed and booked ({len(booked_courses)} in the schedule), "
                 f"{len(incomplete)} with unplaced sessions (not booked: a series is booked whole or not at all)")
    if incomplete:
        reasons = Counter(f"{orders[i].protocol} session {plans[i].unplaced[0].number}: mostly "
                          f"{_main_blocker(plans[i])}" for i in incomplete)
        lines.append("  top reasons: " + "; ".join(f"{n} × {why}" for why, n in reasons.most_common(4)))
        by_protocol = Counter(orders[i].protocol for i in incomplete)
        lines.append("  unplaced courses by protocol: " + ", ".join(f"{c} {n}" for c, n in by_protocol.most_common()))
    n = len(result.sessions)
    lines.append(f"sessions placed: {n} of {wanted} wanted")
    rate = n / result.seconds if result.seconds else float("inf")
    lines.append(f"wall time: {result.seconds:.2f} s placing ({rate:.0f} sessions/s, "
                 f"{1000 * result.seconds / max(len(plans), 1):.1f} ms per course)")
    use = utilisation(result.sessions, result.calendars, net.start, net.weeks)
    lines.append(f"scheduled chair utilisation (booked ÷ available chair-hours over {net.weeks} weeks; busiest week): "
                 + "; ".join(
        f"{code} {b:.0f}/{a:.0f} h = {100 * b / a:.1f}% ({100 * peak:.0f}%)" for code, (b, a, peak) in use.items()))
    bad = {k: v for k, v in check.counts.items() if v}
    lines.append(f"violations: {check.total}" + (f" ({', '.join(f'{k} {v}' for k, v in bad.items())})" if bad
                                                 else " (checked: " + ", ".join(VIOLATION_KINDS) + ")"))
    lines.extend(f"  {e}" for e in check.examples[:10])
    return lines


def same_schedule(a: RunResult, b: RunResult) -> tuple[int, int]:
    """How many sessions of `a` and `b` differ (by patient, number, site, chair position and start)."""

    def keys(r: RunResult) -> set[tuple]:
        return {(s.patient_id, s.number, s.site, r.calendars[s.site].chair_ids.index(s.chair_id), s.start)
                for s in r.sessions}

    ka, kb = keys(a), keys(b)
    return len(ka - kb), len(kb - ka)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), help="go through propose/book_course and a database")
    parser.add_argument("--courses", type=int, default=None, help="place only the first N orders (default: all 500)")
    parser.add_argument("--seed", type=int, default=2027, help="generator seed (default 2027)")
    args = parser.parse_args(argv)
    net = build_network(args.seed, args.courses)
    result = run_db(net, args.db) if args.db else run_pure(net)
    check = check_schedule(result.sessions, result.calendars, net.shifts, RULES)
    lines = report(net, result, check, args.db or "pure")
    if args.db:  # the services must place exactly what the pure planner places
        only_db, only_pure = same_schedule(result, run_pure(net))
        lines.append("same schedule as the pure planner: " + (
            "yes" if not (only_db or only_pure) else f"no ({only_db} sessions only here, {only_pure} only there)"))
    for line in lines:
        print(line)
    return 1 if check.total else 0


if __name__ == "__main__":
    sys.exit(main())
