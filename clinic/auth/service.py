"""Staff accounts: sign-in with throttling, administration, credentials, API tokens, kept drafts.

Each public function is one use case and one transaction: it validates, writes, records the audit
event and commits.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, delete, select

from clinic import audit
from clinic.audit import Actor, AuditEvent
from clinic.auth.models import ApiToken, Credential, FormDraft, StaffRole, StaffSite, StaffUser
from clinic.auth.passwords import hash_password, hash_token, needs_rehash, new_api_token, verify_password
from clinic.auth.schemas import CredentialCreate, PasswordReset, StaffCreate, StaffUpdate, TokenCreate
from clinic.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from clinic.sessions.models import Site


@dataclass(frozen=True)
class StaffView:
    """A staff user with roles and sites, as the shell needs it."""

    id: int
    username: str
    full_name: str
    active: bool
    roles: frozenset[str]
    site_ids: frozenset[int]


def roles_of(db: Session, user_id: int) -> frozenset[str]:
    return frozenset(db.exec(select(StaffRole.role).where(StaffRole.staff_user_id == user_id)))


def sites_of(db: Session, user_id: int) -> frozenset[int]:
    return frozenset(db.exec(select(StaffSite.site_id).where(StaffSite.staff_user_id == user_id)))


def staff_view(db: Session, user: StaffUser) -> StaffView:
    return StaffView(user.id, user.username, user.full_name, user.active, roles_of(db, user.id),
                     sites_of(db, user.id))


def load_staff(db: Session, user_id: int) -> StaffView | None:
    user = db.get(StaffUser, user_id)
    return staff_view(db, user) if user else None


# --- signing in ----------------------------------------------------------------------------------


def recent_failures(db: Session, username: str, since: datetime) -> int:
    q = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.entity == "staff_user",
        AuditEvent.entity_id == username,
        AuditEvent.action == "login_failed",
        AuditEvent.at >= since,
    )
    return db.exec(q).one()


def authenticate(
    db: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    max_failures: int,
    lockout_minutes: int,
    ip: str | None = None,
) -> StaffView:
    """Check a username and password; throttle repeated failures per username.

    Every attempt is audited. After `max_failures` failures within `lockout_minutes` the username is
    refused (even with the right password) until the window has passed.
    """
    username = (username or "").strip().lower()
    window_start = now - timedelta(minutes=lockout_minutes)
    if recent_failures(db, username, window_start) >= max_failures:
        audit.record(db, Actor(None, username or "anonymous", ip=ip), "login_failed", "staff_user", username,
                     detail="refused: locked after repeated failures", at=now)
        db.commit()
        raise TooManyAttempts(
            f"Too many failed sign-ins for this username. Try again in {lockout_minutes} minutes, "
            "or ask an administrator."
        )
    user = db.exec(select(StaffUser).where(StaffUser.username == username)).first()
    ok = verify_password(user.password_hash if user else None, password or "")
    if not ok or not user.active:
        audit.record(db, Actor(None, username or "anonymous", ip=ip), "login_failed", "staff_user", username,
                     detail="inactive account" if (ok and not user.active) else "wrong username or password",
                     at=now)
        db.commit()
        raise InvalidInput("Wrong username or password, or the account is not active.",
                           fields={"password": "Wrong username or password."})
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.add(user)
    audit.record(db, Actor(user.id, user.username, ip=ip), "login", "staff_user", user.username, at=now)
    db.commit()
    return staff_view(db, user)


# --- administration ------------------------------------------------------------------------------


def _check_sites(db: Session, site_ids: list[int]) -> None:
    if not site_ids:
        return
    found = set(db.exec(select(Site.id).where(Site.id.in_(site_ids))))
    missing = sorted(set(site_ids) - found)
    if missing:
        raise InvalidInput("Unknown site.", fields={"site_ids": f"no site with id {missing[0]}"})


def _check_password(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise InvalidInput("Password too short.",
                           fields={"password": f"use at least {min_length} characters"})


def _set_roles_and_sites(db: Session, user_id: int, roles: list[str], site_ids: list[int]) -> None:
    db.exec(delete(StaffRole).where(StaffRole.staff_user_id == user_id))
    db.exec(delete(StaffSite).where(StaffSite.staff_user_id == user_id))
    db.flush()
    db.add_all([StaffRole(staff_user_id=user_id, role=r) for r in roles])
    db.add_all([StaffSite(staff_user_id=user_id, site_id=s) for s in sorted(set(site_ids))])


def list_staff(db: Session, *, include_inactive: bool = True) -> list[StaffView]:
    q = select(StaffUser).order_by(StaffUser.full_name)
    if not include_inactive:
        q = q.where(StaffUser.active)
    users = list(db.exec(q))
    roles: dict[int, set[str]] = {}
    for r in db.exec(select(StaffRole)):
        roles.setdefault(r.staff_user_id, set()).add(r.role)
    sites: dict[int, set[int]] = {}
    for s in db.exec(select(StaffSite)):
        sites.setdefault(s.staff_user_id, set()).add(s.site_id)
    return [StaffView(u.id, u.username, u.full_name, u.active, frozenset(roles.get(u.id, ())),
                      frozenset(sites.get(u.id, ()))) for u in users]


def get_staff(db: Session, user_id: int) -> StaffUser:
    user = db.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"No staff user with id {user_id}.")
    return user


def create_staff(db: Session, actor: Actor, data: StaffCreate, *, password_min_length: int) -> StaffUser:
    _check_password(data.password, password_min_length)
    _check_sites(db, data.site_ids)
    if db.exec(select(StaffUser.id).where(StaffUser.username == data.username)).first():
        raise Conflict(f"The username {data.username!r} is taken.",
                       fields={"username": "this username is taken"})
    user = StaffUser(username=data.username, full_name=data.full_name, email=data.email,
                     password_hash=hash_password(data.password))
    db.add(user)
    db.flush()
    _set_roles_and_sites(db, user.id, data.roles, data.site_ids)
    after = audit.snapshot(user) | {"roles": data.roles, "site_ids": sorted(data.site_ids)}
    audit.record(db, actor, "create", "staff_user", user.id, after=after)
    db.commit()
    return user


def update_staff(db: Session, actor: Actor, user_id: int, data: StaffUpdate) -> StaffUser:
    user = get_staff(db, user_id)
    _check_sites(db, data.site_ids)
    before = audit.snapshot(user) | {"roles": sorted(roles_of(db, user_id)),
                                     "site_ids": sorted(sites_of(db, user_id))}
    if actor.user_id == user_id and "admin" in before["roles"] and "admin" not in data.roles:
        raise InvalidInput("You cannot remove your own administrator role.",
                           fields={"roles": "another administrator must do this"})
    user.full_name, user.email = data.full_name, data.email
    db.add(user)
    _set_roles_and_sites(db, user_id, data.roles, data.site_ids)
    after = audit.snapshot(user) | {"roles": data.roles, "site_ids": sorted(set(data.site_ids))}
    b, a = audit.diff(before, after)
    action = "role_change" if before["roles"] != after["roles"] else "update"
    audit.record(db, actor, action, "staff_user", user.id, before=b, after=a)
    db.commit()
    return user


def set_active(db: Session, actor: Actor, user_id: int, active: bool, *, now: datetime) -> StaffUser:
    user = get_staff(db, user_id)
    if actor.user_id == user_id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    if user.active == active:
        return user
    user.active = active
    user.deactivated_at = None if active else now
    db.add(user)
    if not active:  # a deactivated person's tokens stop working with them
        for token in db.exec(select(ApiToken).where(ApiToken.staff_user_id == user_id,
                                                    ApiToken.revoked_at.is_(None))):
            token.revoked_at, token.revoked_by_id = now, actor.user_id
            db.add(token)
    audit.record(db, actor, "reactivate" if active else "deactivate", "staff_user", user.id,
                 before={"active": not active}, after={"active": active})
    db.commit()
    return user


def reset_password(db: Session, actor: Actor, user_id: int, data: PasswordReset, *,
                   password_min_length: int, now: datetime) -> None:
    user = get_staff(db, user_id)
    _check_password(data.password, password_min_length)
    user.password_hash = hash_password(data.password)
    user.password_changed_at = now
    db.add(user)
    audit.record(db, actor, "update", "staff_user", user.id, detail="password reset")
    db.commit()


def credentials_of(db: Session, user_id: int) -> list[Credential]:
    q = select(Credential).where(Credential.staff_user_id == user_id, Credential.retired_at.is_(None))
    return list(db.exec(q.order_by(Credential.expires_on)))


def add_credential(db: Session, actor: Actor, user_id: int, data: CredentialCreate, *,
                   now: datetime) -> Credential:
    get_staff(db, user_id)
    cred = Credential(staff_user_id=user_id, kind=data.kind, number=data.number, issued_by=data.issued_by,
                      expires_on=data.expires_on, verified_by_id=actor.user_id, verified_at=now)
    db.add(cred)
    db.flush()
    audit.record(db, actor, "create", "credential", cred.id, after=audit.snapshot(cred))
    db.commit()
    return cred


def retire_credential(db: Session, actor: Actor, credential_id: int, *, now: datetime) -> None:
    cred = db.get(Credential, credential_id)
    if cred is None or cred.retired_at is not None:
        raise NotFound(f"No current credential with id {credential_id}.")
    cred.retired_at = now
    db.add(cred)
    audit.record(db, actor, "update", "credential", cred.id, before={"retired_at": None},
                 after={"retired_at": now.isoformat()})
    db.commit()


def current_credentials(db: Session, user_id: int, on: date) -> dict[str, Credential]:
    """The credentials of `user_id` still valid on `on`, by kind (latest expiry wins)."""
    best: dict[str, Credential] = {}
    for c in credentials_of(db, user_id):
        if c.expires_on >= on and (c.kind not in best or c.expires_on > best[c.kind].expires_on):
            best[c.kind] = c
    return best


# --- API tokens ----------------------------------------------------------------------------------


def issue_token(db: Session, actor: Actor, user_id: int, data: TokenCreate, *, now: datetime
                ) -> tuple[ApiToken, str]:
    """A new token for `user_id`; the secret is returned once and never stored."""
    user = get_staff(db, user_id)
    if not user.active:
        raise InvalidInput("Tokens can only be issued to active staff.")
    secret, prefix, digest = new_api_token()
    expires = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    token = ApiToken(staff_user_id=user_id, name=data.name, prefix=prefix, token_hash=digest,
                     created_at=now, created_by_id=actor.user_id, expires_at=expires)
    db.add(token)
    db.flush()
    audit.record(db, actor, "token_issue", "api_token", token.id,
                 after={"staff_user_id": user_id, "name": data.name, "prefix": prefix})
    db.commit()
    return token, secret


def revoke_token(db: Session, actor: Actor, token_id: int, *, now: datetime) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at, token.revoked_by_id = now, actor.user_id
        db.add(token)
        audit.record(db, actor, "token_revoke", "api_token", token.id)
        db.commit()
    return token


def tokens_of(db: Session, user_id: int | None = None) -> list[ApiToken]:
    q = select(ApiToken).order_by(ApiToken.created_at.desc())
    if user_id is not None:
        q = q.where(ApiToken.staff_user_id == user_id)
    return list(db.exec(q))


def user_for_token(db: Session, secret: str, *, now: datetime) -> StaffView | None:
    """The active user a valid, unrevoked, unexpired token belongs to."""
    token = db.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).first()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        return None
    user = db.get(StaffUser, token.staff_user_id)
    if user is None or not user.active:
        return None
    # Touch at most once a minute so reads do not turn every API call into a write.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
        db.add(token)
        db.commit()
    return staff_view(db, user)


# --- drafts kept across an idle timeout ----------------------------------------------------------


def keep_draft(db: Session, user_id: int, path: str, fields: dict[str, list[str]], *, now: datetime,
               keep_hours: int) -> str:
    token = secrets.token_urlsafe(24)
    db.add(FormDraft(token=token, staff_user_id=user_id, path=path, fields_json=json.dumps(fields),
                     created_at=now, expires_at=now + timedelta(hours=keep_hours)))
    db.exec(delete(FormDraft).where(FormDraft.expires_at < now))
    db.commit()
    return token


def take_draft(db: Session, user_id: int, token: str, *, now: datetime) -> dict | None:
    """The kept fields, once, for their owner only; None if unknown, expired or someone else's."""
    draft = db.exec(select(FormDraft).where(FormDraft.token == token)).first()
    if draft is None or draft.staff_user_id != user_id or draft.expires_at < now:
        return None
    fields = json.loads(draft.fields_json)
    db.delete(draft)
    db.commit()
    return {"path": draft.path, "fields": fields}
