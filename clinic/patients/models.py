"""Patients and what is known about them before treatment: weight, flags, consent, eligibility."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import CONSENT_KINDS, ELIGIBILITY_DECISIONS, PATIENT_FLAG_KINDS, SEXES, WAITLIST_STATUSES


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (
        one_of("sex", SEXES),
        sa.Index("ix_patient_name", "family_name", "given_name"),
        sa.Index("ix_patient_dob", "date_of_birth"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mrn: str = Field(max_length=32, unique=True)  # medical record number
    given_name: str = Field(max_length=100)
    family_name: str = Field(max_length=100)
    preferred_name: str | None = Field(default=None, max_length=100)
    date_of_birth: date
    sex: str = Field(max_length=10)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=500)
    escort_name: str | None = Field(default=None, max_length=200)
    escort_phone: str | None = Field(default=None, max_length=40)
    allergies: str | None = Field(default=None, max_length=1000)  # free text; "NKDA" when none known
    home_site_id: int | None = Field(default=None, foreign_key="site.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    row_version: int = Field(default=1)

    @property
    def display_name(self) -> str:
        return f"{self.family_name}, {self.given_name}"


class WeightMeasurement(SQLModel, table=True):
    __tablename__ = "weight_measurement"
    __table_args__ = (
        sa.CheckConstraint("weight_kg >= 25 AND weight_kg <= 350", name="weight_plausible"),
        sa.Index("ix_weight_measurement_patient_at", "patient_id", "measured_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    session_id: int | None = Field(default=None, foreign_key="treatment_session.id")
    weight_kg: float
    measured_at: datetime = Field(sa_column=utc_column())
    recorded_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    client_key: str | None = Field(default=None, max_length=64, unique=True)


class PatientFlag(SQLModel, table=True):
    """A caution shown wherever the patient appears (e.g. substance-use history)."""

    __tablename__ = "patient_flag"
    __table_args__ = (one_of("kind", PATIENT_FLAG_KINDS),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: str = Field(max_length=24)
    note: str | None = Field(default=None, max_length=1000)
    set_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    set_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    cleared_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    cleared_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    clear_reason: str | None = Field(default=None, max_length=500)


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    __table_args__ = (
        one_of("kind", CONSENT_KINDS),
        sa.CheckConstraint("expires_at IS NULL OR expires_at > signed_at", name="expires_after_signed"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: str = Field(max_length=20)
    text_version: str = Field(max_length=40)
    signed_at: datetime = Field(sa_column=utc_column())
    witnessed_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoke_reason: str | None = Field(default=None, max_length=500)
    recorded_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class EligibilityEvaluation(SQLModel, table=True):
    """A prescriber's evaluation before a first course."""

    __tablename__ = "eligibility_evaluation"
    __table_args__ = (
        one_of("decision", ELIGIBILITY_DECISIONS),
        sa.CheckConstraint(
            "substance_screen_score IS NULL OR (substance_screen_score >= 0 AND substance_screen_score <= 10)",
            name="screen_score_range",
        ),
        sa.CheckConstraint(
            "baseline_systolic IS NULL OR (baseline_systolic BETWEEN 50 AND 300)", name="systolic_plausible"
        ),
        sa.CheckConstraint(
            "baseline_diastolic IS NULL OR (baseline_diastolic BETWEEN 20 AND 200)", name="diastolic_plausible"
        ),
        sa.Index("ix_eligibility_patient_at", "patient_id", "evaluated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    prescriber_id: int = Field(foreign_key="staff_user.id")
    evaluated_at: datetime = Field(sa_column=utc_column())
    diagnosis: str = Field(max_length=500)
    prior_treatments: str | None = Field(default=None, sa_type=sa.Text)
    psychosis_history: bool = False
    substance_use_history: str | None = Field(default=None, sa_type=sa.Text)
    substance_screen_score: int | None = None  # DAST-10, 0–10
    medical_history: str | None = Field(default=None, sa_type=sa.Text)
    contraindications_json: str = Field(sa_type=sa.Text, default="[]")
    current_medications: str | None = Field(default=None, sa_type=sa.Text)
    baseline_systolic: int | None = None
    baseline_diastolic: int | None = None
    decision: str = Field(max_length=16)
    reasons: str = Field(sa_type=sa.Text)
    valid_until: date


class WaitlistEntry(SQLModel, table=True):
    __tablename__ = "waitlist_entry"
    __table_args__ = (
        one_of("status", WAITLIST_STATUSES),
        sa.CheckConstraint("priority BETWEEN 1 AND 3", name="priority_range"),
        sa.Index("ix_waitlist_site_status", "site_id", "status", "referred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    site_id: int = Field(foreign_key="site.id")
    referred_at: datetime = Field(sa_column=utc_column())
    referred_by: str | None = Field(default=None, max_length=200)  # the referring clinician
    priority: int = 2  # 1 urgent, 2 routine, 3 flexible
    status: str = Field(default="waiting", max_length=12)
    note: str | None = Field(default=None, max_length=1000)
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
