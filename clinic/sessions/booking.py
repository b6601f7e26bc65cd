"""Booking: ordering a course, proposing its series with the planner, and booking it atomically.

The database has the last word on double booking. On PostgreSQL exclusion constraints refuse two
active sessions overlapping on one chair or for one patient; on SQLite every write transaction holds
the write lock from its start (BEGIN IMMEDIATE), so the check-then-insert here is serialized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.models import StaffRole
from clinic.errors import Conflict, InvalidInput, NotFound
from clinic.patients.models import Consent, EligibilityEvaluation, Patient, WaitlistEntry
from clinic.patients.rules import consent_status
from clinic.sessions.models import Chair, Protocol, Shift, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.planner import (
    Booking,
    Phase,
    Preferences,
    SeriesPlan,
    SeriesRule,
    SiteCalendar,
    Slot,
    StaffShift,
    plan_series,
    slot_problem,
    spacing_problems,
)
from clinic.vocab import INACTIVE_SESSION_STATUSES

WEEKDAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CONSENT_FOR_ROUTE = {"iv": "ketamine", "im": "ketamine", "intranasal": "esketamine"}


class CourseOrder(BaseModel):
    """A prescriber's order: which protocol, where, from when, and the patient's preferences."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    patient_id: int
    protocol_id: int
    site_id: int
    earliest_start: date
    weekdays: list[int] = Field(default_factory=list, description="Preferred weekdays, 0 = Monday; empty = any")
    window_start: time | None = Field(default=None, description="Earliest start time (site's local time)")
    window_end: time | None = Field(default=None, description="Latest start time (site's local time)")

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in v):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return sorted(set(v))

    def preferences(self) -> Preferences:
        window = None
        if self.window_start or self.window_end:
            window = (self.window_start or time(0), self.window_end or time(23, 59))
            if window[0] > window[1]:
                raise InvalidInput("The time window ends before it starts.",
                                   fields={"window_end": "must be after the earliest start time"})
        return Preferences(self.earliest_start, frozenset(self.weekdays) if self.weekdays else None, window)


class SlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1)
    chair_id: int
    starts_at: datetime

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-01T14:00:00Z)")
        return v.astimezone(UTC)


# --- reading the world the planner needs --------------------------------------------------------


def protocol_rule(protocol: Protocol) -> SeriesRule:
    schedule = json.loads(protocol.schedule_json or "{}")
    phases = tuple(Phase(p["weeks"] * p["per_week"], p["per_week"]) for p in schedule.get("phases", []))
    return SeriesRule(
        sessions=protocol.induction_sessions,
        pre_minutes=protocol.pre_minutes,
        dosing_minutes=protocol.infusion_minutes,
        post_minutes=protocol.post_minutes,
        min_days_between=protocol.min_days_between,
        max_days_between=protocol.max_days_between,
        max_per_week=protocol.max_per_week,
        phases=phases,
    )


def site_calendar(db: Session, site: Site, *, granularity_minutes: int = 15) -> SiteCalendar:
    from zoneinfo import ZoneInfo

    hours = json.loads(site.hours_json or "{}")
    chairs = db.exec(select(Chair.id).where(Chair.site_id == site.id, Chair.active).order_by(Chair.label))
    return SiteCalendar(
        zone=ZoneInfo(site.time_zone),
        hours={WEEKDAY_CODES.index(day): tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in spans)
               for day, spans in hours.items()},
        chair_ids=tuple(chairs),
        closed_days=frozenset(date.fromisoformat(d) for d in json.loads(site.closed_days_json or "[]")),
        nurse_ratio_dosing=site.nurse_ratio_dosing,
        nurse_ratio_recovery=site.nurse_ratio_recovery,
        granularity_minutes=granularity_minutes,
    )


