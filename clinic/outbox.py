"""Outgoing messages (reminders, notifications) and the watermarks of the sweeper jobs.

A message is written to the outbox in the same transaction as whatever caused it; a sender delivers
it later. `dedupe_key` is unique, so a sweep that runs twice writes one message.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import OUTBOX_STATUSES


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        one_of("status", OUTBOX_STATUSES),
        one_of("channel", ("email", "sms")),
        sa.Index("ix_outbox_pending_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="email", max_length=8)
    recipient: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    session_id: int | None = Field(default=None, foreign_key="treatment_session.id")
    due_at: datetime = Field(sa_column=utc_column())
    status: str = Field(default="pending", max_length=8)
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    dedupe_key: str = Field(max_length=120, unique=True)


class JobWatermark(SQLModel, table=True):
    """How far a sweeper job has processed, so that a restart catches up rather than starts over."""

    __tablename__ = "job_watermark"

    job_name: str = Field(primary_key=True, max_length=60)
    processed_until: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
