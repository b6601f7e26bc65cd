"""Staff, API-token and audit endpoints of the JSON API: the same services as the administrator's pages.

No response model has a field for a password, PIN or token hash, so none can leak by accident.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Literal

from flask_openapi3 import Tag
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from clinic import audit
from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth import service as auth_service
from clinic.auth.models import StaffUser
from clinic.auth.permissions import requires
from clinic.auth.schemas import CredentialCreate, StaffCreate, StaffUpdate, TokenCreate
from clinic.db import get_db
from clinic.web import actor, clock, settings

staff_tag = Tag(name="staff", description="Staff accounts, credentials and API tokens (administrators)")
audit_tag = Tag(name="audit", description="The append-only audit trail (administrators)")

AuditAction = Literal[audit.ACTIONS]  # type: ignore[valid-type]  # the tuple spreads into the Literal


# --- path parameters and queries ----------------------------------------------------------------


class StaffPath(BaseModel):
    user_id: int


class TokenPath(BaseModel):
    token_id: int


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor_id: int | None = Field(default=None, description="Staff user who acted")
    patient_id: int | None = None
    action: AuditAction | None = None
    entity: str | None = Field(default=None, max_length=40, description="e.g. patient, staff_user, api_token")
    since: AwareDatetime | None = Field(default=None, description="Events at or after this instant")
    until: AwareDatetime | None = Field(default=None, description="Events before this instant")
    before_id: int | None = Field(default=None, ge=1, description="`next_before_id` of the previous page")
    limit: int = Field(default=50, ge=1, le=200)


# --- responses ----------------------------------------------------------------------------------


class StaffSummary(Out):
    id: int
    username: str
    full_name: str
    active: bool
    roles: list[str]
    site_ids: list[int]


class StaffListOut(BaseModel):
    items: list[StaffSummary]


class StaffOut(StaffSummary):
    email: str | None
    created_at: UtcDateTime
    password_changed_at: UtcDateTime
    deactivated_at: UtcDateTime | None


class CredentialOut(Out):
    id: int
    staff_user_id: int
    kind: str
    number: str
    issued_by: str | None
    expires_on: date
    verified_by_id: int | None
    verified_at: UtcDateTime | None
    recorded_at: UtcDateTime


class CredentialListOut(BaseModel):
    items: list[CredentialOut]


class TokenOut(Out):
    id: int
    staff_user_id: int
    name: str
    prefix: str = Field(description="The first characters of the secret, to recognise it")
    created_at: UtcDateTime
    created_by_id: int
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    last_used_at: UtcDateTime | None


class TokenListOut(BaseModel):
    items: list[TokenOut]


class TokenIssuedOut(TokenOut):
    secret: str = Field(description="Shown this once and never stored: send it as `Authorization: Bearer …`")


class AuditEventOut(Out):
    id: int
    at: UtcDateTime
    actor_id: int | None
    actor_label: str
    action: str
    entity: str
    entity_id: str | None
    patient_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None
    request_id: str | None
    ip: str | None


class AuditPageOut(BaseModel):
    items: list[AuditEventOut] = Field(description="Newest first")
    next_before_id: int | None = Field(description="Pass as `before_id` for the next page; null at the end")


def _staff_out(user: StaffUser, status: int = 200) -> tuple[dict, int]:
    view = auth_service.staff_view(get_db(), user)
    return dump(StaffOut, {
        "id": user.id, "username": user.username, "full_name": user.full_name, "email": user.email,
        "active": user.active, "roles": sorted(view.roles), "site_ids": sorted(view.site_ids),
        "created_at": user.created_at, "password_changed_at": user.password_changed_at,
        "deactivated_at": user.deactivated_at,
    }, status)


# --- staff --------------------------------------------------------------------------------------


@api.get("/staff", tags=[staff_tag], responses={200: StaffListOut})
@requires("staff.view")
def list_staff():
    """Every staff account, active or not, by name."""
    items = [{"id": s.id, "username": s.username, "full_name": s.full_name, "active": s.active,
              "roles": sorted(s.roles), "site_ids": sorted(s.site_ids)} for s in auth_service.list_staff(get_db())]
    return dump(StaffListOut, {"items": items})


@api.post("/staff", tags=[staff_tag], responses={201: StaffOut, 409: ErrorOut})
@requires("staff.manage")
def create_staff(body: StaffCreate):
    """Create a staff account (the password must meet the configured minimum length)."""
    user = auth_service.create_staff(get_db(), actor(), body,
                                     password_min_length=settings().security.password_min_length)
    return _staff_out(user, 201)


@api.get("/staff/<int:user_id>", tags=[staff_tag], responses={200: StaffOut, 404: ErrorOut})
@requires("staff.view")
def get_staff(path: StaffPath):
    """One staff account with roles and sites."""
    return _staff_out(auth_service.get_staff(get_db(), path.user_id))


@api.put("/staff/<int:user_id>", tags=[staff_tag], responses={200: StaffOut, 404: ErrorOut})
@requires("staff.manage")
def update_staff(path: StaffPath, body: StaffUpdate):
    """Change name, email, roles and sites (you cannot remove your own administrator role)."""
    return _staff_out(auth_service.update_staff(get_db(), actor(), path.user_id, body))


@api.post("/staff/<int:user_id>/deactivate", tags=[staff_tag], responses={200: StaffOut, 404: ErrorOut})
@requires("staff.manage")
def deactivate_staff(path: StaffPath):
    """Deactivate an account; its API tokens are revoked with it."""
    return _staff_out(auth_service.set_active(get_db(), actor(), path.user_id, False, now=clock()))


@api.post("/staff/<int:user_id>/reactivate", tags=[staff_tag], responses={200: StaffOut, 404: ErrorOut})
@requires("staff.manage")
def reactivate_staff(path: StaffPath):
    """Reactivate an account (revoked tokens stay revoked: issue new ones)."""
    return _staff_out(auth_service.set_active(get_db(), actor(), path.user_id, True, now=clock()))


@api.get("/staff/<int:user_id>/credentials", tags=[staff_tag],
         responses={200: CredentialListOut, 404: ErrorOut})
@requires("staff.view")
def list_credentials(path: StaffPath):
    """Current (not retired) licences and certifications, soonest expiry first."""
    db = get_db()
    auth_service.get_staff(db, path.user_id)  # 404 for an unknown user rather than an empty list
    return dump(CredentialListOut, {"items": auth_service.credentials_of(db, path.user_id)})


@api.post("/staff/<int:user_id>/credentials", tags=[staff_tag],
          responses={201: CredentialOut, 404: ErrorOut})
@requires("staff.manage")
def add_credential(path: StaffPath, body: CredentialCreate):
    """Record a verified licence or certification."""
    return dump(CredentialOut, auth_service.add_credential(get_db(), actor(), path.user_id, body, now=clock()),
                201)


# --- API tokens ---------------------------------------------------------------------------------


@api.get("/staff/<int:user_id>/tokens", tags=[staff_tag], responses={200: TokenListOut, 404: ErrorOut})
@requires("tokens.manage")
def list_tokens(path: StaffPath):
    """A staff user's API tokens, newest first (secrets are never shown again)."""
    db = get_db()
    auth_service.get_staff(db, path.user_id)
    return dump(TokenListOut, {"items": auth_service.tokens_of(db, path.user_id)})


