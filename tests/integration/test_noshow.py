"""Automatic no-shows: a booked session nobody checked in to becomes a no-show once the grace after its
start has passed; exactly once, audited as the system, whatever else is going on."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from clinic import jobs
from clinic.audit import AuditEvent
from clinic.db import session_scope
from clinic.patients.models import Patient
from clinic.sessions.models import Chair, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.noshow import mark_no_shows
from clinic.sessions.protocols import seed_protocols
from tests.conftest import make_staff

NY = ZoneInfo("America/New_York")
NOON = datetime(2027, 1, 12, 12, 0, tzinfo=NY).astimezone(UTC)
GRACE = 30


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, 12, hour, minute, tzinfo=NY).astimezone(UTC)


@pytest.fixture
def book(db):
    """book(starts_at, status=..., checked_in=...) -> a session for a new patient on the next chair."""
    protocol = seed_protocols(db)["iv-induction"]
    prescriber = make_staff(db, "dr.noshow", "prescriber")
    site = db.exec(select(Site).where(Site.code == "HBR")).one()
    chairs = db.exec(select(Chair).where(Chair.site_id == site.id).order_by(Chair.label)).all()
    db.commit()
    count = iter(range(1, 1000))

    def _book(starts_at: datetime, *, status: str = "booked", checked_in: bool = False) -> TreatmentSession:
        n = next(count)
        patient = Patient(mrn=f"NS-{n}", given_name="Sam", family_name=f"Patient{n}", sex="male",
                          date_of_birth=date(1975, 5, 5))
        db.add(patient)
        db.commit()
        course = TreatmentCourse(patient_id=patient.id, protocol_id=protocol.id, prescriber_id=prescriber.id,
                                 site_id=site.id, earliest_start=starts_at.date(), status="active")
        db.add(course)
        db.commit()
        row = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=site.id,
                               chair_id=chairs[(n - 1) % len(chairs)].id, number_in_course=1, starts_at=starts_at,
                               ends_at=starts_at + timedelta(minutes=100), status=status,
                               checked_in_at=starts_at + timedelta(minutes=5) if checked_in else None)
        db.add(row)
        db.commit()
        return row

    return _book


def status(db, row: TreatmentSession) -> str:
    db.refresh(row)
    return row.status


def no_show_events(db) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.entity == "treatment_session")
                        .order_by(AuditEvent.id)))


def test_only_booked_sessions_past_the_grace_become_no_shows(db, book):
    missed = book(local(11, 0))  # 60 minutes ago
    on_the_edge = book(local(11, 30))  # exactly the grace ago
    within_grace = book(local(11, 45))  # 15 minutes ago: may still be in the car park
    arrived = book(local(10, 0), status="checked_in", checked_in=True)
    discharged = book(local(8, 0), status="discharged", checked_in=True)
    cancelled = book(local(9, 0), status="cancelled")
    later = book(local(15, 0))

    marked = mark_no_shows(db, NOON, GRACE)

    assert sorted(marked) == sorted([missed.id, on_the_edge.id])
    assert status(db, missed) == status(db, on_the_edge) == "no_show"
    assert status(db, within_grace) == "booked" and status(db, later) == "booked"
    assert status(db, arrived) == "checked_in" and status(db, discharged) == "discharged"
    assert status(db, cancelled) == "cancelled"
    assert missed.row_version == 2 and arrived.row_version == 1


def test_each_no_show_is_audited_once_as_the_system(db, book):
    missed = book(local(9, 0))
    mark_no_shows(db, NOON, GRACE)
    [event] = no_show_events(db)
    assert (event.actor_label, event.actor_id, event.action) == ("system", None, "update")
    assert (event.entity_id, event.patient_id) == (str(missed.id), missed.patient_id)
    assert '"no_show"' in event.after_json and '"booked"' in event.before_json
    assert "30 minutes" in event.detail


def test_the_sweep_is_idempotent(db, book):
    missed = book(local(9, 0))
    assert mark_no_shows(db, NOON, GRACE) == [missed.id]
    assert mark_no_shows(db, NOON, GRACE) == []
    assert mark_no_shows(db, NOON + timedelta(hours=5), GRACE) == []  # a late run changes nothing more
    assert len(no_show_events(db)) == 1


def test_a_session_checked_in_with_a_stale_booked_status_is_left_alone(db, book):
    # A check-in that has recorded its time is never overruled by the sweep, whatever the status says.
    odd = book(local(9, 0), checked_in=True)
    assert mark_no_shows(db, NOON, GRACE) == []
    assert status(db, odd) == "booked"


def test_two_schedulers_sweeping_at_once_mark_and_audit_each_session_once(db, engine, settings, book):
    missed = [book(local(8 + 2 * (i // 7))) for i in range(10)]
    start = threading.Barrier(4)
    results, errors = [], []

    def scheduler():
        try:
            start.wait()
            with session_scope(engine) as own:
                results.append(mark_no_shows(own, NOON, GRACE))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(i for r in results for i in r) == sorted(s.id for s in missed)
    assert sorted(int(e.entity_id) for e in no_show_events(db)) == sorted(s.id for s in missed)


def test_the_job_uses_the_configured_grace(db, engine, settings, book):
    assert settings.sessions.no_show_grace_minutes == 30
    missed = book(local(11, 0))
    waiting = book(local(11, 40))
    assert jobs.sweep_no_shows(engine, settings, NOON) == [missed.id]
    assert status(db, waiting) == "booked"
