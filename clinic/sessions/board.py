"""What the day board and the week calendar show: a site's sessions with patient, protocol step and
status. Reading them is a view of patient data, so it is audited."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.errors import Conflict, NotFound
from clinic.patients.models import Patient, PatientFlag
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession

WEEKDAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ACTIVE_ON_FLOOR = ("checked_in", "dosing", "recovery")


@dataclass(frozen=True)
class BoardSession:
    id: int
    course_id: int
    patient_id: int
    patient_name: str
    mrn: str
    chair_id: int
    chair_label: str
    protocol_name: str
    step: str  # "IV ketamine induction 3/6"
    status: str
    starts_at: datetime
    ends_at: datetime
    checked_in_at: datetime | None
    dosing_started_at: datetime | None
    flags: tuple[str, ...]

    def elapsed_minutes(self, now: datetime) -> int | None:
        """Minutes since dosing began (or since check-in before that), while the patient is on the floor."""
        if self.status not in ACTIVE_ON_FLOOR:
            return None
        since = self.dosing_started_at or self.checked_in_at
        return int((now - since).total_seconds() // 60) if since else None


@dataclass(frozen=True)
class DayBoard:
    site: Site
    day: date
    zone: ZoneInfo
    chairs: list[Chair]
    sessions: list[BoardSession]
    opens: datetime | None  # UTC, for drawing the time axis
    closes: datetime | None

    def by_chair(self) -> dict[int, list[BoardSession]]:
        out: dict[int, list[BoardSession]] = {c.id: [] for c in self.chairs}
        for s in self.sessions:
            out.setdefault(s.chair_id, []).append(s)
        return out


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def sessions_between(db: Session, site_id: int, start: datetime, end: datetime, *,
                     chair_id: int | None = None, include_inactive: bool = True) -> list[BoardSession]:
    """The site's sessions starting in [start, end), with what a board needs to show."""
    q = (select(TreatmentSession, Patient, Chair.label, Protocol.name, TreatmentCourse.planned_sessions)
         .join(Patient, Patient.id == TreatmentSession.patient_id)
         .join(Chair, Chair.id == TreatmentSession.chair_id)
         .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
         .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
         .where(TreatmentSession.site_id == site_id, TreatmentSession.starts_at >= start,
                TreatmentSession.starts_at < end)
         .order_by(TreatmentSession.starts_at, Chair.label))
    if chair_id is not None:
        q = q.where(TreatmentSession.chair_id == chair_id)
    if not include_inactive:
        q = q.where(TreatmentSession.status.not_in(("cancelled", "no_show")))
    rows = list(db.exec(q))
    patient_ids = {s.patient_id for s, *_ in rows}
    flags: dict[int, list[str]] = {}
    if patient_ids:
        for f in db.exec(select(PatientFlag).where(PatientFlag.patient_id.in_(patient_ids),
                                                   PatientFlag.cleared_at.is_(None))):
            flags.setdefault(f.patient_id, []).append(f.kind)
    out = []
    for s, p, chair_label, protocol_name, planned in rows:
        out.append(BoardSession(
            id=s.id, course_id=s.course_id, patient_id=p.id, patient_name=f"{p.family_name}, {p.given_name}",
            mrn=p.mrn, chair_id=s.chair_id, chair_label=chair_label, protocol_name=protocol_name,
            step=f"{protocol_name} {s.number_in_course}/{planned}" if planned > 1 else protocol_name,
            status=s.status, starts_at=s.starts_at, ends_at=s.ends_at, checked_in_at=s.checked_in_at,
            dosing_started_at=s.dosing_started_at, flags=tuple(sorted(flags.get(p.id, ()))),
        ))
    return out


def get_site(db: Session, site_id: int) -> Site:
    site = db.get(Site, site_id)
    if site is None or not site.active:
        raise NotFound(f"No active site with id {site_id}.")
    return site


def day_board(db: Session, actor: Actor, site_id: int, day: date) -> DayBoard:
    site = get_site(db, site_id)
    zone = ZoneInfo(site.time_zone)
    start, end = _day_bounds(day, zone)
    chairs = list(db.exec(select(Chair).where(Chair.site_id == site.id, Chair.active).order_by(Chair.label)))
    sessions = sessions_between(db, site.id, start, end)
    spans = json.loads(site.hours_json or "{}").get(WEEKDAY_CODES[day.weekday()], [])
    opens = closes = None
    if spans:
        opens = datetime.combine(day, time.fromisoformat(min(a for a, _ in spans)), zone).astimezone(UTC)
        closes = datetime.combine(day, time.fromisoformat(max(b for _, b in spans)), zone).astimezone(UTC)
    if sessions:
        opens = min([opens or sessions[0].starts_at, *(s.starts_at for s in sessions)])
        closes = max([closes or sessions[-1].ends_at, *(s.ends_at for s in sessions)])
    audit.record(db, actor, "view", "day_board", site.id, detail=f"{site.code} {day.isoformat()}: "
                 f"{len(sessions)} sessions")
    db.commit()
    return DayBoard(site, day, zone, chairs, sessions, opens, closes)


def week_calendar(db: Session, actor: Actor, site_id: int, monday: date, *, chair_id: int | None = None
                  ) -> tuple[Site, list[tuple[date, list[BoardSession]]], list[Chair]]:
    site = get_site(db, site_id)
    zone = ZoneInfo(site.time_zone)
    start, _ = _day_bounds(monday, zone)
    _, end = _day_bounds(monday + timedelta(days=6), zone)
    sessions = sessions_between(db, site.id, start, end, chair_id=chair_id)
    days = [(monday + timedelta(days=i), []) for i in range(7)]
    index = {d: lst for d, lst in days}
    for s in sessions:
        index[s.starts_at.astimezone(zone).date()].append(s)
    chairs = list(db.exec(select(Chair).where(Chair.site_id == site.id, Chair.active).order_by(Chair.label)))
    audit.record(db, actor, "view", "week_calendar", site.id,
                 detail=f"{site.code} week of {monday.isoformat()}" + (f" chair {chair_id}" if chair_id else ""))
    db.commit()
    return site, days, chairs


def check_in(db: Session, actor: Actor, session_id: int, *, expected_version: int | None, now: datetime
             ) -> TreatmentSession:
    """Mark a booked patient as arrived (a conditional update: a second tap changes nothing)."""
    row = db.get(TreatmentSession, session_id)
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    if row.status == "checked_in":
        return row  # the same tap again, or another tablet got there first: nothing more to do
    if row.status != "booked":
        raise Conflict(f"This session is {row.status.replace('_', ' ')}; it cannot be checked in.")
    if expected_version is not None and expected_version != row.row_version:
        raise Conflict("This session changed since the board was loaded. Look again before checking in.")
    if abs(row.starts_at - now) > timedelta(hours=12):
        raise Conflict("Only sessions starting within 12 hours can be checked in.")
    row.status, row.checked_in_at, row.row_version = "checked_in", now, row.row_version + 1
    db.add(row)
    audit.record(db, actor, "update", "treatment_session", row.id, patient_id=row.patient_id,
                 before={"status": "booked"}, after={"status": "checked_in", "checked_in_at": now.isoformat()})
    db.commit()
    return row
