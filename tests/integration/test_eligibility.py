"""Eligibility evaluations: recorded by prescribers, audited, refused when incoherent, and read by booking."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.patients.models import Consent, EligibilityEvaluation, Patient, PatientFlag
from clinic.sessions.booking import readiness_problems
from clinic.sessions.protocols import seed_protocols
from tests.conftest import csrf_token, login

GOOD = {"diagnosis": "Treatment-resistant depression", "prior_treatments": "Sertraline, venlafaxine, CBT",
        "psychiatric_history": "MDD since 2012", "substance_screen_score": "0", "medical_history": "Asthma",
        "interacting_medications": ["benzodiazepines"], "other_medications": "Sertraline 100 mg daily",
        "baseline_systolic": "128", "baseline_diastolic": "82", "decision": "eligible",
        "reasons": "Meets criteria; risks and benefits discussed"}


@pytest.fixture
def patient(db) -> Patient:
    p = Patient(mrn="EL-1", given_name="Ivy", family_name="Quill", date_of_birth=date(1984, 5, 6), sex="female")
    db.add(p)
    db.commit()
    return p


def post_form(client, patient, **changes):
    data = GOOD | changes
    data = {k: v for k, v in data.items() if v is not None}
    data["csrf_token"] = csrf_token(client, f"/patients/{patient.id}")
    return client.post(f"/patients/{patient.id}/eligibility/new", data=data)


def test_prescriber_records_an_evaluation_and_it_is_audited(client, prescriber, patient, db):
    login(client, "pat.prescriber")
    r = post_form(client, patient)
    assert r.status_code == 302 and r.headers["Location"].endswith("#eligibility")
    ev = db.exec(select(EligibilityEvaluation)).one()
    assert ev.decision == "eligible" and ev.prescriber_id == prescriber.id
    assert (ev.baseline_systolic, ev.baseline_diastolic) == (128, 82)
    assert ev.valid_until == datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date() + timedelta(days=180)
    assert "Psychiatric history" in ev.medical_history and "Benzodiazepines: yes" in ev.current_medications
    event = db.exec(select(AuditEvent).where(AuditEvent.entity == "eligibility_evaluation")).one()
    assert event.action == "create" and event.patient_id == patient.id and event.actor_label == "pat.prescriber"
    assert json.loads(event.after_json)["interacting_medications"] == ["benzodiazepines"]
    assert db.exec(select(PatientFlag)).all() == []  # DAST-10 0 and no history: no flag
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert 'id="eligibility"' in page and "Eligible" in page and "Record a new evaluation" in page
    history = client.get(f"/patients/{patient.id}/eligibility").get_data(as_text=True)
    assert "Takes: Benzodiazepines" in history and "MDD since 2012" in history and "Asthma" in history


def test_substance_use_and_psychosis_histories_open_flags_once(client, prescriber, patient, db):
    login(client, "pat.prescriber")
    r = post_form(client, patient, substance_screen_score="4", psychosis_history="true",
                  psychosis_details="One episode in 2015", decision="deferred", reasons="Re-evaluate in 3 months")
    assert r.status_code == 302
    flags = db.exec(select(PatientFlag).order_by(PatientFlag.kind)).all()
    assert [f.kind for f in flags] == ["psychosis_history", "substance_use"]
    assert all(f.cleared_at is None and f.set_by_id == prescriber.id for f in flags)
    audited = db.exec(select(AuditEvent).where(AuditEvent.entity == "patient_flag")).all()
    assert len(audited) == 2 and all("eligibility evaluation" in e.detail for e in audited)
    # A second evaluation with the same history does not open a second flag of either kind.
    r = post_form(client, patient, substance_use_history="Cannabis at weekends", psychosis_history="true",
                  decision="deferred", reasons="Still using")
    assert r.status_code == 302
    assert len(db.exec(select(PatientFlag)).all()) == 2
    # ... and the flag shows wherever the patient appears.
    assert "Substance-use history" in client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "Substance use" in client.get("/patients?q=quill").get_data(as_text=True)


def test_eligible_despite_a_contraindication_needs_reasons_that_address_it(client, prescriber, patient, db):
    login(client, "pat.prescriber")
    r = post_form(client, patient, contraindications=["uncontrolled_hypertension"], substance_screen_score="5")
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'id="e-reasons"' in html and "uncontrolled hypertension" in html
    assert 'value="Treatment-resistant depression"' in html  # what was typed is kept
    assert db.exec(select(EligibilityEvaluation)).all() == []
    assert db.exec(select(PatientFlag)).all() == []  # nothing half-saved
    r = post_form(client, patient, contraindications=["uncontrolled_hypertension"],
                  reasons="Hypertension now controlled on amlodipine; 128/82 today")
    assert r.status_code == 302
    assert json.loads(db.exec(select(EligibilityEvaluation)).one().contraindications_json) == [
        "uncontrolled_hypertension"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"substance_screen_score": "11"}, "substance_screen_score"),
    ({"baseline_systolic": "400"}, "baseline_systolic"),
    ({"baseline_diastolic": "130", "baseline_systolic": "120"}, "baseline_diastolic"),
    ({"baseline_systolic": None, "baseline_diastolic": None}, "baseline_systolic"),
    ({"decision": "maybe"}, "decision"),
    ({"diagnosis": ""}, "diagnosis"),
    ({"contraindications": ["gout"]}, "contraindications"),
    ({"interacting_medications": ["antihistamines"]}, "interacting_medications"),
    ({"valid_until": "2000-01-01"}, "valid_until"),
])
def test_bad_input_names_the_field_and_saves_nothing(client, prescriber, patient, db, changes, field):
    login(client, "pat.prescriber")
    r = post_form(client, patient, **changes)
    assert r.status_code == 422
    assert f'id="e-{field}"' in r.get_data(as_text=True)
    assert db.exec(select(EligibilityEvaluation)).all() == []


def test_a_nurse_may_read_evaluations_but_not_record_one(client, nurse, prescriber, patient, db):
    login(client, "pat.prescriber")
    post_form(client, patient)
    login(client, "nina.nurse")
    assert client.get(f"/patients/{patient.id}/eligibility").status_code == 200
    assert client.get(f"/patients/{patient.id}/eligibility/new").status_code == 403
    r = post_form(client, patient, reasons="Nurse trying")
    assert r.status_code == 403
    assert len(db.exec(select(EligibilityEvaluation)).all()) == 1
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert 'id="eligibility"' in page and "Record a new evaluation" not in page
    r = client.post(f"/api/v1/patients/{patient.id}/eligibility", json={"diagnosis": "x", "decision": "deferred",
                                                                         "reasons": "none"},
                    headers={"X-CSRFToken": csrf_token(client, "/")})
    assert r.status_code == 403


def test_a_manager_sees_no_eligibility_detail(client, manager, patient):
    login(client, "max.manager")
    assert client.get(f"/patients/{patient.id}/eligibility").status_code == 403
    assert 'id="eligibility"' not in client.get(f"/patients/{patient.id}").get_data(as_text=True)


def test_an_expired_evaluation_shows_as_expired_and_blocks_ordering(client, prescriber, patient, db, app):
    protocols = seed_protocols(db)
    db.commit()
    login(client, "pat.prescriber")
    post_form(client, patient, valid_until=(date.today() + timedelta(days=30)).isoformat())
    now = datetime.now(UTC)
    db.add(Consent(patient_id=patient.id, kind="ketamine", text_version="K1", signed_at=now - timedelta(days=1),
                   expires_at=now + timedelta(days=365)))
    db.commit()
    iv = protocols["iv-induction"]
    assert readiness_problems(db, patient.id, iv, now=now) == []  # booking reads what was recorded
    later = now + timedelta(days=40)
    assert any("expired" in p for p in readiness_problems(db, patient.id, iv, now=later))
    app.extensions["clinic.clock"].now = later
    login(client, "pat.prescriber")
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "✕ Expired" in page


def test_a_later_evaluation_replaces_the_earlier_for_booking(client, prescriber, patient, db):
    login(client, "pat.prescriber")
    post_form(client, patient)
    post_form(client, patient, decision="not_eligible", contraindications=["psychosis_history"],
              reasons="Schizoaffective disorder")
    iv = seed_protocols(db)["iv-induction"]
    db.commit()
    problems = readiness_problems(db, patient.id, iv, now=datetime.now(UTC) + timedelta(minutes=1))
    assert "the latest eligibility evaluation found the patient not eligible" in problems


def test_the_api_records_and_lists_evaluations(client, prescriber, patient, db):
    login(client, "pat.prescriber")
    headers = {"X-CSRFToken": csrf_token(client, "/")}
    choices = client.get("/api/v1/eligibility/choices").json
    assert len(choices["contraindications"]) == 12 and choices["valid_days"] == 180
    body = {"diagnosis": "PTSD", "decision": "eligible", "reasons": "Pregnancy test negative today",
            "contraindications": ["pregnancy"], "substance_screen_score": 3, "baseline_systolic": 120,
            "baseline_diastolic": 80, "interacting_medications": ["opioids"]}
    r = client.post(f"/api/v1/patients/{patient.id}/eligibility", json=body, headers=headers)
    assert r.status_code == 201, r.json
    assert [f["kind"] for f in r.json["flags_set"]] == ["substance_use"]
    assert r.json["evaluation"]["interacting_medications"]["opioids"] is True
    assert r.json["evaluation"]["contraindications"] == [{"code": "pregnancy", "label": "Pregnancy"}]
    bad = client.post(f"/api/v1/patients/{patient.id}/eligibility", json=body | {"reasons": "Fine",
                                                                                  "baseline_diastolic": 250},
                      headers=headers)
    assert bad.status_code == 422 and "baseline_diastolic" in bad.json["fields"]
    bad = client.post(f"/api/v1/patients/{patient.id}/eligibility", json=body | {"reasons": "Fine"}, headers=headers)
    assert bad.status_code == 422 and "reasons" in bad.json["fields"]
    items = client.get(f"/api/v1/patients/{patient.id}/eligibility").json["items"]
    assert len(items) == 1 and items[0]["status"] == "eligible"
    assert client.post("/api/v1/patients/999999/eligibility", json=body, headers=headers).status_code == 404


def test_the_form_offers_the_clinics_list_and_asks_each_interacting_class(client, prescriber, patient, settings):
    login(client, "pat.prescriber")
    html = client.get(f"/patients/{patient.id}/eligibility/new").get_data(as_text=True)
    assert html.count('name="contraindications"') == len(settings.eligibility.contraindications)
    assert "Hypersensitivity to ketamine or esketamine" in html
    assert html.count('name="interacting_medications"') == 5 and "MAOIs" in html
    assert 'name="valid_until" type="date" value="20' in html  # today + valid_days, filled in
