"""Places, rota, protocols, treatment courses and the sessions booked into chairs."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import (
    COURSE_KINDS,
    COURSE_STATUSES,
    DOSE_RULES,
    INACTIVE_SESSION_STATUSES,
    ROUTES,
    SESSION_STATUSES,
    SHIFT_EXCEPTION_KINDS,
)

_ACTIVE = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in INACTIVE_SESSION_STATUSES))


class Site(SQLModel, table=True):
    """A clinic location. Hours and ratios are synced from config.toml (`[[sites]]`)."""

    __tablename__ = "site"
    __table_args__ = (
        sa.CheckConstraint("nurse_ratio_dosing >= 1", name="ratio_dosing_positive"),
        sa.CheckConstraint("nurse_ratio_recovery >= 1", name="ratio_recovery_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=8, unique=True)
    name: str = Field(max_length=120)
    time_zone: str = Field(max_length=64)
    hours_json: str = Field(sa_type=sa.Text, default="{}")  # {"mon": [["08:00", "18:00"]], ...}
    closed_days_json: str = Field(sa_type=sa.Text, default="[]")  # ["2026-12-25", ...]
    nurse_ratio_dosing: int = 2
    nurse_ratio_recovery: int = 4
    active: bool = True


class Chair(SQLModel, table=True):
    __tablename__ = "chair"
    __table_args__ = (sa.UniqueConstraint("site_id", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id")
    label: str = Field(max_length=20)
    active: bool = True


class ShiftPattern(SQLModel, table=True):
    """A weekly rota line: this person works this weekday's hours at this site in this role."""

    __tablename__ = "shift_pattern"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        sa.CheckConstraint("start_time < end_time", name="start_before_end"),
        one_of("role", ("nurse", "prescriber")),
    )

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    role: str = Field(max_length=20)
    weekday: int  # 0 = Monday
    start_time: str = Field(max_length=5)  # "HH:MM" in the site's zone
    end_time: str = Field(max_length=5)
    valid_from: date
    valid_until: date | None = None


