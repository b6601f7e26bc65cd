"""Input models for patients (shared by the pages and the JSON API)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from clinic.validation import choice
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
    sex: choice(SEXES)
    phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+()\-. ]{5,40}$")
    email: EmailStr | None = None
    address: str | None = Field(default=None, max_length=500)
    escort_name: str | None = Field(default=None, max_length=200)
    escort_phone: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+()\-. ]{5,40}$")
    allergies: str | None = Field(default=None, max_length=1000)
    home_site_id: int | None = None
    weight_kg: float | None = Field(default=None, ge=25, le=350, description="Weight today, kg")

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
    kind: choice(PATIENT_FLAG_KINDS)
    note: str | None = Field(default=None, max_length=1000)


class FlagClear(_Input):
    reason: str = Field(min_length=3, max_length=500)


class ConsentIn(_Input):
    kind: choice(CONSENT_KINDS)
    text_version: str = Field(min_length=1, max_length=40)
    signed_on: date
    expires_on: date | None = None


class ConsentRevoke(_Input):
    reason: str = Field(min_length=3, max_length=500, description="Why the consent no longer holds")


class PatientQuery(_Input):
    q: str | None = Field(default=None, max_length=100, description="Name, MRN or date of birth (YYYY-MM-DD)")
    page: int = Field(default=1, ge=1, le=10_000)
    per_page: int = Field(default=25, ge=1, le=100)
