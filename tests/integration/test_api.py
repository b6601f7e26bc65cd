"""The JSON API: documented, offline docs, tokens and CSRF, the same services (and audit) as the pages."""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import select

from clinic.audit import Actor, AuditEvent
from clinic.auth import service as auth_service
from clinic.auth.models import ApiToken, StaffUser
from clinic.auth.schemas import TokenCreate
from clinic.db import utcnow
from clinic.patients.models import Patient
from tests.conftest import csrf_token, login

GOOD = {"given_name": "Ivy", "family_name": "Quill", "date_of_birth": "1984-05-06", "sex": "female",
        "phone": "555-0101", "email": "ivy@example.org", "allergies": "NKDA", "weight_kg": 72.5}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class TokenClient:
    """An integration calling with `Authorization: Bearer …` and no cookies at all."""

    def __init__(self, app, secret: str):
        self.client = app.test_client(use_cookies=False)
        self.headers = {"Authorization": f"Bearer {secret}"}

    def _call(self, method: str, path: str, **kw):
        headers = self.headers | kw.pop("headers", {})
        return self.client.open(path, method=method, headers=headers, **kw)

    def get(self, path: str, **kw):
        return self._call("GET", path, **kw)

    def post(self, path: str, **kw):
        return self._call("POST", path, **kw)

    def put(self, path: str, **kw):
        return self._call("PUT", path, **kw)


def token_for(db, user: StaffUser) -> str:
    """A token issued straight through the service (the API route is tested on its own)."""
    _, secret = auth_service.issue_token(db, Actor(user.id, user.username), user.id, TokenCreate(name="test"),
                                         now=utcnow())
    return secret


@pytest.fixture
def as_nurse(app, db, nurse) -> TokenClient:
    return TokenClient(app, token_for(db, nurse))


@pytest.fixture
def as_admin(app, db, admin) -> TokenClient:
    return TokenClient(app, token_for(db, admin))


def events(db, **where) -> list[AuditEvent]:
    q = select(AuditEvent).order_by(AuditEvent.id)
    for key, value in where.items():
        q = q.where(getattr(AuditEvent, key) == value)
    return list(db.exec(q))


def update_body(patient: dict, **changes) -> dict:
    keep = {k: patient[k] for k in GOOD if k != "weight_kg"}
    return keep | {"row_version": patient["row_version"]} | changes


# --- the document and its UI --------------------------------------------------------------------


