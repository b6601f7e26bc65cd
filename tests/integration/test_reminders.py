"""Day-before reminders: written once per session whatever the scheduler does, delivered once by SMTP
(to a real local server started by the test), and one scheduler per deployment."""

from __future__ import annotations

import email
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from email import policy
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from clinic import jobs, notify, reminders
from clinic.audit import AuditEvent
from clinic.db import session_scope
from clinic.outbox import JobWatermark, OutboxMessage
from clinic.patients.models import Patient
from clinic.sessions.models import Chair, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.protocols import seed_protocols
from tests.conftest import make_staff

NY = ZoneInfo("America/New_York")
TOMORROW = date(2027, 1, 12)  # a Tuesday
EVENING_BEFORE = datetime(2027, 1, 11, 17, 0, tzinfo=NY).astimezone(UTC)  # send_hour_local = 17


def at(hour: int, minute: int = 0, day: date = TOMORROW) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


@pytest.fixture
def book(db):
    """book(starts_at, ...) -> a session for a new patient, on the next chair of Harbourview."""
    protocol = seed_protocols(db)["iv-induction"]
    prescriber = make_staff(db, "dr.remind", "prescriber")
    site = db.exec(select(Site).where(Site.code == "HBR")).one()
    chairs = db.exec(select(Chair).where(Chair.site_id == site.id).order_by(Chair.label)).all()
    db.commit()
    count = iter(range(1, 1000))

    def _book(starts_at: datetime, *, status: str = "booked", email_address: str | None = "",
              given_name: str = "Robin", checked_in: bool = False) -> TreatmentSession:
        n = next(count)
        patient = Patient(mrn=f"REM-{n}", given_name=given_name, family_name=f"Patient{n}", sex="female",
                          date_of_birth=date(1980, 1, 1),
                          email=f"patient{n}@example.org" if email_address == "" else email_address)
        db.add(patient)
        db.commit()
        course = TreatmentCourse(patient_id=patient.id, protocol_id=protocol.id, prescriber_id=prescriber.id,
                                 site_id=site.id, earliest_start=starts_at.date(), status="active")
        db.add(course)
        db.commit()
        session = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=site.id,
                                   chair_id=chairs[(n - 1) % len(chairs)].id, number_in_course=1,
                                   starts_at=starts_at, ends_at=starts_at + timedelta(minutes=100), status=status,
                                   checked_in_at=starts_at if checked_in else None)
        db.add(session)
        db.commit()
        return session

    return _book


def outbox(db, session_id: int | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.id)
    if session_id is not None:
        q = q.where(OutboxMessage.session_id == session_id)
    rows = list(db.exec(q))
    for r in rows:
        db.refresh(r)
    return rows


def sweep(engine, settings, now):
    return jobs.sweep_reminders(engine, settings, now)


# --- writing reminders ----------------------------------------------------------------------------


def test_a_reminder_is_written_once_however_often_and_late_the_sweep_runs(db, engine, settings, book):
    session = book(at(10))
    assert sweep(engine, settings, EVENING_BEFORE - timedelta(minutes=1)).written == []  # not due yet
    assert len(sweep(engine, settings, EVENING_BEFORE).written) == 1
    assert sweep(engine, settings, EVENING_BEFORE).written == []  # the same minute again
    assert sweep(engine, settings, EVENING_BEFORE + timedelta(hours=3)).written == []  # late
    [message] = outbox(db)
    assert message.session_id == session.id and message.dedupe_key == f"reminder:{session.id}:day_before"
    assert message.status == "pending" and message.attempts == 0 and message.due_at == EVENING_BEFORE
    assert message.recipient == "patient1@example.org" and message.channel == "email"
    events = db.exec(select(AuditEvent).where(AuditEvent.entity == "outbox_message")).all()
    assert [(e.actor_label, e.action, e.patient_id) for e in events] == [("system", "create", session.patient_id)]
    assert db.get(JobWatermark, reminders.JOB_NAME).processed_until == EVENING_BEFORE + timedelta(hours=3)


def test_a_scheduler_that_was_down_all_evening_catches_up_in_the_morning(db, engine, settings, book):
    later = book(at(10))
    soon = book(at(8, 30))  # within min_notice_hours (2 h) of 07:00: too late to prepare
    result = sweep(engine, settings, at(7))
    assert [m.session_id for m in outbox(db)] == [later.id] and len(result.written) == 1
    assert soon.id not in [m.session_id for m in outbox(db)]


def test_a_session_booked_after_the_evening_sweep_still_gets_its_reminder(db, engine, settings, book):
    sweep(engine, settings, EVENING_BEFORE)
    late_booking = book(at(11))  # booked at 20:00 for tomorrow; the watermark is already past 17:00
    sweep(engine, settings, at(20, day=date(2027, 1, 11)))
    assert [m.session_id for m in outbox(db)] == [late_booking.id]


