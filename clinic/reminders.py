"""Patient reminders: the day-before e-mail with the time and how to prepare.

The sweep (`sweep`, run every minute by `clinic.jobs`) finds booked sessions whose reminder has come
due and writes one outbox message each; `clinic.notify` delivers them. A reminder is written when it
is due (the evening before, at `send_hour_local` in the site's zone, or `hours_before` the start), so a
message rarely waits long enough in the outbox for its session to be moved or cancelled; the sender
checks again just before sending (`text_before_sending`).

Idempotent by construction: the whole window of sessions that are due and not yet started is looked at
on every run (a late, repeated or restarted sweep catches up), and the insert is
``INSERT … ON CONFLICT (dedupe_key) DO NOTHING`` with ``dedupe_key = reminder:<session_id>:day_before``,
so two sweeps at once still write one row per session. The job's watermark records how far the sweep
has got (for monitoring and the start-up log); it is deliberately not used to skip sessions, since a
session booked or moved into an already swept period must still get its reminder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from clinic import audit
from clinic.config import RemindersSection, Settings
from clinic.outbox import JobWatermark, OutboxMessage
from clinic.patients.models import Patient
from clinic.sessions.models import Site, TreatmentSession

JOB_NAME = "sweep_reminders"
KIND = "day_before"
# In "evening before" mode a session can be due at most ~2 days ahead (a DST day is 25 hours).
_EVENING_LOOKAHEAD = timedelta(hours=50)


def dedupe_key(session_id: int) -> str:
    """The outbox key that makes a session's day-before reminder unique."""
    return f"reminder:{session_id}:{KIND}"


# --- the pure part: when, and what ----------------------------------------------------------------


def due_at(starts_at: datetime, zone: ZoneInfo, cfg: RemindersSection) -> datetime:
    """When the reminder for a session starting at `starts_at` (aware) should go out, in UTC.

    Evening-before mode: `send_hour_local` o'clock on the calendar day before the session, both read
    in the site's zone (so it stays 17:00 local across a DST change). Otherwise `hours_before` the start.
    """
    if cfg.send_hour_local is None:
        return (starts_at - timedelta(hours=cfg.hours_before)).astimezone(UTC)
    day_before = starts_at.astimezone(zone).date() - timedelta(days=1)
    return datetime.combine(day_before, time(cfg.send_hour_local), zone).astimezone(UTC)


def lookahead(cfg: RemindersSection) -> timedelta:
    """How far ahead of now a session can start and already have its reminder due."""
    if cfg.send_hour_local is None:
        return timedelta(hours=cfg.hours_before)
    return _EVENING_LOOKAHEAD


def too_late(starts_at: datetime, now: datetime, cfg: RemindersSection) -> bool:
    """A session starting within `min_notice_hours` (or already started) gets no reminder any more."""
    return starts_at - now < timedelta(hours=cfg.min_notice_hours)


def _clock(local: datetime, time_format: str) -> str:
    if time_format == "12h":
        return f"{local.hour % 12 or 12}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"
    return f"{local:%H:%M}"


@dataclass(frozen=True)
class ReminderText:
    subject: str
    body: str


def compose(*, first_name: str, starts_at: datetime, zone: ZoneInfo, clinic_name: str, site_name: str,
            time_format: str, preparation: str) -> ReminderText:
    """The plain-text reminder. It names the clinic and site but not the treatment, the address or the
    protocol: e-mail is not a private channel."""
    local = starts_at.astimezone(zone)
    day = f"{local:%A} {local.day} {local:%B %Y}"
    clock = _clock(local, time_format)
    where = clinic_name if site_name.casefold() in clinic_name.casefold() else f"{clinic_name}, {site_name}"
    subject = f"Reminder: your appointment on {local:%A} {local.day} {local:%B} at {clock}"
    body = "\n".join([
        f"Dear {first_name},",
        "",
        "This is a reminder of your appointment:",
        "",
        f"    {day} at {clock} ({local.tzname()})",
        f"    {where}",
        "",
        "How to prepare:",
        "",
        preparation.strip(),
        "",
        "If you cannot come, or you are unwell, please call the clinic as soon as you can.",
        "",
        f"{clinic_name}",
        "This message was sent automatically; replies are not read.",
        "",
    ])
    return ReminderText(subject=subject[:200], body=body)


def text_for(settings: Settings, session: TreatmentSession, patient: Patient, site: Site) -> ReminderText:
    return compose(
        first_name=patient.preferred_name or patient.given_name,
        starts_at=session.starts_at,
        zone=ZoneInfo(site.time_zone),
        clinic_name=settings.clinic.name,
        site_name=site.name,
        time_format=settings.clinic.time_format,
        preparation=settings.reminders.preparation,
    )


# --- the service ----------------------------------------------------------------------------------


@dataclass
class SweepResult:
    written: list[int] = field(default_factory=list)  # outbox message ids
    no_email: list[int] = field(default_factory=list)  # session ids whose patient has no e-mail address
    previous_watermark: datetime | None = None