def active_bookings(db: Session, *, start: datetime, end: datetime, site_id: int | None = None,
                    patient_id: int | None = None) -> list[Booking]:
    """Active sessions overlapping [start, end) at a site and/or of a patient, with dosing windows."""
    q = (select(TreatmentSession, Protocol.pre_minutes, Protocol.infusion_minutes)
         .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
         .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
         .where(TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES),
                TreatmentSession.starts_at < end, TreatmentSession.ends_at > start))
    if site_id is not None and patient_id is not None:
        q = q.where((TreatmentSession.site_id == site_id) | (TreatmentSession.patient_id == patient_id))
    elif site_id is not None:
        q = q.where(TreatmentSession.site_id == site_id)
    elif patient_id is not None:
        q = q.where(TreatmentSession.patient_id == patient_id)
    out = []
    for s, pre, infusion in db.exec(q):
        dosing_start = s.dosing_started_at or s.starts_at + timedelta(minutes=pre)
        dosing_end = s.dosing_ended_at or dosing_start + timedelta(minutes=infusion)
        out.append(Booking(s.chair_id, s.patient_id, s.starts_at, s.ends_at, dosing_start, dosing_end))
    return out


def site_shifts(db: Session, site_id: int, start: datetime, end: datetime) -> list[StaffShift]:
    q = select(Shift).where(Shift.site_id == site_id, Shift.starts_at < end, Shift.ends_at > start)
    return [StaffShift(s.role, s.starts_at, s.ends_at, s.staff_user_id) for s in db.exec(q)]


# --- the gates before a course can be ordered ---------------------------------------------------


def readiness_problems(db: Session, patient_id: int, protocol: Protocol, *, now: datetime,
                       zone: ZoneInfo | None = None) -> list[str]:
    """What stops a course being ordered: no current eligible evaluation, or no current consent.

    "Current" is judged on the clinic's calendar day (`zone`), as the pages show it.
    """
    problems = []
    today = now.astimezone(zone).date() if zone else now.date()
    evaluation = db.exec(select(EligibilityEvaluation).where(EligibilityEvaluation.patient_id == patient_id)
                         .order_by(EligibilityEvaluation.evaluated_at.desc(), EligibilityEvaluation.id.desc())
                         ).first()
    if evaluation is None:
        problems.append("no eligibility evaluation on file")
    elif evaluation.valid_until < today:
        problems.append(f"the eligibility evaluation expired on {evaluation.valid_until.isoformat()}")
    elif evaluation.decision != "eligible":
        problems.append(f"the latest eligibility evaluation found the patient {evaluation.decision.replace('_', ' ')}")
    kind = CONSENT_FOR_ROUTE[protocol.route]
    consents = db.exec(select(Consent).where(Consent.patient_id == patient_id, Consent.kind == kind)
                       .order_by(Consent.signed_at.desc())).all()
    if not any(consent_status(c.signed_at, c.expires_at, c.revoked_at, now) in ("current", "expiring")
               for c in consents):
        problems.append(f"no current {kind} consent")
    return problems


def _load_order(db: Session, order: CourseOrder) -> tuple[Patient, Protocol, Site]:
    patient = db.get(Patient, order.patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {order.patient_id}.")
    protocol = db.get(Protocol, order.protocol_id)
    if protocol is None or not protocol.active:
        raise InvalidInput("Choose an active protocol.", fields={"protocol_id": "no such active protocol"})
    site = db.get(Site, order.site_id)
    if site is None or not site.active:
        raise InvalidInput("Choose an active site.", fields={"site_id": "no such active site"})
    return patient, protocol, site


@dataclass(frozen=True)
class Proposal:
    order: CourseOrder
    protocol: Protocol
    site: Site
    plan: SeriesPlan
    problems: list[str]


def propose(db: Session, order: CourseOrder, *, now: datetime, granularity_minutes: int = 15,
            search_days: int = 42) -> Proposal:
    """The planner's proposal for a whole course (nothing is written)."""
    _patient, protocol, site = _load_order(db, order)
    problems = readiness_problems(db, order.patient_id, protocol, now=now, zone=ZoneInfo(site.time_zone))
    rule = protocol_rule(protocol)
    order = _not_before_minimum_gap(db, order, rule, ZoneInfo(site.time_zone))
    horizon_start = datetime.combine(order.earliest_start, time(0), UTC) - timedelta(days=1)
    horizon_end = horizon_start + timedelta(days=search_days + 7 * rule.sessions + 30)
    calendar = site_calendar(db, site, granularity_minutes=granularity_minutes)
    plan = plan_series(
        rule, calendar,
        bookings=active_bookings(db, start=horizon_start, end=horizon_end, site_id=site.id,
                                 patient_id=order.patient_id),
        shifts=site_shifts(db, site.id, horizon_start, horizon_end),
        prefs=order.preferences(), patient_id=order.patient_id, now=now, search_days=search_days,
    )
    return Proposal(order, protocol, site, plan, problems)


def _not_before_minimum_gap(db: Session, order: CourseOrder, rule: SeriesRule, zone: ZoneInfo) -> CourseOrder:
    """A single-session course (a booster) keeps the protocol's minimum gap after the patient's last
    session; a longer gap is allowed, since a booster is often ordered because relief has worn off."""
    if rule.sessions != 1:
        return order
    last = db.exec(select(TreatmentSession.starts_at).where(
        TreatmentSession.patient_id == order.patient_id,
        TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES)).order_by(TreatmentSession.starts_at.desc())).first()
    if last is None:
        return order
    earliest = last.astimezone(zone).date() + timedelta(days=rule.min_days_between)
    return order.model_copy(update={"earliest_start": max(order.earliest_start, earliest)})


