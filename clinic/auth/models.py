"""Staff accounts: users, their roles and sites, credentials, API tokens, kept drafts."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from clinic.db import one_of, utc_column, utcnow
from clinic.vocab import CREDENTIAL_KINDS, ROLES


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"
    __table_args__ = (sa.CheckConstraint("length(username) >= 2", name="username_length"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=254)
    password_hash: str = Field(max_length=255)
    pin_hash: str | None = Field(default=None, max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    password_changed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    deactivated_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class StaffRole(SQLModel, table=True):
    """One role held by one staff user; a person may hold several."""

    __tablename__ = "staff_role"
    __table_args__ = (one_of("role", ROLES),)

    staff_user_id: int = Field(foreign_key="staff_user.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(max_length=20, primary_key=True)


class StaffSite(SQLModel, table=True):
    """A site a staff user works at."""

    __tablename__ = "staff_site"

    staff_user_id: int = Field(foreign_key="staff_user.id", primary_key=True, ondelete="CASCADE")
    site_id: int = Field(foreign_key="site.id", primary_key=True, index=True)


class Credential(SQLModel, table=True):
    """A licence or certification with an expiry date (dosing needs current ones)."""

    __tablename__ = "credential"
    __table_args__ = (one_of("kind", CREDENTIAL_KINDS),)

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    kind: str = Field(max_length=40)
    number: str = Field(max_length=80)
    issued_by: str | None = Field(default=None, max_length=200)
    expires_on: date
    verified_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    verified_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    retired_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ApiToken(SQLModel, table=True):
    """A per-user bearer token for integrations; only its hash is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=12)
    token_hash: str = Field(max_length=128, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    created_by_id: int = Field(foreign_key="staff_user.id")
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    revoked_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class FormDraft(SQLModel, table=True):
    """What someone was submitting when their idle session ran out, kept until they sign in again."""

    __tablename__ = "form_draft"

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    staff_user_id: int = Field(foreign_key="staff_user.id", index=True)
    path: str = Field(max_length=500)
    fields_json: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
