"""Automatic no-shows: a booked session nobody checked in to, `grace_minutes` after its start.

Run by the scheduler (`clinic.jobs.sweep_no_shows`). Each session changes with a conditional
``UPDATE … SET status = 'no_show' WHERE id = :id AND status = 'booked' AND checked_in_at IS NULL``:
a check-in, a cancellation or another sweep that got there first makes it match nothing, so the change
and its audit event happen exactly once, however often and from however many processes this runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from clinic import audit
from clinic.sessions.models import TreatmentSession

_SESSIONS = TreatmentSession.__table__


def mark_no_shows(db: Session, now: datetime, grace_minutes: int) -> list[int]:
    """Mark as no-show every booked, never checked-in session that started `grace_minutes` or more
    before `now`; audit each as the system; commit. Returns the ids it marked."""
    cutoff = now - timedelta(minutes=grace_minutes)
    candidates = db.exec(
        select(TreatmentSession.id, TreatmentSession.patient_id)
        .where(TreatmentSession.status == "booked", TreatmentSession.checked_in_at.is_(None),
               TreatmentSession.starts_at <= cutoff)
        .order_by(TreatmentSession.id)  # one lock order for concurrent sweeps on PostgreSQL
    ).all()
    marked: list[int] = []
    for session_id, patient_id in candidates:
        changed = db.exec(
            sa.update(_SESSIONS)
            .where(_SESSIONS.c.id == session_id, _SESSIONS.c.status == "booked", _SESSIONS.c.checked_in_at.is_(None))
            .values(status="no_show", row_version=_SESSIONS.c.row_version + 1)
        ).rowcount
        if changed != 1:
            continue  # checked in, cancelled or marked meanwhile
        audit.record(db, audit.SYSTEM, "update", "treatment_session", session_id, patient_id=patient_id,
                     before={"status": "booked"}, after={"status": "no_show"},
                     detail=f"no-show: not checked in {grace_minutes} minutes after the start", at=now)
        marked.append(session_id)
    db.commit()
    return marked