class ShiftException(SQLModel, table=True):
    """Leave, a swap or an extra shift that overrides the weekly pattern."""

    __tablename__ = "shift_exception"
    __table_args__ = (
        one_of("kind", SHIFT_EXCEPTION_KINDS),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    site_id: int = Field(foreign_key="site.id")
    kind: str = Field(max_length=10)
    role: str | None = Field(default=None, max_length=20)
    starts_at: datetime = Field(sa_column=utc_column())
    ends_at: datetime = Field(sa_column=utc_column())
    swapped_with_id: int | None = Field(default=None, foreign_key="staff_user.id")
    note: str | None = Field(default=None, max_length=500)
    created_by_id: int = Field(foreign_key="staff_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class Shift(SQLModel, table=True):
    """A concrete shift (generated from patterns and exceptions): who is on site, when, as what."""

    __tablename__ = "shift"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        one_of("role", ("nurse", "prescriber")),
        sa.Index("ix_shift_site_start", "site_id", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    site_id: int = Field(foreign_key="site.id")
    role: str = Field(max_length=20)
    starts_at: datetime = Field(sa_column=utc_column())
    ends_at: datetime = Field(sa_column=utc_column())
    source: str = Field(default="pattern", max_length=10)  # pattern | extra | swap | manual


class Protocol(SQLModel, table=True):
    """A treatment protocol, versioned: a course keeps the version it was ordered with."""

    __tablename__ = "protocol"
    __table_args__ = (
        sa.UniqueConstraint("code", "version"),
        one_of("route", ROUTES),
        one_of("dose_rule", DOSE_RULES),
        sa.CheckConstraint("dose_min <= dose_default AND dose_default <= dose_max", name="dose_range"),
        sa.CheckConstraint("dose_min > 0", name="dose_positive"),
        sa.CheckConstraint("infusion_minutes >= 0 AND infusion_minutes <= 240", name="infusion_minutes_range"),
        sa.CheckConstraint("pre_minutes >= 0 AND post_minutes >= 0", name="chair_minutes_nonneg"),
        sa.CheckConstraint("induction_sessions >= 1", name="induction_sessions_positive"),
        sa.CheckConstraint(
            "min_days_between >= 0 AND (max_days_between IS NULL OR max_days_between >= min_days_between)",
            name="spacing_range",
        ),
        sa.CheckConstraint("max_per_week >= 1 AND max_per_week <= 7", name="per_week_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40)
    version: int = 1
    name: str = Field(max_length=120)
    route: str = Field(max_length=12)
    dose_rule: str = Field(max_length=12)
    dose_default: float  # mg/kg or mg, by dose_rule
    dose_min: float
    dose_max: float
    infusion_minutes: int = 40
    pre_minutes: int = 15  # chair time before dosing (check-in, pre-assessment)
    post_minutes: int = 45  # chair time after dosing ends (recovery, discharge)
    min_observation_minutes: int = 30  # after dosing ends, before discharge
    induction_sessions: int = 6
    min_days_between: int = 1
    max_days_between: int | None = 7
    max_per_week: int = 3
    booster_interval_days: int | None = None
    schedule_json: str = Field(sa_type=sa.Text, default="{}")  # phases, e.g. esketamine week rules
    cadence_json: str = Field(sa_type=sa.Text, default="{}")  # vitals/scores cadence by phase
    scales_json: str = Field(sa_type=sa.Text, default="{}")  # which scales, when
    thresholds_json: str = Field(sa_type=sa.Text, default="{}")  # overrides of config thresholds
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by_id: int | None = Field(default=None, foreign_key="staff_user.id")

    @property
    def chair_minutes(self) -> int:
        return self.pre_minutes + self.infusion_minutes + self.post_minutes


class TreatmentCourse(SQLModel, table=True):
    """A series of sessions for one patient under one protocol version."""

    __tablename__ = "treatment_course"
    __table_args__ = (
        one_of("kind", COURSE_KINDS),
        one_of("status", COURSE_STATUSES),
        sa.Index("ix_treatment_course_patient", "patient_id", "ordered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    protocol_id: int = Field(foreign_key="protocol.id")
    prescriber_id: int = Field(foreign_key="staff_user.id")
    site_id: int = Field(foreign_key="site.id")
    kind: str = Field(default="induction", max_length=12)
    status: str = Field(default="planned", max_length=12)
    planned_sessions: int = Field(default=1, ge=1)
    ordered_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    earliest_start: date
    preferences_json: str = Field(sa_type=sa.Text, default="{}")  # weekdays, time window
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    end_reason: str | None = Field(default=None, max_length=500)


class TreatmentSession(SQLModel, table=True):
    """One booking of a chair, and the clinical encounter that happens in it.

    No two active sessions overlap on one chair or for one patient: PostgreSQL enforces it with
    exclusion constraints (see the migration); on SQLite the booking service checks and inserts inside
    one BEGIN IMMEDIATE transaction.
    """

    __tablename__ = "treatment_session"
    __table_args__ = (
        one_of("status", SESSION_STATUSES),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("number_in_course >= 1", name="number_positive"),
        sa.Index("ix_treatment_session_site_start", "site_id", "starts_at"),
        sa.Index("ix_treatment_session_patient_start", "patient_id", "starts_at"),
        sa.Index("ix_treatment_session_chair_start", "chair_id", "starts_at"),
        sa.Index(
            "uq_treatment_session_course_number_active",
            "course_id",
            "number_in_course",
            unique=True,
            sqlite_where=sa.text(_ACTIVE),
            postgresql_where=sa.text(_ACTIVE),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    course_id: int = Field(foreign_key="treatment_course.id")
    patient_id: int = Field(foreign_key="patient.id")
    site_id: int = Field(foreign_key="site.id")
    chair_id: int = Field(foreign_key="chair.id")
    number_in_course: int
    starts_at: datetime = Field(sa_column=utc_column())
    ends_at: datetime = Field(sa_column=utc_column())
    status: str = Field(default="booked", max_length=12)
    nurse_id: int | None = Field(default=None, foreign_key="staff_user.id")
    prescriber_id: int | None = Field(default=None, foreign_key="staff_user.id")
    checked_in_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    dosing_started_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    dosing_ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    discharged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    discharge_override_reason: str | None = Field(default=None, max_length=1000)
    cancelled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    cancel_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    row_version: int = Field(default=1)
