"""Changing a booked series: reschedule one session or this-and-following, cancel one or the rest,
mark a no-show, and re-plan what remains so the protocol's spacing still holds.

A missed or cancelled session does not restart the course: the sessions still to come are placed
again after the last one held, keeping the minimum (and maximum) spacing. When that cannot be done the
change still stands (the patient is not coming) but nothing else moves, and the answer says which rule
cannot hold and what the nearest alternatives are, for the prescriber to decide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.errors import Conflict, InvalidInput, NotFound
from clinic.sessions.booking import (
    _flush_or_conflict,
    protocol_rule,
    site_calendar,
    site_shifts,
)
from clinic.sessions.models import Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.planner import Booking, Preferences, SeriesPlan, Slot, plan_series, slot_problem, spacing_problems
from clinic.vocab import INACTIVE_SESSION_STATUSES

REPLAN_LEAD = timedelta(minutes=30)  # a re-planned session is never put less than this ahead of now


@dataclass
class ChangeResult:
    """What a change did, and what the re-plan could not do."""

    moved: list[TreatmentSession] = field(default_factory=list)
    added: list[TreatmentSession] = field(default_factory=list)
    problem: str | None = None  # which rule cannot hold, for the prescriber
    alternatives: list[Slot] = field(default_factory=list)


def _session(db: Session, session_id: int) -> TreatmentSession:
    row = db.get(TreatmentSession, session_id)
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    return row


def _course_sessions(db: Session, course_id: int) -> list[TreatmentSession]:
    return list(db.exec(select(TreatmentSession).where(TreatmentSession.course_id == course_id)
                         .order_by(TreatmentSession.starts_at)))


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if len(text) < 3:
        raise InvalidInput("Say why.", fields={"reason": "give a reason (at least 3 characters)"})
    return text


def _slot_of(row: TreatmentSession, rule) -> Slot:
    dosing_start = row.starts_at + timedelta(minutes=rule.pre_minutes)
    return Slot(row.number_in_course, row.chair_id, row.starts_at, row.ends_at, dosing_start,
                dosing_start + timedelta(minutes=rule.dosing_minutes))


def _context(db: Session, course: TreatmentCourse, start: datetime, end: datetime, exclude: set[int]):
    bookings = [b for b in _bookings_with_ids(db, course, start, end) if b[0] not in exclude]
    return [b for _, b in bookings], site_shifts(db, course.site_id, start, end)


def _bookings_with_ids(db: Session, course: TreatmentCourse, start: datetime, end: datetime
                       ) -> list[tuple[int, Booking]]:
    q = (select(TreatmentSession, Protocol.pre_minutes, Protocol.infusion_minutes)
         .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
         .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
         .where(TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES),
                TreatmentSession.starts_at < end, TreatmentSession.ends_at > start,
                (TreatmentSession.site_id == course.site_id) | (TreatmentSession.patient_id == course.patient_id)))
    out = []
    for s, pre, infusion in db.exec(q):
        ds = s.dosing_started_at or s.starts_at + timedelta(minutes=pre)
        de = s.dosing_ended_at or ds + timedelta(minutes=infusion)
        out.append((s.id, Booking(s.chair_id, s.patient_id, s.starts_at, s.ends_at, ds, de)))
    return out


def _replan(db: Session, actor: Actor, course: TreatmentCourse, *, from_number: int, after: datetime | None,
            movable: list[TreatmentSession], now: datetime, reason: str, granularity: int) -> ChangeResult:
    """Place sessions `from_number`… of the course again after `after`, reusing the `movable` rows.

    All-or-nothing: if the whole remainder cannot be placed, nothing moves and the problem is returned.
    """
    protocol = db.get(Protocol, course.protocol_id)
    site = db.get(Site, course.site_id)
    rule = protocol_rule(protocol)
    calendar = site_calendar(db, site, granularity_minutes=granularity)
    if from_number > rule.sessions:
        return ChangeResult()
    kept = [s for s in _course_sessions(db, course.id) if s.status not in INACTIVE_SESSION_STATUSES
            and s.id not in {m.id for m in movable}]
    horizon_end = now + timedelta(days=120)
    bookings, shifts = _context(db, course, now - timedelta(days=1), horizon_end, exclude={m.id for m in movable})
    last_day = after.astimezone(calendar.zone).date() if after else None
    earliest = max(now.astimezone(calendar.zone).date(), course.earliest_start)
    plan: SeriesPlan = plan_series(
        rule, calendar, bookings=bookings, shifts=shifts, prefs=course_preferences(course, earliest),
        patient_id=course.patient_id,
        now=now + REPLAN_LEAD, first_number=from_number, last_session_day=last_day,
        fixed=[_slot_of(s, rule) for s in kept],
    )
    if not plan.complete:
        first = plan.unplaced[0]
        return ChangeResult(problem=f"Session {first.number} cannot be re-planned: {first.reason}.",
                            alternatives=list(first.alternatives))
    result = ChangeResult()
    rows = sorted(movable, key=lambda r: r.number_in_course)
    # Free the numbers first: the (course, number) key is unique among active sessions.
    for row in rows:
        row.number_in_course = 10_000 + row.number_in_course
        db.add(row)
    db.flush()
    for slot in plan.slots:
        before = None
        if rows:
            row = rows.pop(0)
            before = {"number": row.number_in_course - 10_000, "starts_at": row.starts_at.isoformat(),
                      "chair_id": row.chair_id}
            row.number_in_course, row.chair_id, row.starts_at, row.ends_at = slot.number, slot.chair_id, slot.start, \
                slot.end
            row.row_version += 1
            result.moved.append(row)
        else:
            row = TreatmentSession(course_id=course.id, patient_id=course.patient_id, site_id=course.site_id,
                                   chair_id=slot.chair_id, number_in_course=slot.number, starts_at=slot.start,
                                   ends_at=slot.end, created_at=now, created_by_id=actor.user_id)
            result.added.append(row)
        db.add(row)
        _flush_or_conflict(db)
        audit.record(db, actor, "update" if before else "create", "treatment_session", row.id,
                     patient_id=course.patient_id, before=before,
                     after={"number": slot.number, "starts_at": slot.start.isoformat(), "chair_id": slot.chair_id},
                     detail=f"re-planned: {reason}")
    for row in rows:  # more rows than sessions left (should not happen): cancel the spare ones
        row.status, row.cancelled_at, row.cancel_reason = "cancelled", now, f"not needed after re-plan: {reason}"
        db.add(row)
    return result


def course_preferences(course: TreatmentCourse, earliest) -> Preferences:
    """The weekdays and time window the course was ordered with, from `earliest` on."""
    raw = json.loads(course.preferences_json or "{}")
    weekdays = frozenset(raw.get("weekdays") or []) or None
    window = None
    if raw.get("window_start") or raw.get("window_end"):
        window = (time.fromisoformat(raw.get("window_start") or "00:00"),
                  time.fromisoformat(raw.get("window_end") or "23:59"))
    return Preferences(earliest, weekdays, window)


def _zone(db: Session, course: TreatmentCourse):
    from zoneinfo import ZoneInfo

    return ZoneInfo(db.get(Site, course.site_id).time_zone)


def _future_booked(sessions: list[TreatmentSession], after_number: int) -> list[TreatmentSession]:
    return [s for s in sessions if s.status == "booked" and s.number_in_course > after_number]


def cancel(db: Session, actor: Actor, session_id: int, reason: str, *, scope: str, now: datetime,
           granularity: int = 15) -> ChangeResult:
    """Cancel one session (and re-plan the rest), or the rest of the course from this one on."""
    reason = _reason(reason)
    if scope not in ("one", "rest"):
        raise InvalidInput("Choose what to cancel.", fields={"scope": "one or rest"})
    row = _session(db, session_id)
    if row.status != "booked":
        raise Conflict(f"This session is {row.status.replace('_', ' ')}; only booked sessions can be cancelled.")
    course = db.get(TreatmentCourse, row.course_id)
    sessions = _course_sessions(db, course.id)
    targets = [row] if scope == "one" else [row, *_future_booked(sessions, row.number_in_course)]
    for t in targets:
        before = {"status": t.status}
        t.status, t.cancelled_at, t.cancel_reason, t.row_version = "cancelled", now, reason, t.row_version + 1
        db.add(t)
        audit.record(db, actor, "cancel", "treatment_session", t.id, patient_id=t.patient_id, before=before,
                     after={"status": "cancelled", "reason": reason})
    db.flush()
    result = ChangeResult()
    if scope == "rest":
        course.status, course.ended_at, course.end_reason = "cancelled", now, reason
        db.add(course)
        audit.record(db, actor, "cancel", "treatment_course", course.id, patient_id=course.patient_id,
                     after={"status": "cancelled", "reason": reason})
    else:
        # Not on the day the patient cannot come: the replacement goes after it.
        not_before = datetime.combine(row.starts_at.astimezone(_zone(db, course)).date() + timedelta(days=1),
                                      time(0), _zone(db, course)).astimezone(UTC)
        result = _replan_after_gap(db, actor, course, row, now=max(now, not_before),
                                   reason=f"session {row.number_in_course} cancelled: {reason}",
                                   granularity=granularity)
    db.commit()
    return result


def mark_no_show(db: Session, actor: Actor, session_id: int, *, now: datetime, granularity: int = 15,
                 reason: str = "did not attend") -> ChangeResult:
    """Record that the patient did not come, and re-plan the rest of the course."""
    row = _session(db, session_id)
    if row.status != "booked":
        raise Conflict(f"This session is {row.status.replace('_', ' ')}; only a booked session can be a no-show.")
    if row.starts_at > now:
        raise InvalidInput("A session that has not started yet cannot be a no-show.")
    row.status, row.row_version = "no_show", row.row_version + 1
    db.add(row)
    audit.record(db, actor, "update", "treatment_session", row.id, patient_id=row.patient_id,
                 before={"status": "booked"}, after={"status": "no_show"}, detail=reason)
    db.flush()
    course = db.get(TreatmentCourse, row.course_id)
    result = _replan_after_gap(db, actor, course, row, now=now, reason=f"session {row.number_in_course} missed",
                               granularity=granularity)
    db.commit()
    return result


def replan_after_no_show(db: Session, actor: Actor, session_id: int, *, now: datetime, granularity: int = 15
                         ) -> ChangeResult:
    """Re-plan a course after the sweeper marked one of its sessions a no-show.

    When the rest cannot be re-planned, the course's prescriber gets an alert saying which rule cannot
    hold (one per missed session), and nothing moves.
    """
    from clinic.vitals.models import Alert

    row = _session(db, session_id)
    if row.status != "no_show":
        return ChangeResult()
    course = db.get(TreatmentCourse, row.course_id)
    result = _replan_after_gap(db, actor, course, row, now=now, reason=f"session {row.number_in_course} missed",
                               granularity=granularity)
    if result.problem:
        key = f"course_replan:treatment_session:{row.id}"
        if db.exec(select(Alert.id).where(Alert.dedupe_key == key)).first() is None:
            alts = ", ".join(a.start.isoformat() for a in result.alternatives[:3])
            db.add(Alert(site_id=course.site_id, session_id=row.id, patient_id=course.patient_id,
                         recipient_id=course.prescriber_id, kind="course_replan_needed", priority="medium",
                         cause_table="treatment_session", cause_id=row.id, raised_at=now, dedupe_key=key,
                         message=(f"Session {row.number_in_course} was missed. {result.problem}"
                                  + (f" Nearest openings (UTC): {alts}." if alts else ""))[:500]))
    db.commit()
    return result


def _replan_after_gap(db: Session, actor: Actor, course: TreatmentCourse, gap: TreatmentSession, *, now: datetime,
                      reason: str, granularity: int) -> ChangeResult:
    sessions = _course_sessions(db, course.id)
    movable = _future_booked(sessions, gap.number_in_course)
    moving = {m.id for m in movable} | {gap.id}
    kept = [s for s in sessions if s.status not in INACTIVE_SESSION_STATUSES and s.id not in moving]
    after = max((s.starts_at for s in kept), default=None)
    return _replan(db, actor, course, from_number=gap.number_in_course, after=after, movable=movable, now=now,
                   reason=reason, granularity=granularity)


def reschedule(db: Session, actor: Actor, session_id: int, *, starts_at: datetime, chair_id: int | None,
               reason: str, scope: str, now: datetime, granularity: int = 15) -> ChangeResult:
    """Move one session (others stay), or this one and re-plan the following ones after it."""
    reason = _reason(reason)
    if scope not in ("one", "following"):
        raise InvalidInput("Choose what to move.", fields={"scope": "one or following"})
    if starts_at.tzinfo is None:
        raise InvalidInput("Give the time with its zone.", fields={"starts_at": "needs a time zone"})
    row = _session(db, session_id)
    if row.status != "booked":
        raise Conflict(f"This session is {row.status.replace('_', ' ')}; only booked sessions can be moved.")
    course = db.get(TreatmentCourse, row.course_id)
    protocol = db.get(Protocol, course.protocol_id)
    site = db.get(Site, course.site_id)
    rule = protocol_rule(protocol)
    calendar = site_calendar(db, site, granularity_minutes=granularity)
    starts_at = starts_at.astimezone(UTC)
    chairs = [chair_id] if chair_id else list(calendar.chair_ids)
    sessions = _course_sessions(db, course.id)
    following = _future_booked(sessions, row.number_in_course) if scope == "following" else []
    exclude = {row.id} | {f.id for f in following}
    bookings, shifts = _context(db, course, starts_at - timedelta(days=1), starts_at + timedelta(days=1), exclude)
    slot, why = None, "no chair"
    for c in chairs:
        candidate = _slot_of(row, rule)
        candidate = Slot(row.number_in_course, c, starts_at, starts_at + (row.ends_at - row.starts_at),
                         starts_at + (candidate.dosing_start - row.starts_at),
                         starts_at + (candidate.dosing_end - row.starts_at))
        why = slot_problem(rule, calendar, candidate, bookings=bookings, shifts=shifts, patient_id=course.patient_id,
                           now=now)
        if why is None:
            slot = candidate
            break
    if slot is None:
        raise Conflict(f"That time cannot be booked: {why}. Nothing was changed.")
    others = [_slot_of(s, rule) for s in sessions if s.status not in INACTIVE_SESSION_STATUSES
              and s.id not in exclude]
    spacing = spacing_problems(rule, sorted([*others, slot], key=lambda s: s.start), calendar.zone)
    if spacing and scope == "one":
        raise Conflict("Moving it there breaks the protocol's spacing: " + "; ".join(spacing)
                       + ". Nothing was changed; move the following sessions too, or choose another day.")
    before = {"starts_at": row.starts_at.isoformat(), "chair_id": row.chair_id}
    row.starts_at, row.ends_at, row.chair_id, row.row_version = slot.start, slot.end, slot.chair_id, row.row_version + 1
    db.add(row)
    _flush_or_conflict(db)
    audit.record(db, actor, "update", "treatment_session", row.id, patient_id=row.patient_id, before=before,
                 after={"starts_at": slot.start.isoformat(), "chair_id": slot.chair_id},
                 detail=f"rescheduled: {reason}")
    result = ChangeResult(moved=[row])
    if scope == "following" and following:
        replanned = _replan(db, actor, course, from_number=row.number_in_course + 1, after=slot.start,
                            movable=following, now=now, reason=f"after session {row.number_in_course} moved: {reason}",
                            granularity=granularity)
        if replanned.problem:
            db.rollback()
            raise Conflict(replanned.problem + " Nothing was changed.")
        result.moved += replanned.moved
        result.added += replanned.added
    db.commit()
    return result
