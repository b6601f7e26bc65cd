"""The append-only audit trail.

Every create, change and view of patient data adds an AuditEvent in the same transaction as the
change (the caller commits both together). There is no update or delete path: the migration also
installs database triggers that refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from clinic.db import utc_column, utcnow

ACTIONS = (
    "view", "create", "update", "amend", "cancel", "export", "acknowledge",
    "login", "login_failed", "logout", "timeout", "deactivate", "reactivate", "role_change",
    "token_issue", "token_revoke", "search", "print",
)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_patient_at", "patient_id", "at"),
        sa.Index("ix_audit_event_actor_at", "actor_id", "at"),
        sa.Index("ix_audit_event_entity", "entity", "entity_id", "at"),
        sa.Index("ix_audit_event_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    actor_id: int | None = Field(default=None, foreign_key="staff_user.id")
    actor_label: str = Field(max_length=120)  # username at the time (or "system", "anonymous")
    action: str = Field(max_length=20)
    entity: str = Field(max_length=40)
    entity_id: str | None = Field(default=None, max_length=64)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    before_json: str | None = Field(default=None, sa_type=sa.Text)
    after_json: str | None = Field(default=None, sa_type=sa.Text)
    detail: str | None = Field(default=None, max_length=500)
    request_id: str | None = Field(default=None, max_length=40)
    ip: str | None = Field(default=None, max_length=64)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def snapshot(obj: SQLModel | None, *, exclude: tuple[str, ...] = ("password_hash", "pin_hash", "token_hash")
             ) -> dict[str, Any] | None:
    """A JSON-ready dict of a row's columns (secrets left out)."""
    if obj is None:
        return None
    return {k: _jsonable(v) for k, v in obj.model_dump().items() if k not in exclude}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    """Only the fields that changed, on each side."""
    if before is None or after is None:
        return before, after
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


class Actor:
    """Who is acting: a staff user, or the system (jobs), with the request's context."""

    def __init__(self, user_id: int | None, label: str, *, roles: frozenset[str] = frozenset(),
                 request_id: str | None = None, ip: str | None = None):
        self.user_id = user_id
        self.label = label
        self.roles = roles
        self.request_id = request_id
        self.ip = ip

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Actor({self.label!r})"


SYSTEM = Actor(None, "system")


def record(
    db: Session,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: Any = None,
    *,
    patient_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add an audit event to `db` (the caller's transaction commits it with the change)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        at=at or utcnow(),
        actor_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        patient_id=patient_id,
        before_json=None if before is None else json.dumps(before, default=str, sort_keys=True),
        after_json=None if after is None else json.dumps(after, default=str, sort_keys=True),
        detail=detail,
        request_id=actor.request_id,
        ip=actor.ip,
    )
    db.add(event)
    return event


def page(
    db: Session,
    *,
    actor_id: int | None = None,
    patient_id: int | None = None,
    action: str | None = None,
    entity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AuditEvent]:
    """Newest first, keyset-paged by id (`before_id` is the last id of the previous page)."""
    q = select(AuditEvent)
    if actor_id is not None:
        q = q.where(AuditEvent.actor_id == actor_id)
    if patient_id is not None:
        q = q.where(AuditEvent.patient_id == patient_id)
    if action:
        q = q.where(AuditEvent.action == action)
    if entity:
        q = q.where(AuditEvent.entity == entity)
    if since:
        q = q.where(AuditEvent.at >= since)
    if until:
        q = q.where(AuditEvent.at < until)
    if before_id:
        q = q.where(AuditEvent.id < before_id)
    return list(db.exec(q.order_by(AuditEvent.id.desc()).limit(limit)))
