"""Patients: register, search, view, change, flags and consents — each audited, bad input refused."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.db import utcnow
from clinic.patients.models import Consent, Patient, PatientFlag, WeightMeasurement
from tests.conftest import csrf_token, login

GOOD = {"given_name": "Ivy", "family_name": "Quill", "date_of_birth": "1984-05-06", "sex": "female",
        "phone": "555-0101", "email": "ivy@example.org", "allergies": "NKDA", "weight_kg": "72.5"}


def register(client, **changes):
    data = GOOD | changes | {"csrf_token": csrf_token(client, "/patients/new")}
    return client.post("/patients/new", data=data)


def test_nurse_registers_a_patient_and_it_is_audited(client, nurse, db):
    login(client, "nina.nurse")
    r = register(client)
    assert r.status_code == 302
    patient = db.exec(select(Patient)).one()
    assert patient.mrn == f"CS-{patient.id:06d}"
    assert db.exec(select(WeightMeasurement)).one().weight_kg == 72.5
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "create", AuditEvent.entity == "patient")).one()
    assert event.actor_label == "nina.nurse" and event.patient_id == patient.id
    assert json.loads(event.after_json)["family_name"] == "Quill"
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Quill, Ivy" in page and "No consent on file" in page


def test_bad_input_names_the_field_and_keeps_the_rest(client, nurse, db):
    login(client, "nina.nurse")
    r = register(client, email="not-an-email", date_of_birth="2999-01-01", family_name="")
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'id="e-email"' in html and 'id="e-date_of_birth"' in html and 'id="e-family_name"' in html
    assert 'value="Ivy"' in html and 'value="555-0101"' in html  # what was typed is still there
    assert db.exec(select(Patient)).all() == []


def test_implausible_weight_is_refused(client, nurse, db):
    login(client, "nina.nurse")
    r = register(client, weight_kg="7")
    assert r.status_code == 422 and 'id="e-weight_kg"' in r.get_data(as_text=True)
    assert db.exec(select(Patient)).all() == []


def test_duplicate_patient_is_refused_with_the_existing_record_named(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    r = register(client, given_name="ivy", family_name="QUILL")
    assert r.status_code == 409 or r.status_code == 422
    assert "already registered as CS-" in r.get_data(as_text=True)
    assert len(db.exec(select(Patient)).all()) == 1


def test_search_by_name_mrn_and_date_of_birth(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    register(client, given_name="Otto", family_name="Brand", date_of_birth="1970-01-02", email="o@example.org")
    mrn = db.exec(select(Patient.mrn).where(Patient.family_name == "Brand")).one()
    assert "Brand, Otto" in client.get("/patients?q=bra").get_data(as_text=True)
    page = client.get("/patients?q=quill").get_data(as_text=True)
    assert "Quill, Ivy" in page and "Brand" not in page
    assert "Brand, Otto" in client.get(f"/patients?q={mrn}").get_data(as_text=True)
    page = client.get("/patients?q=1984-05-06").get_data(as_text=True)
    assert "Quill" in page and "Brand" not in page
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "search")).first() is not None


def test_viewing_a_patient_is_audited(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    client.get(f"/patients/{patient.id}")
    views = db.exec(select(AuditEvent).where(AuditEvent.action == "view", AuditEvent.patient_id == patient.id)).all()
    assert len(views) >= 1 and views[-1].actor_label == "nina.nurse"


def test_edit_records_before_and_after_and_refuses_a_stale_version(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    form = GOOD | {"row_version": "1", "phone": "555-0199", "csrf_token": csrf_token(client, "/patients/new")}
    form.pop("weight_kg")
    assert client.post(f"/patients/{patient.id}/edit", data=form).status_code == 302
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "update")).one()
    assert json.loads(event.before_json)["phone"] == "555-0101"
    assert json.loads(event.after_json)["phone"] == "555-0199"
    stale = form | {"phone": "555-0000"}  # still says version 1
    r = client.post(f"/patients/{patient.id}/edit", data=stale)
    assert r.status_code == 409 and "Someone else changed this patient" in r.get_data(as_text=True)
    db.expire_all()
    assert db.get(Patient, patient.id).phone == "555-0199"


def test_flags_show_wherever_the_patient_appears(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    token = csrf_token(client, f"/patients/{patient.id}")
    client.post(f"/patients/{patient.id}/flags", data={"kind": "substance_use", "note": "DAST-10 4",
                                                       "csrf_token": token})
    assert "Substance-use history" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Substance use" in client.get("/patients?q=quill").get_data(as_text=True)
    flag = db.exec(select(PatientFlag)).one()
    client.post(f"/patients/flags/{flag.id}/clear", data={"reason": "entered in error", "patient_id": patient.id,
                                                          "csrf_token": token})
    db.expire_all()
    assert db.get(PatientFlag, flag.id).cleared_at is not None


def test_consent_status_current_and_expired(client, nurse, db, app):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    token = csrf_token(client, f"/patients/{patient.id}")
    today = utcnow().date()
    r = client.post(f"/patients/{patient.id}/consents", data={
        "kind": "ketamine", "text_version": "KET-2026.1", "signed_on": (today - timedelta(days=10)).isoformat(),
        "expires_on": (today + timedelta(days=355)).isoformat(), "csrf_token": token})
    assert r.status_code == 302
    assert "✓ Current" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    consent = db.exec(select(Consent)).one()
    r = client.post(f"/patients/consents/{consent.id}/revoke", data={"reason": "", "patient_id": patient.id,
                                                                      "csrf_token": token}, follow_redirects=True)
    assert "Consent not revoked" in r.get_data(as_text=True)
    app.extensions["clinic.clock"].now = utcnow() + timedelta(days=400)
    login(client, "nina.nurse")
    assert "✕ Expired" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert db.exec(select(Consent)).one().text_version == "KET-2026.1"


def test_consent_signed_in_the_future_is_refused(client, nurse, db):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    token = csrf_token(client, f"/patients/{patient.id}")
    r = client.post(f"/patients/{patient.id}/consents", data={
        "kind": "ketamine", "text_version": "v1", "signed_on": "2999-01-01", "csrf_token": token},
        follow_redirects=True)
    assert "cannot be in the future" in r.get_data(as_text=True) or "in the future" in r.get_data(as_text=True)
    assert db.exec(select(Consent)).all() == []


def test_manager_sees_demographics_but_cannot_set_clinical_flags(client, manager, nurse, db):
    login(client, "nina.nurse")
    register(client)
    patient = db.exec(select(Patient)).one()
    login(client, "max.manager")
    assert client.get(f"/patients/{patient.id}").status_code == 200
    token = csrf_token(client, f"/patients/{patient.id}")
    r = client.post(f"/patients/{patient.id}/flags", data={"kind": "other", "csrf_token": token})
    assert r.status_code == 403