def _prescriber_check(db: Session, actor: Actor) -> None:
    roles = set(db.exec(select(StaffRole.role).where(StaffRole.staff_user_id == actor.user_id)))
    if "prescriber" not in roles:
        raise InvalidInput("Only a prescriber can order a course.")


def book_course(db: Session, actor: Actor, order: CourseOrder, slots: list[SlotIn], *, now: datetime,
                granularity_minutes: int = 15) -> TreatmentCourse:
    """Book a confirmed proposal: the whole series or nothing.

    Every slot is checked again inside this transaction against what is booked now; if anything
    changed the whole booking is refused with the reason, and nothing is written.
    """
    _prescriber_check(db, actor)
    patient, protocol, site = _load_order(db, order)
    problems = readiness_problems(db, patient.id, protocol, now=now, zone=ZoneInfo(site.time_zone))
    if problems:
        raise InvalidInput("This course cannot be ordered yet: " + "; ".join(problems) + ".")
    rule = protocol_rule(protocol)
    if sorted(s.number for s in slots) != list(range(1, rule.sessions + 1)):
        raise InvalidInput(f"A {protocol.name} course has {rule.sessions} sessions; send each once.",
                           fields={"slots": f"numbers 1 to {rule.sessions}, each once"})
    calendar = site_calendar(db, site, granularity_minutes=granularity_minutes)
    placed = [_as_slot(s, rule) for s in sorted(slots, key=lambda s: s.number)]
    spacing = spacing_problems(rule, placed, calendar.zone)
    if spacing:
        raise InvalidInput("The sessions do not keep the protocol's spacing: " + "; ".join(spacing) + ".")
    start, end = placed[0].start - timedelta(days=1), placed[-1].end + timedelta(days=1)
    bookings = active_bookings(db, start=start, end=end, site_id=site.id, patient_id=patient.id)
    shifts = site_shifts(db, site.id, start, end)
    for slot in placed:
        why = slot_problem(rule, calendar, slot, bookings=bookings, shifts=shifts, patient_id=patient.id, now=now)
        if why:
            raise Conflict(f"Session {slot.number} at {_local(slot.start, calendar)} can no longer be booked: "
                           f"{why}. Nothing was booked; ask for a new proposal.")
        bookings.append(slot.as_booking(patient.id))
    course = TreatmentCourse(patient_id=patient.id, protocol_id=protocol.id, prescriber_id=actor.user_id,
                             site_id=site.id, kind="induction" if rule.sessions > 1 else "booster",
                             status="planned", planned_sessions=rule.sessions, ordered_at=now,
                             earliest_start=order.earliest_start,
                             preferences_json=order.model_dump_json(include={"weekdays", "window_start",
                                                                             "window_end"}))
    db.add(course)
    db.flush()
    rows = [TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=site.id, chair_id=s.chair_id,
                             number_in_course=s.number, starts_at=s.start, ends_at=s.end, created_at=now,
                             created_by_id=actor.user_id) for s in placed]
    db.add_all(rows)
    _flush_or_conflict(db)
    audit.record(db, actor, "create", "treatment_course", course.id, patient_id=patient.id,
                 after=audit.snapshot(course) | {"sessions": [
                     {"number": r.number_in_course, "chair_id": r.chair_id, "starts_at": r.starts_at.isoformat()}
                     for r in rows]})
    _leave_waitlist(db, actor, patient.id, site.id, course.id, now)
    db.commit()
    return course


