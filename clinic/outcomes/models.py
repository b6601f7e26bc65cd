"""Scale responses, stored item by item; totals are derived on write, never typed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import SCALE_SOURCES, SCALES


def _item_range_check() -> sa.CheckConstraint:
    # One CHECK per scale: the item number and value must be within that scale's form.
    parts = [
        f"(scale = '{code}' AND item_number BETWEEN 1 AND {n} AND value BETWEEN {lo} AND {hi})"
        for code, (_label, n, lo, hi) in SCALES.items()
    ]
    return sa.CheckConstraint(" OR ".join(parts), name="item_in_range")


class ScaleResponse(SQLModel, table=True):
    __tablename__ = "scale_response"
    __table_args__ = (
        one_of("scale", SCALES),
        one_of("source", SCALE_SOURCES),
        sa.CheckConstraint("total >= 0", name="total_nonneg"),
        sa.CheckConstraint("amends_id IS NULL OR amendment_reason IS NOT NULL", name="amendment_has_reason"),
        sa.Index("ix_scale_response_session_at", "session_id", "measured_at"),
        sa.Index("ix_scale_response_patient_scale_at", "patient_id", "scale", "measured_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    course_id: int | None = Field(default=None, foreign_key="treatment_course.id")
    session_id: int | None = Field(default=None, foreign_key="treatment_session.id")
    scale: str = Field(max_length=10)
    measured_at: datetime = Field(sa_column=utc_column())
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    recorded_by_id: int | None = Field(default=None, foreign_key="staff_user.id")  # none for self-report
    source: str = Field(default="staff", max_length=12)
    total: int
    client_key: str = Field(max_length=64, unique=True)
    amends_id: int | None = Field(default=None, foreign_key="scale_response.id")
    amendment_reason: str | None = Field(default=None, max_length=500)


class ScaleItemAnswer(SQLModel, table=True):
    __tablename__ = "scale_item_answer"
    __table_args__ = (_item_range_check(),)

    response_id: int = Field(foreign_key="scale_response.id", primary_key=True)
    item_number: int = Field(primary_key=True)
    scale: str = Field(max_length=10)  # repeated from the response so the CHECK can see it
    value: int