@api.post("/staff/<int:user_id>/tokens", tags=[staff_tag], responses={201: TokenIssuedOut, 404: ErrorOut})
@requires("tokens.manage")
def issue_token(path: StaffPath, body: TokenCreate):
    """Issue an API token for an active staff user. The secret is in this answer only."""
    token, secret = auth_service.issue_token(get_db(), actor(), path.user_id, body, now=clock())
    return dump(TokenIssuedOut, TokenOut.model_validate(token).model_dump() | {"secret": secret}, 201)


@api.post("/tokens/<int:token_id>/revoke", tags=[staff_tag], responses={200: TokenOut, 404: ErrorOut})
@requires("tokens.manage")
def revoke_token(path: TokenPath):
    """Revoke a token; it stops working at once. Revoking twice is harmless."""
    return dump(TokenOut, auth_service.revoke_token(get_db(), actor(), path.token_id, now=clock()))


# --- audit --------------------------------------------------------------------------------------


@api.get("/audit", tags=[audit_tag], responses={200: AuditPageOut})
@requires("audit.view")
def audit_events(query: AuditQuery):
    """Who did what, newest first, keyset-paged: pass `next_before_id` as `before_id`."""
    filters = query.model_dump(exclude={"limit"})
    events = audit.page(get_db(), **filters, limit=query.limit + 1)
    more = len(events) > query.limit
    events = events[:query.limit]
    items = [{**e.model_dump(exclude={"before_json", "after_json"}),
              "before": json.loads(e.before_json) if e.before_json else None,
              "after": json.loads(e.after_json) if e.after_json else None} for e in events]
    return dump(AuditPageOut, {"items": items, "next_before_id": events[-1].id if more else None})