def test_openapi_document_lists_every_endpoint_and_both_ways_to_sign_in(client, nurse):
    assert client.get("/api/openapi.json").status_code == 401  # staff only
    login(client, "nina.nurse")
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json
    expected = {
        "/api/v1/me", "/api/v1/patients", "/api/v1/patients/{patient_id}", "/api/v1/patients/{patient_id}/flags",
        "/api/v1/patients/flags/{flag_id}/clear", "/api/v1/patients/{patient_id}/consents",
        "/api/v1/patients/consents/{consent_id}/revoke", "/api/v1/staff", "/api/v1/staff/{user_id}",
        "/api/v1/staff/{user_id}/deactivate", "/api/v1/staff/{user_id}/reactivate",
        "/api/v1/staff/{user_id}/credentials", "/api/v1/staff/{user_id}/tokens",
        "/api/v1/tokens/{token_id}/revoke", "/api/v1/audit",
    }
    assert expected <= set(doc["paths"])
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "session"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["security"] == [{"bearer": []}, {"session": []}], (method, path)
    create = doc["paths"]["/api/v1/patients"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PatientIn")
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/PatientOut")
    assert create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    text = json.dumps(doc)
    for secret in ("password_hash", "pin_hash", "token_hash"):
        assert secret not in text


def test_swagger_ui_loads_nothing_from_other_hosts(client, nurse):
    assert client.get("/api/swagger").status_code == 401
    login(client, "nina.nurse")
    r = client.get("/api/swagger")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("swagger/"), asset
        assert client.get(f"/api/{asset}").status_code == 200, asset
    assert '"validatorUrl": null' in html  # no badge fetched from validator.swagger.io


# --- tokens and CSRF ----------------------------------------------------------------------------


def test_admin_issues_a_token_that_works_for_reads_and_for_writes_without_csrf(app, client, admin, nurse, db):
    login(client, "ada.admin")
    r = client.post(f"/api/v1/staff/{nurse.id}/tokens", json={"name": "pump bridge", "expires_in_days": 30},
                    headers={"X-CSRFToken": csrf_token(client, "/")})
    assert r.status_code == 201
    issued = r.json
    assert issued["secret"].startswith(issued["prefix"]) and "token_hash" not in issued
    assert ISO_UTC.match(issued["created_at"]) and ISO_UTC.match(issued["expires_at"])
    stored = db.exec(select(ApiToken)).one()
    assert stored.token_hash != issued["secret"] and issued["secret"] not in stored.token_hash
    assert [e.action for e in events(db, entity="api_token")] == ["token_issue"]

    bridge = TokenClient(app, issued["secret"])
    me = bridge.get("/api/v1/me")
    assert me.status_code == 200 and me.json["username"] == "nina.nurse"
    assert bridge.post("/api/v1/patients", json=GOOD).status_code == 201  # no CSRF header needed
    listed = client.get(f"/api/v1/staff/{nurse.id}/tokens").json["items"]
    assert [t["id"] for t in listed] == [issued["id"]] and "secret" not in listed[0]
    assert listed[0]["last_used_at"] is not None


def test_a_revoked_token_gets_401(app, db, nurse, as_admin):
    secret = token_for(db, nurse)
    bridge = TokenClient(app, secret)
    assert bridge.get("/api/v1/me").status_code == 200
    token = db.exec(select(ApiToken).where(ApiToken.staff_user_id == nurse.id)).one()
    r = as_admin.post(f"/api/v1/tokens/{token.id}/revoke")
    assert r.status_code == 200 and ISO_UTC.match(r.json["revoked_at"])
    r = bridge.get("/api/v1/me")
    assert r.status_code == 401 and r.json["error"] == "Unauthorized"
    assert bridge.post("/api/v1/patients", json=GOOD).status_code == 401
    assert db.exec(select(Patient)).all() == []
    assert TokenClient(app, "cs_made-up-secret").get("/api/v1/me").status_code == 401


def test_a_deactivated_users_token_stops_working_and_stays_revoked(app, db, nurse, as_admin):
    bridge = TokenClient(app, token_for(db, nurse))
    assert bridge.get("/api/v1/patients").status_code == 200
    r = as_admin.post(f"/api/v1/staff/{nurse.id}/deactivate")
    assert r.status_code == 200 and r.json["active"] is False and ISO_UTC.match(r.json["deactivated_at"])
    assert bridge.get("/api/v1/patients").status_code == 401
    assert as_admin.post(f"/api/v1/staff/{nurse.id}/reactivate").json["active"] is True
    assert bridge.get("/api/v1/patients").status_code == 401  # a returning person gets a new token
    assert [e.action for e in events(db, entity="staff_user")][-2:] == ["deactivate", "reactivate"]


def test_cookie_session_writes_need_the_csrf_header(client, nurse, db):
    login(client, "nina.nurse")
    r = client.post("/api/v1/patients", json=GOOD)
    assert r.status_code == 400 and r.json["error"] == "CSRFError"
    assert db.exec(select(Patient)).all() == []
    r = client.post("/api/v1/patients", json=GOOD, headers={"X-CSRFToken": csrf_token(client, "/")})
    assert r.status_code == 201
    assert db.exec(select(Patient)).one().family_name == "Quill"


# --- patients -----------------------------------------------------------------------------------


def test_nurse_registers_a_patient_and_the_create_is_audited_with_it(as_nurse, nurse, db):
    r = as_nurse.post("/api/v1/patients", json=GOOD, headers={"X-Request-Id": "req-create-1"})
    assert r.status_code == 201
    body = r.json
    patient = db.exec(select(Patient)).one()
    assert body["id"] == patient.id and body["mrn"] == f"CS-{patient.id:06d}" and body["row_version"] == 1
    assert body["date_of_birth"] == "1984-05-06" and ISO_UTC.match(body["created_at"])
    [event] = events(db, action="create", entity="patient")
    assert event.patient_id == patient.id and event.entity_id == str(patient.id)
    assert event.actor_id == nurse.id and event.request_id == "req-create-1"
    assert json.loads(event.after_json)["family_name"] == "Quill"


def test_a_failed_audit_write_leaves_no_patient_behind(as_nurse, db, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr("clinic.audit.record", refuse)
    r = as_nurse.post("/api/v1/patients", json=GOOD)
    assert r.status_code == 500 and "nothing was saved" in r.json["message"]
    assert db.exec(select(Patient)).all() == []


def test_malformed_body_is_refused_naming_each_bad_field(as_nurse, db):
    r = as_nurse.post("/api/v1/patients", json={"given_name": "Ivy", "date_of_birth": "06/05/1984", "sex": "x"})
    assert r.status_code == 422
    assert r.json["error"] == "InvalidInput"
    assert {"family_name", "date_of_birth", "sex"} <= set(r.json["fields"])
    assert "given_name" not in r.json["fields"]
    assert "choose one of" in r.json["fields"]["sex"].lower()
    r = as_nurse.post("/api/v1/patients", json=GOOD | {"favourite_colour": "teal"})
    assert r.status_code == 422 and "favourite_colour" in r.json["fields"]
    r = as_nurse.post("/api/v1/patients", data="{not json", content_type="application/json")
    assert r.status_code == 422 and r.json["fields"]
    assert db.exec(select(Patient)).all() == []
    assert events(db, action="create", entity="patient") == []


def test_duplicate_patient_is_refused_with_409(as_nurse, db):
    first = as_nurse.post("/api/v1/patients", json=GOOD).json
    r = as_nurse.post("/api/v1/patients", json=GOOD | {"given_name": "IVY", "family_name": "quill"})
    assert r.status_code == 409 and r.json["error"] == "Conflict"
    assert first["mrn"] in r.json["fields"]["family_name"]
    assert len(db.exec(select(Patient)).all()) == 1


def test_stale_row_version_is_refused_and_the_first_change_kept(as_nurse, app, db, prescriber):
    other = TokenClient(app, token_for(db, prescriber))
    created = as_nurse.post("/api/v1/patients", json=GOOD).json
    url = f"/api/v1/patients/{created['id']}"
    seen_by_nurse = as_nurse.get(url).json["patient"]
    seen_by_prescriber = other.get(url).json["patient"]
    r = as_nurse.put(url, json=update_body(seen_by_nurse, phone="555-0202"))
    assert r.status_code == 200 and r.json["row_version"] == 2 and r.json["phone"] == "555-0202"
    r = other.put(url, json=update_body(seen_by_prescriber, phone="555-0303"))
    assert r.status_code == 409 and "Nothing was saved" in r.json["message"]
    now = as_nurse.get(url).json["patient"]
    assert now["phone"] == "555-0202" and now["row_version"] == 2
    assert len(events(db, action="update", entity="patient")) == 1


def test_reading_a_patient_writes_a_view_event(as_nurse, nurse, db):
    created = as_nurse.post("/api/v1/patients", json=GOOD).json
    r = as_nurse.get(f"/api/v1/patients/{created['id']}")
    assert r.status_code == 200
    record = r.json
    assert record["patient"]["family_name"] == "Quill" and record["flags"] == [] and record["consents"] == []
    assert record["latest_weight"]["weight_kg"] == 72.5
    [view] = events(db, action="view", entity="patient")
    assert view.patient_id == created["id"] and view.actor_id == nurse.id
    r = as_nurse.get("/api/v1/patients/999999")
    assert r.status_code == 404 and r.json["error"] == "NotFound"


def test_flags_and_consents_through_the_api(as_nurse, app, db, manager):
    pid = as_nurse.post("/api/v1/patients", json=GOOD).json["id"]
    flag = as_nurse.post(f"/api/v1/patients/{pid}/flags", json={"kind": "fall_risk", "note": "uses a cane"})
    assert flag.status_code == 201 and flag.json["cleared_at"] is None and ISO_UTC.match(flag.json["set_at"])
    assert as_nurse.post(f"/api/v1/patients/{pid}/flags", json={"kind": "fall_risk"}).status_code == 409
    assert as_nurse.post(f"/api/v1/patients/{pid}/flags", json={"kind": "nonsense"}).status_code == 422
    desk = TokenClient(app, token_for(db, manager))
    assert desk.post(f"/api/v1/patients/{pid}/flags", json={"kind": "pregnancy"}).status_code == 403

    consent = as_nurse.post(f"/api/v1/patients/{pid}/consents",
                            json={"kind": "ketamine", "text_version": "v3", "signed_on": "2024-01-10"})
    assert consent.status_code == 201 and ISO_UTC.match(consent.json["signed_at"])
    record = as_nurse.get(f"/api/v1/patients/{pid}").json
    assert [f["kind"] for f in record["flags"]] == ["fall_risk"]
    assert [(c["kind"], c["status"]) for c in record["consents"]] == [("ketamine", "current")]
    listed = as_nurse.get("/api/v1/patients", query_string={"q": "quill"}).json["items"]
    assert listed[0]["flags"] == ["fall_risk"]

    r = as_nurse.post(f"/api/v1/patients/flags/{flag.json['id']}/clear", json={"reason": "walks unaided now"})
    assert r.status_code == 200 and r.json["clear_reason"] == "walks unaided now"
    r = as_nurse.post(f"/api/v1/patients/consents/{consent.json['id']}/revoke", json={"reason": "no"})
    assert r.status_code == 422 and "reason" in r.json["fields"]
    r = as_nurse.post(f"/api/v1/patients/consents/{consent.json['id']}/revoke",
                      json={"reason": "patient withdrew"})
    assert r.status_code == 200 and r.json["revoked_at"]
    record = as_nurse.get(f"/api/v1/patients/{pid}").json
    assert record["flags"] == [] and record["consents"][0]["status"] == "revoked"
    assert record["consent_history"][0]["revoke_reason"] == "patient withdrew"


def test_patient_search_pages_and_refuses_a_bad_query(as_nurse, db):
    for given in ("Ivy", "Ash", "Rowan"):
        assert as_nurse.post("/api/v1/patients", json=GOOD | {"given_name": given}).status_code == 201
    r = as_nurse.get("/api/v1/patients", query_string={"q": "quill", "per_page": 2, "page": 2})
    assert r.status_code == 200
    assert (r.json["total"], r.json["pages"], r.json["page"]) == (3, 2, 2)
    assert [p["given_name"] for p in r.json["items"]] == ["Rowan"]
    assert "phone" not in r.json["items"][0]  # a search shows who, not everything about them
    r = as_nurse.get("/api/v1/patients", query_string={"per_page": 0})
    assert r.status_code == 422 and "per_page" in r.json["fields"]
    assert len(events(db, action="search")) == 1


# --- who may do what ----------------------------------------------------------------------------


def test_manager_cannot_read_the_audit_and_admin_cannot_list_patients(app, db, manager, as_admin, as_nurse):
    desk = TokenClient(app, token_for(db, manager))
    r = desk.get("/api/v1/audit")
    assert r.status_code == 403 and r.json["error"] == "Forbidden"
    assert desk.get("/api/v1/staff").status_code == 200  # managers may see who works here
    assert desk.post("/api/v1/staff", json={}).status_code == 403
    assert as_admin.get("/api/v1/patients").status_code == 403
    assert as_admin.post("/api/v1/patients", json=GOOD).status_code == 403
    assert as_admin.get("/api/v1/audit").status_code == 200
    assert as_nurse.post(f"/api/v1/staff/{manager.id}/tokens", json={"name": "x"}).status_code == 403
    assert db.exec(select(Patient)).all() == []


# --- staff administration and the audit trail ---------------------------------------------------


def test_admin_manages_staff_and_no_secret_is_ever_returned(as_admin, db, nurse):
    new = {"username": "Sam.Nurse", "full_name": "Sam Nurse", "password": "short-pw9", "roles": ["nurse"]}
    r = as_admin.post("/api/v1/staff", json=new)
    assert r.status_code == 422 and "10 characters" in r.json["fields"]["password"]  # config, not schema
    r = as_admin.post("/api/v1/staff", json=new | {"username": "nina.nurse", "password": "long-enough-pw"})
    assert r.status_code == 409 and "username" in r.json["fields"]
    r = as_admin.post("/api/v1/staff", json=new | {"password": "long-enough-pw", "roles": ["wizard"]})
    assert r.status_code == 422 and "roles" in r.json["fields"]
    r = as_admin.post("/api/v1/staff", json=new | {"password": "long-enough-pw"})
    assert r.status_code == 201
    sam = r.json
    assert sam["username"] == "sam.nurse" and sam["roles"] == ["nurse"] and ISO_UTC.match(sam["created_at"])

    r = as_admin.put(f"/api/v1/staff/{sam['id']}", json={"full_name": "Sam Nurse-Lead", "roles": ["nurse", "manager"]})
    assert r.status_code == 200 and r.json["roles"] == ["manager", "nurse"]
    assert events(db, entity="staff_user", entity_id=str(sam["id"]))[-1].action == "role_change"
    cred = as_admin.post(f"/api/v1/staff/{sam['id']}/credentials",
                         json={"kind": "bls", "number": "B-123", "expires_on": "2030-01-31"})
    assert cred.status_code == 201 and ISO_UTC.match(cred.json["verified_at"])
    creds = as_admin.get(f"/api/v1/staff/{sam['id']}/credentials").json["items"]
    assert [c["number"] for c in creds] == ["B-123"]
    listed = as_admin.get("/api/v1/staff").json["items"]
    assert {s["username"] for s in listed} == {"ada.admin", "nina.nurse", "sam.nurse"}
    assert as_admin.get("/api/v1/staff/999999").status_code == 404

    answers = [as_admin.get(f"/api/v1/staff/{sam['id']}"), as_admin.get("/api/v1/staff"),
               as_admin.get(f"/api/v1/staff/{nurse.id}/tokens"), as_admin.get("/api/v1/audit")]
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert "hash" not in text and "long-enough-pw" not in text and "argon2" not in text


def test_audit_api_filters_and_pages(as_admin, as_nurse, admin, nurse, db):
    pid = as_nurse.post("/api/v1/patients", json=GOOD).json["id"]
    for _ in range(3):
        as_nurse.get(f"/api/v1/patients/{pid}")
    r = as_admin.get("/api/v1/audit", query_string={"patient_id": pid, "action": "view", "limit": 2})
    assert r.status_code == 200
    first = r.json
    assert len(first["items"]) == 2 and first["next_before_id"] == first["items"][-1]["id"]
    assert all(e["actor_id"] == nurse.id and ISO_UTC.match(e["at"]) for e in first["items"])
    r = as_admin.get("/api/v1/audit", query_string={"patient_id": pid, "action": "view", "limit": 2,
                                                     "before_id": first["next_before_id"]})
    assert len(r.json["items"]) == 1 and r.json["next_before_id"] is None
    created = as_admin.get("/api/v1/audit", query_string={"action": "create", "entity": "patient"}).json
    assert created["items"][0]["after"]["family_name"] == "Quill"
    for bad in ({"limit": 201}, {"action": "teleport"}, {"actor_id": "me"}):
        r = as_admin.get("/api/v1/audit", query_string=bad)
        assert r.status_code == 422 and set(bad) <= set(r.json["fields"]), bad
