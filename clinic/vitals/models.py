"""What is recorded during a session. Entries are append-only: a correction is a new row that
`amends` the original and says why; the original stays."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import (
    ADVERSE_EVENT_KINDS,
    AE_OUTCOMES,
    ALERT_ACTIONS,
    ALERT_PRIORITIES,
    CHECKLIST_ITEMS,
    DOSE_EVENT_KINDS,
    ROUTES,
    SEVERITIES,
    VITALS_PHASES,
)


class ChecklistEntry(SQLModel, table=True):
    __tablename__ = "checklist_entry"
    __table_args__ = (one_of("item", CHECKLIST_ITEMS), sa.Index("ix_checklist_session", "session_id", "item"))

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="treatment_session.id")
    item: str = Field(max_length=32)
    answer: str = Field(max_length=1000)  # "yes", a value, or a short structured note
    decided_by_id: int | None = Field(default=None, foreign_key="staff_user.id")  # e.g. the prescriber
    recorded_by_id: int = Field(foreign_key="staff_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    client_key: str = Field(max_length=64, unique=True)
    amends_id: int | None = Field(default=None, foreign_key="checklist_entry.id")
    amendment_reason: str | None = Field(default=None, max_length=500)


class DoseAdministration(SQLModel, table=True):
    __tablename__ = "dose_administration"
    __table_args__ = (
        one_of("route", ROUTES),
        sa.CheckConstraint("dose_mg > 0 AND dose_mg <= 1000", name="dose_plausible"),
        sa.CheckConstraint("weight_kg IS NULL OR (weight_kg >= 25 AND weight_kg <= 350)", name="weight_plausible"),
        sa.CheckConstraint("mg_per_kg IS NULL OR (mg_per_kg > 0 AND mg_per_kg <= 2)", name="mg_per_kg_plausible"),
        sa.CheckConstraint("stopped_at IS NULL OR stopped_at >= started_at", name="stop_after_start"),
        sa.CheckConstraint(
            "amends_id IS NULL OR amendment_reason IS NOT NULL", name="amendment_has_reason"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="treatment_session.id", index=True)
    route: str = Field(max_length=12)
    weight_kg: float | None = None
    mg_per_kg: float | None = None
    dose_mg: float
    concentration_mg_per_ml: float | None = None
    rate_ml_per_h: float | None = None
    lot_number: str = Field(max_length=60)
    started_at: datetime = Field(sa_column=utc_column())
    stopped_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    administered_by_id: int = Field(foreign_key="staff_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    client_key: str = Field(max_length=64, unique=True)
    amends_id: int | None = Field(default=None, foreign_key="dose_administration.id")
    amendment_reason: str | None = Field(default=None, max_length=500)


class DoseEvent(SQLModel, table=True):
    """Pause, resume, stop of an infusion, or one nasal device given."""

    __tablename__ = "dose_event"
    __table_args__ = (one_of("kind", DOSE_EVENT_KINDS),)

    id: int | None = Field(default=None, primary_key=True)
    dose_id: int = Field(foreign_key="dose_administration.id", index=True)
    kind: str = Field(max_length=10)
    at: datetime = Field(sa_column=utc_column())
    reason: str | None = Field(default=None, max_length=500)
    device_number: int | None = None
    recorded_by_id: int = Field(foreign_key="staff_user.id")
    client_key: str = Field(max_length=64, unique=True)


class VitalsReading(SQLModel, table=True):
    """One set of vitals. Each value may be missing, but any value given is physiologically plausible."""

    __tablename__ = "vitals_reading"
    __table_args__ = (
        one_of("phase", VITALS_PHASES),
        sa.CheckConstraint("systolic IS NULL OR systolic BETWEEN 50 AND 300", name="systolic_plausible"),
        sa.CheckConstraint("diastolic IS NULL OR diastolic BETWEEN 20 AND 200", name="diastolic_plausible"),
        sa.CheckConstraint(
            "systolic IS NULL OR diastolic IS NULL OR diastolic < systolic", name="diastolic_below_systolic"
        ),
        sa.CheckConstraint("heart_rate IS NULL OR heart_rate BETWEEN 20 AND 250", name="heart_rate_plausible"),
        sa.CheckConstraint("spo2 IS NULL OR spo2 BETWEEN 50 AND 100", name="spo2_plausible"),
        sa.CheckConstraint(
            "respiratory_rate IS NULL OR respiratory_rate BETWEEN 4 AND 60", name="respiratory_rate_plausible"
        ),
        sa.CheckConstraint(
            "temperature_c IS NULL OR temperature_c BETWEEN 30 AND 43", name="temperature_plausible"
        ),
        sa.CheckConstraint("amends_id IS NULL OR amendment_reason IS NOT NULL", name="amendment_has_reason"),
        sa.Index("ix_vitals_reading_session_at", "session_id", "measured_at"),
        sa.Index("ix_vitals_reading_patient_at", "patient_id", "measured_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="treatment_session.id")
    patient_id: int = Field(foreign_key="patient.id")
    phase: str = Field(max_length=10)
    measured_at: datetime = Field(sa_column=utc_column())
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    recorded_by_id: int = Field(foreign_key="staff_user.id")
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    spo2: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    client_key: str = Field(max_length=64, unique=True)
    amends_id: int | None = Field(default=None, foreign_key="vitals_reading.id")
    amendment_reason: str | None = Field(default=None, max_length=500)


class AdverseEvent(SQLModel, table=True):
    __tablename__ = "adverse_event"
    __table_args__ = (
        one_of("kind", ADVERSE_EVENT_KINDS),
        one_of("severity", SEVERITIES),
        one_of("outcome", AE_OUTCOMES),
        sa.CheckConstraint("resolved_at IS NULL OR resolved_at >= onset_at", name="resolved_after_onset"),
        sa.CheckConstraint("kind <> 'other' OR description IS NOT NULL", name="other_is_described"),
        sa.CheckConstraint("amends_id IS NULL OR amendment_reason IS NOT NULL", name="amendment_has_reason"),
        sa.Index("ix_adverse_event_patient_onset", "patient_id", "onset_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="treatment_session.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    kind: str = Field(max_length=24)
    description: str | None = Field(default=None, max_length=2000)
    severity: str = Field(max_length=16)
    onset_at: datetime = Field(sa_column=utc_column())
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    action_taken: str | None = Field(default=None, max_length=1000)
    outcome: str = Field(default="ongoing", max_length=24)
    serious: bool = False
    reportable: bool = False
    seriousness_json: str | None = Field(default=None, sa_type=sa.Text)  # SERIOUSNESS_CRITERIA codes ticked
    reported_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    reported_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    recorded_by_id: int = Field(foreign_key="staff_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    client_key: str = Field(max_length=64, unique=True)
    amends_id: int | None = Field(default=None, foreign_key="adverse_event.id")
    amendment_reason: str | None = Field(default=None, max_length=500)


class Alert(SQLModel, table=True):
    """A clinical alert kept on the server until someone acknowledges it with an action.

    `dedupe_key` (one alert per cause and rule) makes a repeated sweep raise nothing new.
    """

    __tablename__ = "alert"
    __table_args__ = (
        one_of("priority", ALERT_PRIORITIES),
        one_of("action", ALERT_ACTIONS, nullable=True),
        sa.CheckConstraint(
            "(acknowledged_at IS NULL) = (acknowledged_by_id IS NULL)", name="ack_has_who_and_when"
        ),
        sa.CheckConstraint("acknowledged_at IS NULL OR action IS NOT NULL", name="ack_has_action"),
        sa.Index("ix_alert_site_open", "site_id", "acknowledged_at"),
        sa.Index("ix_alert_patient_raised", "patient_id", "raised_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id")
    session_id: int | None = Field(default=None, foreign_key="treatment_session.id", index=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    recipient_id: int | None = Field(default=None, foreign_key="staff_user.id")  # e.g. the prescriber
    kind: str = Field(max_length=40)  # rule code, e.g. "bp_sustained_high", "vitals_overdue", "phq9_item9"
    priority: str = Field(max_length=8)
    cause_table: str | None = Field(default=None, max_length=40)
    cause_id: int | None = None
    message: str = Field(max_length=500)
    raised_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    acknowledged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acknowledged_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    action: str | None = Field(default=None, max_length=24)
    action_note: str | None = Field(default=None, max_length=1000)
    dedupe_key: str = Field(max_length=120, unique=True)