def _leave_waitlist(db: Session, actor: Actor, patient_id: int, site_id: int, course_id: int, now: datetime) -> None:
    """A patient waiting at this site for a first course is scheduled now (in the same transaction)."""
    for entry in db.exec(select(WaitlistEntry).where(WaitlistEntry.patient_id == patient_id,
                                                     WaitlistEntry.site_id == site_id,
                                                     WaitlistEntry.status.in_(("waiting", "offered")))):
        before = entry.status
        entry.status, entry.closed_at = "scheduled", now
        db.add(entry)
        audit.record(db, actor, "update", "waitlist_entry", entry.id, patient_id=patient_id,
                     before={"status": before}, after={"status": "scheduled", "course_id": course_id})


def book_session(db: Session, actor: Actor, course_id: int, slot_in: SlotIn, *, now: datetime,
                 granularity_minutes: int = 15) -> TreatmentSession:
    """Add one session to a course at a chosen chair and time (or refuse with the reason)."""
    course = db.get(TreatmentCourse, course_id)
    if course is None:
        raise NotFound(f"No course with id {course_id}.")
    if course.status in ("completed", "cancelled"):
        raise InvalidInput(f"The course is {course.status}.")
    protocol = db.get(Protocol, course.protocol_id)
    site = db.get(Site, course.site_id)
    rule = protocol_rule(protocol)
    calendar = site_calendar(db, site, granularity_minutes=granularity_minutes)
    slot = _as_slot(slot_in, rule)
    bookings = active_bookings(db, start=slot.start - timedelta(hours=12), end=slot.end + timedelta(hours=12),
                               site_id=site.id, patient_id=course.patient_id)
    shifts = site_shifts(db, site.id, slot.start - timedelta(hours=12), slot.end + timedelta(hours=12))
    why = slot_problem(rule, calendar, slot, bookings=bookings, shifts=shifts, patient_id=course.patient_id,
                       now=now)
    if why:
        raise Conflict(f"That time cannot be booked: {why}.")
    row = TreatmentSession(course_id=course.id, patient_id=course.patient_id, site_id=site.id,
                           chair_id=slot.chair_id, number_in_course=slot.number, starts_at=slot.start,
                           ends_at=slot.end, created_at=now, created_by_id=actor.user_id)
    db.add(row)
    _flush_or_conflict(db)
    audit.record(db, actor, "create", "treatment_session", row.id, patient_id=course.patient_id,
                 after=audit.snapshot(row))
    db.commit()
    return row


def _as_slot(s: SlotIn, rule: SeriesRule) -> Slot:
    dosing_start = s.starts_at + timedelta(minutes=rule.pre_minutes)
    return Slot(s.number, s.chair_id, s.starts_at, s.starts_at + timedelta(minutes=rule.chair_minutes),
                dosing_start, dosing_start + timedelta(minutes=rule.dosing_minutes))


def _local(t: datetime, calendar: SiteCalendar) -> str:
    return t.astimezone(calendar.zone).strftime("%a %d %b %H:%M")


def _flush_or_conflict(db: Session) -> None:
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        text = str(exc.orig)
        if "chair_overlap" in text:
            raise Conflict("That chair was booked by someone else for an overlapping time. Nothing was booked.") \
                from exc
        if "patient_overlap" in text:
            raise Conflict("The patient already has a session at an overlapping time. Nothing was booked.") from exc
        if "course_number" in text:
            raise Conflict("That session number is already booked in this course. Nothing was booked.") from exc
        raise Conflict("The booking clashes with another record. Nothing was booked.") from exc
