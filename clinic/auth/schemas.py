"""Input models for staff administration (used by both the pages and the JSON API)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from clinic.validation import choice
from clinic.vocab import CREDENTIAL_KINDS, ROLES


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


def _roles(value: list[str]) -> list[str]:
    unknown = [r for r in value if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}")
    if not value:
        raise ValueError("choose at least one role")
    return sorted(set(value))


class StaffCreate(_Input):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9._-]+$")
    full_name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    password: str = Field(min_length=8, max_length=200)
    roles: list[str]
    site_ids: list[int] = []

    _r = field_validator("roles")(_roles)

    @field_validator("username", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v


class StaffUpdate(_Input):
    full_name: str = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    roles: list[str]
    site_ids: list[int] = []

    _r = field_validator("roles")(_roles)


class PasswordReset(_Input):
    password: str = Field(min_length=8, max_length=200)


class CredentialCreate(_Input):
    kind: choice(CREDENTIAL_KINDS)
    number: str = Field(min_length=1, max_length=80)
    issued_by: str | None = Field(default=None, max_length=200)
    expires_on: date


class TokenCreate(_Input):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
