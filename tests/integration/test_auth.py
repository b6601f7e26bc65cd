"""Signing in, throttling, the idle lock that keeps a draft, CSRF, and the role matrix."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.auth.permissions import PERMISSIONS
from clinic.db import utcnow
from clinic.web import view_funcs_without_permission
from tests.conftest import PASSWORD, csrf_token, login, make_staff


def test_every_route_declares_who_may_use_it(app):
    assert view_funcs_without_permission(app) == []


def test_anonymous_requests_reach_nothing_but_the_public_pages(app, client, nurse):
    public = {"/login", "/health"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "swagger/<" in rule.rule or "api/static" in rule.rule:
            continue
        path = "".join(
            re.sub(r"<(?:int:)?[a-z_]+>", "1", part) for part in [rule.rule]
        ).replace("<path:filename>", "x")
        for method in sorted(rule.methods & {"GET", "POST", "PUT", "DELETE"}):
            r = client.open(path, method=method)
            if path in public:
                continue
            assert r.status_code in (302, 401), (method, path, r.status_code)
            if r.status_code == 302:
                assert r.headers["Location"].startswith("/login"), (method, path)


def test_login_with_right_password_and_logout(client, nurse, db):
    r = login(client, "nina.nurse")
    assert r.status_code == 302
    assert client.get("/patients").status_code == 200
    token = csrf_token(client, "/")
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/patients").status_code == 302
    actions = [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert "login" in actions and "logout" in actions


def test_wrong_password_is_refused_and_audited(client, nurse, db):
    r = login(client, "nina.nurse", "wrong-password")
    assert r.status_code == 422
    assert "Wrong username or password" in r.get_data(as_text=True)
    failed = db.exec(select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
    assert len(failed) == 1 and failed[0].entity_id == "nina.nurse"


def test_repeated_failures_lock_the_username_even_for_the_right_password(client, nurse, app):
    for _ in range(5):
        assert login(client, "nina.nurse", "nope-nope-nope").status_code == 422
    r = login(client, "nina.nurse", PASSWORD)
    assert r.status_code == 429
    assert "Too many failed sign-ins" in r.get_data(as_text=True)
    app.extensions["clinic.clock"].now = utcnow() + timedelta(minutes=16)
    assert login(client, "nina.nurse", PASSWORD).status_code == 302


def test_deactivated_account_cannot_sign_in(client, db):
    make_staff(db, "gone.user", "nurse", active=False)
    assert login(client, "gone.user").status_code == 422


def test_forms_without_csrf_token_are_refused(client, nurse):
    login(client, "nina.nurse")
    r = client.post("/patients/new", data={"given_name": "A", "family_name": "B"})
    assert r.status_code == 400
    assert "Nothing was saved" in r.get_data(as_text=True)


def test_idle_session_locks_and_keeps_what_was_typed(client, nurse, app, db):
    clock = app.extensions["clinic.clock"]
    clock.now = utcnow()
    login(client, "nina.nurse")
    token = csrf_token(client, "/patients/new")
    clock.now += timedelta(minutes=16)
    typed = {"csrf_token": token, "given_name": "Rowan", "family_name": "Tester", "date_of_birth": "1980-02-03",
             "sex": "female", "allergies": "penicillin"}
    r = client.post("/patients/new", data=typed, headers={"Referer": "http://localhost/patients/new"})
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith("/login") and "draft=" in location
    draft = re.search(r"draft=([^&]+)", location).group(1)
    # Nothing was saved, and the person is asked for the password again.
    assert client.get("/patients").status_code == 302
    page = client.get(location).get_data(as_text=True)
    assert "Session locked" in page and "nina.nurse" in page
    r = client.post("/login", data={"username": "nina.nurse", "password": PASSWORD, "next": "/patients/new",
                                    "draft": draft, "csrf_token": csrf_token(client, location)})
    assert r.headers["Location"] == f"/patients/new?draft={draft}"
    kept = client.get(f"/drafts/{draft}").json
    assert kept["fields"]["given_name"] == ["Rowan"] and kept["fields"]["allergies"] == ["penicillin"]
    assert "csrf_token" not in kept["fields"]
    assert client.get(f"/drafts/{draft}").status_code == 404  # handed back once


def test_a_kept_draft_is_only_given_to_its_owner(client, nurse, db, app):
    clock = app.extensions["clinic.clock"]
    clock.now = utcnow()
    make_staff(db, "other.nurse", "nurse")
    login(client, "nina.nurse")
    token = csrf_token(client, "/patients/new")
    clock.now += timedelta(minutes=20)
    r = client.post("/patients/new", data={"csrf_token": token, "given_name": "Secret"})
    draft = re.search(r"draft=([^&]+)", r.headers["Location"]).group(1)
    r = client.post("/login", data={"username": "other.nurse", "password": PASSWORD, "next": "/patients/new",
                                    "draft": draft, "csrf_token": csrf_token(client, "/login")})
    assert "draft=" not in r.headers["Location"]
    assert client.get(f"/drafts/{draft}").status_code == 404


def test_idle_api_call_gets_401_with_a_reason(client, nurse, app):
    clock = app.extensions["clinic.clock"]
    clock.now = utcnow()
    login(client, "nina.nurse")
    assert client.get("/api/v1/me").status_code == 200
    clock.now += timedelta(minutes=15, seconds=5)
    r = client.get("/api/v1/me")
    assert r.status_code == 401 and r.json["error"] == "SessionExpired"


def test_role_matrix_decides_access(client, db):
    make_staff(db, "only.admin", "admin")
    login(client, "only.admin")
    assert client.get("/admin/staff").status_code == 200
    assert client.get("/admin/audit").status_code == 200
    r = client.get("/patients")
    assert r.status_code == 403 and "does not allow" in r.get_data(as_text=True)


def test_nurse_cannot_open_admin_pages(client, nurse):
    login(client, "nina.nurse")
    assert client.get("/admin/staff").status_code == 403
    assert client.get("/admin/audit").status_code == 403


def test_permission_names_are_all_known_roles():
    roles = {"nurse", "prescriber", "manager", "admin"}
    for name, allowed_roles in PERMISSIONS.items():
        assert allowed_roles <= roles, name
