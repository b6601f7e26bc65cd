"""The administrator's pages: accounts, roles, credentials, API tokens, the audit trail."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.auth.models import ApiToken, Credential, StaffRole, StaffUser
from clinic.sessions.models import Site
from tests.conftest import PASSWORD, csrf_token, login


def _new_account(client, **changes):
    data = {"username": "new.nurse", "full_name": "New Nurse", "password": "long-enough-pass",
            "roles": ["nurse"], "csrf_token": csrf_token(client, "/admin/staff/new")} | changes
    return client.post("/admin/staff/new", data=data)


def test_admin_creates_an_account_that_can_sign_in(client, admin, db):
    login(client, "ada.admin")
    site = db.exec(select(Site).where(Site.code == "NOR")).one()
    r = _new_account(client, roles=["nurse", "manager"], site_ids=[str(site.id)])
    assert r.status_code == 302
    user = db.exec(select(StaffUser).where(StaffUser.username == "new.nurse")).one()
    assert set(db.exec(select(StaffRole.role).where(StaffRole.staff_user_id == user.id))) == {"nurse", "manager"}
    created = db.exec(select(AuditEvent).where(AuditEvent.entity == "staff_user", AuditEvent.action == "create")).one()
    assert "password_hash" not in created.after_json and "long-enough-pass" not in created.after_json
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert login(client, "new.nurse", "long-enough-pass").status_code == 302


def test_bad_account_form_names_each_field(client, admin, db):
    login(client, "ada.admin")
    r = _new_account(client, username="Bad Name!", password="short", roles=[])
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'id="e-username"' in html and 'id="e-password"' in html and "Choose at least one role" in html
    assert 'value="New Nurse"' in html
    assert db.exec(select(StaffUser).where(StaffUser.full_name == "New Nurse")).first() is None


def test_taken_username_is_refused(client, admin, nurse):
    login(client, "ada.admin")
    r = _new_account(client, username="nina.nurse")
    assert r.status_code == 409 and "this username is taken" in r.get_data(as_text=True)


def test_re_role_is_audited_with_before_and_after(client, admin, nurse, db):
    login(client, "ada.admin")
    r = client.post(f"/admin/staff/{nurse.id}", data={"full_name": nurse.full_name, "roles": ["nurse", "prescriber"],
                                                      "csrf_token": csrf_token(client, "/admin/staff")})
    assert r.status_code == 302
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "role_change")).one()
    assert json.loads(event.before_json)["roles"] == ["nurse"]
    assert json.loads(event.after_json)["roles"] == ["nurse", "prescriber"]


def test_deactivated_staff_are_signed_out_and_cannot_return(client, app, admin, nurse, db):
    nurse_client = app.test_client()
    login(nurse_client, "nina.nurse")
    assert nurse_client.get("/patients").status_code == 200
    login(client, "ada.admin")
    client.post(f"/admin/staff/{nurse.id}/active", data={"active": "0", "csrf_token": csrf_token(client, "/")})
    assert nurse_client.get("/patients").status_code == 302  # the open session no longer counts
    assert login(nurse_client, "nina.nurse").status_code == 422
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "deactivate")).one().entity_id == str(nurse.id)


def test_admin_cannot_deactivate_themself(client, admin, db):
    login(client, "ada.admin")
    r = client.post(f"/admin/staff/{admin.id}/active", data={"active": "0", "csrf_token": csrf_token(client, "/")})
    assert r.status_code == 422
    db.expire_all()
    assert db.get(StaffUser, admin.id).active


def test_credentials_are_recorded_and_expired_ones_shown(client, admin, nurse, db):
    login(client, "ada.admin")
    token = csrf_token(client, "/")
    client.post(f"/admin/staff/{nurse.id}/credentials", data={"kind": "acls", "number": "A-1",
                                                              "expires_on": "2020-01-01", "csrf_token": token})
    client.post(f"/admin/staff/{nurse.id}/credentials", data={
        "kind": "nursing_licence", "number": "RN-9", "expires_on": (date.today() + timedelta(days=300)).isoformat(),
        "csrf_token": token})
    assert {c.kind for c in db.exec(select(Credential))} == {"acls", "nursing_licence"}
    page = client.get(f"/admin/staff/{nurse.id}").get_data(as_text=True)
    assert "✕ Expired" in page and "RN-9" in page
    r = client.post(f"/admin/staff/{nurse.id}/credentials", data={"kind": "pilot", "number": "x",
                                                                  "expires_on": "soon", "csrf_token": token},
                    follow_redirects=True)
    assert "kind: Choose one of" in r.get_data(as_text=True) and "expires_on" in r.get_data(as_text=True)
    assert len(db.exec(select(Credential)).all()) == 2


def test_api_token_is_shown_once_and_can_be_revoked(client, admin, nurse, db):
    login(client, "ada.admin")
    r = client.post(f"/admin/staff/{nurse.id}/tokens", data={"name": "EHR", "csrf_token": csrf_token(client, "/")})
    secret = r.get_data(as_text=True).split('id="token-secret">')[1].split("<")[0]
    assert secret.startswith("cs_")
    stored = db.exec(select(ApiToken)).one()
    assert secret not in stored.token_hash
    api = client.application.test_client()
    r = api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert r.json["username"] == "nina.nurse"
    assert "Set-Cookie" not in r.headers  # a token call opens no browser session
    client.post(f"/admin/tokens/{stored.id}/revoke", data={"csrf_token": csrf_token(client, "/")})
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_audit_trail_filters_by_person_and_action(client, admin, nurse, db):
    login(client, "nina.nurse", PASSWORD)
    login(client, "nina.nurse", "wrong-password")
    login(client, "ada.admin")
    page = client.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert "nina.nurse" in page and "wrong username or password" in page
    page = client.get("/admin/audit?username=ada.admin").get_data(as_text=True)
    assert "<td>login_failed</td>" not in page and "<td>login</td>" in page
    r = client.get("/admin/audit?since=yesterday&mrn=NOPE")
    assert r.status_code == 422 and "use a date like" in r.get_data(as_text=True)


def test_audit_trail_pages_back_in_time(client, admin, db):
    from clinic import audit

    for i in range(60):
        audit.record(db, audit.SYSTEM, "create", "test", i)
    db.commit()
    login(client, "ada.admin")
    first = client.get("/admin/audit?entity=test").get_data(as_text=True)
    assert "test #59" in first and "test #5<" not in first and "Older" in first
    oldest = db.exec(select(AuditEvent).where(AuditEvent.entity == "test").order_by(AuditEvent.id)).all()
    second = client.get(f"/admin/audit?entity=test&before={oldest[10].id}").get_data(as_text=True)
    assert "test #9<" in second and "test #10<" not in second