def test_only_the_evening_before_is_due(db, engine, settings, book):
    tomorrow = book(at(19, 30))
    day_after = book(at(8, day=date(2027, 1, 13)))
    sweep(engine, settings, EVENING_BEFORE + timedelta(minutes=1))
    assert [m.session_id for m in outbox(db)] == [tomorrow.id]
    sweep(engine, settings, EVENING_BEFORE + timedelta(days=1))
    assert [m.session_id for m in outbox(db)] == [tomorrow.id, day_after.id]


def test_hours_before_mode_sends_a_fixed_time_ahead(db, engine, settings, book):
    cfg = settings.reminders.model_copy(update={"send_hour_local": None, "hours_before": 24})
    fixed = settings.model_copy(update={"reminders": cfg})
    session = book(at(10))
    sweep(engine, fixed, at(9, 59, day=date(2027, 1, 11)))
    assert outbox(db) == []
    sweep(engine, fixed, at(10, day=date(2027, 1, 11)))
    assert [(m.session_id, m.due_at) for m in outbox(db)] == [(session.id, at(10, day=date(2027, 1, 11)))]


def test_two_schedulers_sweeping_at_once_write_one_reminder_per_session(db, engine, settings, book):
    sessions = [book(at(8 + 2 * (i // 7))) for i in range(12)]  # 7 chairs: two rounds
    start = threading.Barrier(4)
    results, errors = [], []

    def scheduler():
        try:
            start.wait()
            results.append(jobs.sweep_reminders(engine, settings, EVENING_BEFORE + timedelta(seconds=5)))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    rows = outbox(db)
    assert sorted(m.session_id for m in rows) == sorted(s.id for s in sessions)
    assert sum(len(r.written) for r in results) == len(sessions)
    assert len(db.exec(select(AuditEvent).where(AuditEvent.entity == "outbox_message")).all()) == len(sessions)


def test_cancelled_and_no_show_sessions_get_no_reminder(db, engine, settings, book):
    booked = book(at(9))
    book(at(10), status="cancelled")
    book(at(11), status="no_show")
    no_address = book(at(12), email_address=None)
    result = sweep(engine, settings, EVENING_BEFORE)
    assert [m.session_id for m in outbox(db)] == [booked.id]
    assert result.no_email == [no_address.id]


def test_switched_off_reminders_write_nothing(db, engine, settings, book):
    book(at(9))
    off = settings.model_copy(update={"reminders": settings.reminders.model_copy(update={"enabled": False})})
    sweep(engine, off, EVENING_BEFORE)
    assert outbox(db) == []


def test_the_reminder_says_when_where_and_how_to_prepare_in_plain_text(db, engine, settings, book):
    book(at(10), given_name="Robin")
    sweep(engine, settings, EVENING_BEFORE)
    [message] = outbox(db)
    assert message.subject == "Reminder: your appointment on Tuesday 12 January at 10:00"
    body = message.body
    assert body.startswith("Dear Robin,")
    assert "Tuesday 12 January 2027 at 10:00 (EST)" in body  # the site's zone, not UTC (15:00)
    assert "Harbourview Infusion Clinic" in body
    for instruction in ("eat for about 2 hours", "for about 30 minutes", "adult who will take you home",
                        "until the next day"):
        assert instruction in body
    assert "ketamine" not in body.lower() and "induction" not in body.lower() and "<" not in body


# --- delivering them ------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or refuses recipients while `refuse` is set."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def with_smtp(settings, port: int, **extra):
    return settings.model_copy(update={"smtp": settings.smtp.model_copy(
        update={"host": "127.0.0.1", "port": port, "timeout_seconds": 5} | extra)})


def test_reminders_are_delivered_by_smtp_and_a_second_run_sends_nothing_more(db, engine, settings, book,
                                                                             smtp_server):
    inbox, port = smtp_server
    configured = with_smtp(settings, port)
    sessions = [book(at(9)), book(at(10)), book(at(11))]
    sweep(engine, configured, EVENING_BEFORE)
    result = jobs.send_outbox(engine, configured, EVENING_BEFORE + timedelta(minutes=1))
    assert len(result.sent) == 3 and result.retrying == result.failed == []
    assert sorted(m["To"] for m in inbox.messages) == [f"patient{i}@example.org" for i in (1, 2, 3)]
    first = next(m for m in inbox.messages if m["To"] == "patient1@example.org")
    assert first["From"] == settings.smtp.from_address
    assert first["Subject"] == "Reminder: your appointment on Tuesday 12 January at 09:00"
    assert first.get_content_type() == "text/plain" and "about 2 hours" in first.get_content()
    assert first["Message-ID"].startswith("<chairside.outbox.")
    assert [(m.status, m.attempts, m.sent_at) for m in outbox(db)] == [
        ("sent", 1, EVENING_BEFORE + timedelta(minutes=1))] * len(sessions)

    again = jobs.send_outbox(engine, configured, EVENING_BEFORE + timedelta(minutes=2))
    sweep(engine, configured, EVENING_BEFORE + timedelta(minutes=2))
    jobs.send_outbox(engine, configured, EVENING_BEFORE + timedelta(minutes=3))
    assert again.sent == [] and len(inbox.messages) == 3


def test_an_smtp_refusal_leaves_the_message_pending_with_the_error(db, engine, settings, book, smtp_server):
    inbox, port = smtp_server
    configured = with_smtp(settings, port)
    book(at(10))
    sweep(engine, configured, EVENING_BEFORE)
    inbox.refuse = True
    now = EVENING_BEFORE + timedelta(minutes=1)
    result = jobs.send_outbox(engine, configured, now)
    [message] = outbox(db)
    assert result.retrying == [message.id] and inbox.messages == []
    assert message.status == "pending" and message.attempts == 1 and message.sent_at is None
    assert "550" in message.last_error and "Mailbox unavailable" in message.last_error
    assert message.due_at == now + timedelta(minutes=5)  # waits before the next attempt

    assert jobs.send_outbox(engine, configured, now + timedelta(minutes=1)).sent == []  # not due again yet
    inbox.refuse = False
    assert len(jobs.send_outbox(engine, configured, now + timedelta(minutes=5)).sent) == 1
    [message] = outbox(db)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert len(inbox.messages) == 1


def test_an_unreachable_server_fails_the_message_after_the_last_attempt(db, engine, settings, book):
    configured = with_smtp(settings, free_port(), max_attempts=2)  # nobody listens there
    book(at(9))
    book(at(10))
    sweep(engine, configured, EVENING_BEFORE)
    now = EVENING_BEFORE + timedelta(minutes=1)
    first = jobs.send_outbox(engine, configured, now)
    tried, untouched = outbox(db)
    assert first.retrying == [tried.id] and "ConnectionRefused" in tried.last_error
    assert (tried.status, tried.attempts, tried.due_at) == ("pending", 1, now + timedelta(minutes=5))
    assert (untouched.status, untouched.attempts) == ("pending", 0)  # the run stopped at the dead server
    jobs.send_outbox(engine, configured, now + timedelta(minutes=10))  # the longest-waiting one is tried
    jobs.send_outbox(engine, configured, now + timedelta(minutes=11))
    tried, untouched = outbox(db)
    assert (tried.status, tried.attempts, tried.sent_at) == ("failed", 2, None)
    assert (untouched.status, untouched.attempts) == ("pending", 1)


def test_two_senders_at_once_deliver_each_message_once(db, engine, settings, book, smtp_server):
    inbox, port = smtp_server
    configured = with_smtp(settings, port)
    for i in range(10):
        book(at(8 + 2 * (i // 7)))
    sweep(engine, configured, EVENING_BEFORE)
    start = threading.Barrier(4)
    errors = []

    def sender():
        try:
            start.wait()
            with session_scope(engine) as own:
                notify.send_pending(own, configured, EVENING_BEFORE + timedelta(minutes=1))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(m["To"] for m in inbox.messages) == sorted(f"patient{i}@example.org" for i in range(1, 11))
    assert [(m.status, m.attempts) for m in outbox(db)] == [("sent", 1)] * 10


def test_a_reminder_for_a_session_cancelled_before_sending_is_not_sent(db, engine, settings, book, smtp_server):
    inbox, port = smtp_server
    configured = with_smtp(settings, port)
    session = book(at(10))
    sweep(engine, configured, EVENING_BEFORE)
    session.status = "cancelled"
    db.add(session)
    db.commit()
    result = jobs.send_outbox(engine, configured, EVENING_BEFORE + timedelta(minutes=1))
    [message] = outbox(db)
    assert result.not_sent == [message.id] and inbox.messages == []
    assert message.status == "skipped" and message.last_error == "not sent: the session is cancelled"


def test_a_session_moved_before_sending_is_reminded_with_its_new_time(db, engine, settings, book, smtp_server):
    inbox, port = smtp_server
    configured = with_smtp(settings, port)
    session = book(at(10))
    sweep(engine, configured, EVENING_BEFORE)
    session.starts_at, session.ends_at = at(14), at(15, 40)
    db.add(session)
    db.commit()
    jobs.send_outbox(engine, configured, EVENING_BEFORE + timedelta(minutes=1))
    [received] = inbox.messages
    assert received["Subject"].endswith("at 14:00") and "at 14:00 (EST)" in received.get_content()


# --- one scheduler per deployment -----------------------------------------------------------------


def test_the_postgres_advisory_lock_refuses_a_second_holder(engine, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite uses the file lock (tests/unit/test_jobs.py)")
    first = jobs.acquire_scheduler_lock(engine, tmp_path)
    assert isinstance(first, jobs.AdvisoryLock) and first.alive()
    try:
        assert jobs.acquire_scheduler_lock(engine, tmp_path) is None
    finally:
        first.release()
    again = jobs.acquire_scheduler_lock(engine, tmp_path)
    assert again is not None
    again.release()


def test_the_lock_on_sqlite_is_the_instance_file(engine, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("SQLite only")
    first = jobs.acquire_scheduler_lock(engine, tmp_path)
    assert isinstance(first, jobs.FileSchedulerLock) and (tmp_path / "scheduler.lock").exists()
    try:
        assert jobs.acquire_scheduler_lock(engine, tmp_path) is None
    finally:
        first.release()