def _insert(db: Session):
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def sweep(db: Session, settings: Settings, now: datetime) -> SweepResult:
    """Write the reminders that are due by `now` and not written yet; commit. Safe to run at any time,
    any number of times, from several processes at once."""
    cfg = settings.reminders
    result = SweepResult()
    if not cfg.enabled:
        return result
    mark = db.get(JobWatermark, JOB_NAME)
    result.previous_watermark = mark.processed_until if mark else None

    rows = db.exec(
        select(TreatmentSession, Patient, Site)
        .join(Patient, Patient.id == TreatmentSession.patient_id)
        .join(Site, Site.id == TreatmentSession.site_id)
        .where(TreatmentSession.status == "booked",
               TreatmentSession.starts_at >= now + timedelta(hours=cfg.min_notice_hours),  # as too_late()
               TreatmentSession.starts_at <= now + lookahead(cfg))
        .order_by(TreatmentSession.id)  # one lock order for concurrent sweeps on PostgreSQL
    ).all()
    due = [(s, p, site) for s, p, site in rows if due_at(s.starts_at, ZoneInfo(site.time_zone), cfg) <= now]
    keys = [dedupe_key(s.id) for s, _, _ in due]
    written = set(db.exec(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys)))) if keys \
        else set()

    outbox = OutboxMessage.__table__
    for session, patient, site in due:
        key = dedupe_key(session.id)
        if key in written:
            continue
        if not (patient.email or "").strip():
            result.no_email.append(session.id)
            continue
        text = text_for(settings, session, patient, site)
        stmt = _insert(db)(outbox).values(
            channel="email", recipient=patient.email.strip(), subject=text.subject, body=text.body,
            patient_id=patient.id, session_id=session.id,
            due_at=due_at(session.starts_at, ZoneInfo(site.time_zone), cfg),
            status="pending", attempts=0, created_at=now, dedupe_key=key,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(outbox.c.id)
        message_id = db.exec(stmt).scalar()
        if message_id is None:  # another sweep wrote it first
            continue
        result.written.append(message_id)
        audit.record(db, audit.SYSTEM, "create", "outbox_message", message_id, patient_id=patient.id,
                     detail=f"day-before reminder for session {session.id}", at=now)
    _advance_watermark(db, JOB_NAME, now)
    db.commit()
    return result


def _advance_watermark(db: Session, job_name: str, until: datetime) -> None:
    table = JobWatermark.__table__
    stmt = _insert(db)(table).values(job_name=job_name, processed_until=until, updated_at=until)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_name"],
        set_={"processed_until": stmt.excluded.processed_until, "updated_at": stmt.excluded.updated_at},
        where=table.c.processed_until < stmt.excluded.processed_until,  # never backwards
    )
    db.exec(stmt)


def text_before_sending(db: Session, settings: Settings, message: OutboxMessage, now: datetime
                        ) -> dict[str, str] | str:
    """For a reminder about to be sent: recipient, subject and body for the session as it stands now (a
    moved session gets its new time), or the reason not to send it at all."""
    session = db.get(TreatmentSession, message.session_id) if message.session_id else None
    if session is None:
        return "not sent: the session no longer exists"
    db.refresh(session)
    if session.status != "booked":
        return f"not sent: the session is {session.status.replace('_', ' ')}"
    if too_late(session.starts_at, now, settings.reminders):
        return "not sent: too close to the start of the session"
    patient = db.get(Patient, session.patient_id)
    db.refresh(patient)
    if not (patient.email or "").strip():
        return "not sent: the patient no longer has an e-mail address"
    text = text_for(settings, session, patient, db.get(Site, session.site_id))
    return {"recipient": patient.email.strip(), "subject": text.subject, "body": text.body}


def notice_of_change(db: Session, settings: Settings, session_ids: list[int], now: datetime) -> list[int]:
    """Tell a patient who already had their reminder that the appointment moved or was cancelled.

    Only sessions whose day-before reminder was already sent need it (an unsent one is re-read before
    sending). Keyed by the session's row version, so each change is told once. Commits.
    """
    if not settings.reminders.enabled or not session_ids:
        return []
    sent = set(db.exec(select(OutboxMessage.session_id).where(
        OutboxMessage.dedupe_key.in_([dedupe_key(i) for i in session_ids]), OutboxMessage.status == "sent")))
    written = []
    outbox = OutboxMessage.__table__
    for session_id in sorted(sent):
        session = db.get(TreatmentSession, session_id)
        patient = db.get(Patient, session.patient_id)
        site = db.get(Site, session.site_id)
        if not (patient.email or "").strip():
            continue
        name = patient.preferred_name or patient.given_name
        if session.status == "cancelled":
            subject = "Your appointment has been cancelled"
            local = session.starts_at.astimezone(ZoneInfo(site.time_zone))
            body = (f"Dear {name},\n\nYour appointment on {local:%A} {local.day} {local:%B} at "
                    f"{_clock(local, settings.clinic.time_format)} is cancelled. The clinic will contact you about "
                    f"a new time.\n\n{settings.clinic.name}\nThis message was sent automatically; replies are not "
                    "read.\n")
        elif session.status == "booked":
            text = text_for(settings, session, patient, site)
            subject = "Changed: " + text.subject.removeprefix("Reminder: ")
            body = text.body.replace("This is a reminder of your appointment:",
                                     "Your appointment has changed. The new time is:")
        else:
            continue
        key = f"reminder:{session.id}:changed:{session.row_version}"
        stmt = _insert(db)(outbox).values(
            channel="email", recipient=patient.email.strip(), subject=subject[:200], body=body,
            patient_id=patient.id, session_id=session.id, due_at=now, status="pending", attempts=0,
            created_at=now, dedupe_key=key,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(outbox.c.id)
        message_id = db.exec(stmt).scalar()
        if message_id is not None:
            written.append(message_id)
            audit.record(db, audit.SYSTEM, "create", "outbox_message", message_id, patient_id=patient.id,
                         detail=f"change notice for session {session.id}", at=now)
    db.commit()
    return written
