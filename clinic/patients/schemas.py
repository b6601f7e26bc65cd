"""Input models for patients (shared by the pages and the JSON API)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from clinic.vocab import CONSENT_KINDS, PATIENT_FLAG_KINDS, SEXES


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


class PatientIn(_Input):
    """A patient's registration details."""

    mrn: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9-]+$",
                            description="Medical record number; left empty, one is assigned")
    given_name: str = Field(min_length=1, max_length=100)
    family_name: str = Field(min_length=1, max_length=100)
    preferred_name: str | None = Field(default=None, max_length=100)
    date_of_birth: date
    sex: str
    phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+()\-. ]{5,40}$")
    email: EmailStr | None = None
    address: str | None = Field(default=None, max_length=500)
    escort_name: str | None = Field(default=None, max_length=200)
    escort_phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+()\-. ]{5,40}$")
    allergies: str | None = Field(default=None, max_length=1000)
    home_site_id: int | None = None
    weight_kg: float | None = Field(default=None, ge=25, le=350, description="Weight today, kg")

    @field_validator("sex")
    @classmethod
    def _sex(cls, v: str) -> str:
        if v not in SEXES:
            raise ValueError(f"choose one of: {', '.join(SEXES)}")
        return v

    @field_validator("date_of_birth")
    @classmethod
    def _dob(cls, v: date) -> date:
        if v.year < 1900:
            raise ValueError("date of birth is before 1900")
        if v > date.today():
            raise ValueError("date of birth is in the future")
        return v


class PatientUpdate(PatientIn):
    row_version: int = Field(description="The version you edited; a newer save by someone else is refused")
    weight_kg: None = None


class FlagIn(_Input):
    kind: str
    note: str | None = Field(default=None, max_length=1000)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in PATIENT_FLAG_KINDS:
            raise ValueError(f"choose one of: {', '.join(PATIENT_FLAG_KINDS)}")
        return v


class FlagClear(_Input):
    reason: str = Field(min_length=3, max_length=500)


class ConsentIn(_Input):
    kind: str
    text_version: str = Field(min_length=1, max_length=40)
    signed_on: date
    expires_on: date | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in CONSENT_KINDS:
            raise ValueError(f"choose one of: {', '.join(CONSENT_KINDS)}")
        return v


class ConsentRevoke(_Input):
    reason: str = Field(min_length=3, max_length=500, description="Why the consent no longer holds")


class PatientQuery(_Input):
    q: str | None = Field(default=None, max_length=100, description="Name, MRN or date of birth (YYYY-MM-DD)")
    page: int = Field(default=1, ge=1, le=10_000)
    per_page: int = Field(default=25, ge=1, le=100)
