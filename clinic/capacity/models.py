"""Saved what-if scenarios for capacity planning."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import utc_column, utcnow


class CapacityScenario(SQLModel, table=True):
    __tablename__ = "capacity_scenario"
    __table_args__ = (sa.UniqueConstraint("author_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    author_id: int = Field(foreign_key="staff_user.id")
    site_id: int | None = Field(default=None, foreign_key="site.id")
    parameters_json: str = Field(sa_type=sa.Text)
    results_json: str = Field(sa_type=sa.Text, default="{}")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
