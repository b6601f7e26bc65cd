"""Regulatory paperwork through the app, on both databases: the Spravato REMS form (page, CSV, and the
discharge it holds back), adverse events flagged for reporting, their report (no patient name), the
seriousness criteria, "mark as sent", and who may open any of it."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.auth.models import Credential, StaffUser
from clinic.patients.models import Consent
from clinic.sessions.models import TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent, ChecklistEntry
from clinic.vitals.reports import RemsForm
from tests.conftest import login, make_staff
from tests.integration.conftest import DAY, ready_patient
from tests.integration.test_api import TokenClient, token_for
from tests.integration.test_monitoring import START, Tablet, advance, prepare, visit  # noqa: F401  (fixture)

ALL_CRITERIA = {"nausea_controlled": "1", "escort_present": "1", "instructions_given": "1"}


@pytest.fixture
def iv(request):
    """The IV session of the monitoring tests (their `visit` fixture)."""
    return request.getfixturevalue("visit")


def _rename(db, patient, given="Winifred", family="Oddbody"):
    patient.given_name, patient.family_name = given, family
    db.add(patient)
    db.commit()


@pytest.fixture
def nasal(clinic, db, app):
    """A checked-in esketamine (Spravato) session at 10:00 with nurse.0 (credentials current), the patient
    holding an esketamine consent and a REMS enrolment."""
    clock = app.extensions["clinic.clock"]
    clock.now = START - timedelta(minutes=5)
    nurse = db.exec(select(StaffUser).where(StaffUser.username == "nurse.0")).one()
    for kind in ("nursing_licence", "acls"):
        db.add(Credential(staff_user_id=nurse.id, kind=kind, number="N-1", expires_on=DAY + timedelta(days=300)))
    patient = ready_patient(db, 2)
    _rename(db, patient)
    for kind in ("esketamine", "rems_enrolment"):
        db.add(Consent(patient_id=patient.id, kind=kind, text_version=f"{kind}-1", signed_at=START - timedelta(days=30),
                       expires_at=START + timedelta(days=365)))
    protocol = clinic["protocols"]["esketamine-nasal"]
    course = TreatmentCourse(patient_id=patient.id, protocol_id=protocol.id, prescriber_id=clinic["prescriber"].id,
                             site_id=clinic["site"].id, earliest_start=DAY, planned_sessions=12)
    db.add(course)
    db.commit()
    session = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=clinic["site"].id,
                               chair_id=clinic["chairs"][1].id, number_in_course=1, starts_at=START,
                               ends_at=START + timedelta(minutes=150), status="checked_in", checked_in_at=clock.now)
    db.add(session)
    db.commit()
    return {"session": session, "clock": clock, "nurse": nurse, "patient": patient, "course": course}


def through_monitoring(t: Tablet, clock, *, until_minutes: int = 121) -> None:
    """Prepare, give two devices 5 minutes apart, monitor (vitals and scores at 40 minutes and before
    leaving) until `until_minutes` after the first device."""
    prepare(t)
    assert t.post("interacting", {"benzodiazepines": "1"}).status_code == 302
    advance(t, clock, 5)
    assert t.post("dose", {"amount": "56", "lot_number": "ESK-771"}).status_code == 302
    advance(t, clock, 5)
    assert t.post("dose-events", {"kind": "device"}).status_code == 302
    assert t.post("dose-events", {"kind": "stop", "reason": "both devices given"}).status_code == 302
    advance(t, clock, 35)
    t.post("vitals", {"systolic": 148, "diastolic": 92, "heart_rate": 80, "spo2": 97, "respiratory_rate": 14})
    t.post("scores", {"scale": "CADSS-6", **{f"item{i}": (2 if i < 3 else 0) for i in range(1, 7)}})
    t.post("scores", {"scale": "MOAA/S", "item1": 4})
    advance(t, clock, until_minutes - 43)
    t.post("vitals", {"systolic": 130, "diastolic": 82, "heart_rate": 72, "spo2": 98, "respiratory_rate": 14,
                      "before_discharge": "1"})
    t.post("scores", {"scale": "MOAA/S", "item1": 5})
    t.post("scores", {"scale": "CADSS-6", **{f"item{i}": 0 for i in range(1, 7)}})
    advance(t, clock, 3)


def status(db, session_id: int) -> str:
    return db.get(TreatmentSession, session_id).status


# --- the Spravato REMS form ---------------------------------------------------------------------


def test_a_spravato_session_is_not_discharged_while_the_rems_form_lacks_a_field(client, nasal, db):
    login(client, "nurse.0")
    t = Tablet(client, nasal["session"].id)
    through_monitoring(t, nasal["clock"])
    page = t.page("discharge")
    assert 'name="rems_ready_minutes"' in page and f"/sessions/{t.sid}/rems" in page

    r = t.post("discharge", ALL_CRITERIA)
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and "REMS" in html and "Minutes until ready to leave" in html
    assert status(db, t.sid) == "recovery"
    # An override is for the clinical criteria; it does not fill a regulatory form.
    r = t.post("discharge", ALL_CRITERIA | {"override_reason": "patient insists on leaving, prescriber agrees"},
               json=True)
    assert r.status_code == 409 and "override does not replace" in r.json["message"]
    assert r.json["fields"] == {"rems_ready_minutes": "enter the minutes (REMS form)"}
    assert status(db, t.sid) == "recovery"
    assert db.exec(select(ChecklistEntry).where(ChecklistEntry.item == "rems_ready_minutes")).all() == []

    r = t.post("discharge", ALL_CRITERIA | {"rems_ready_minutes": "90"})
    assert r.status_code == 302, r.get_data(as_text=True)
    row = db.get(TreatmentSession, t.sid)
    assert row.status == "discharged" and row.discharge_override_reason is None
    ready = db.exec(select(ChecklistEntry).where(ChecklistEntry.item == "rems_ready_minutes")).one()
    assert ready.answer == "90"


def test_fewer_than_120_minutes_of_observation_cannot_be_overridden(client, nasal, db):
    login(client, "nurse.0")
    t = Tablet(client, nasal["session"].id)
    through_monitoring(t, nasal["clock"], until_minutes=100)
    r = t.post("discharge", ALL_CRITERIA | {"rems_ready_minutes": "80",
                                            "override_reason": "escort must leave, prescriber informed"})
    assert r.status_code == 409
    assert "Minutes from first device to end of monitoring (100; at least 120 are needed)" in r.get_data(as_text=True)
    assert status(db, t.sid) == "recovery"
    advance(t, nasal["clock"], 21)
    r = t.post("discharge", ALL_CRITERIA | {"rems_ready_minutes": "80"})
    assert r.status_code == 409 and "Blood pressure before leaving" in r.get_data(as_text=True)  # 24 minutes old
    t.post("vitals", {"systolic": 126, "diastolic": 80, "heart_rate": 70, "spo2": 98, "before_discharge": "1"})
    assert t.post("discharge", ALL_CRITERIA | {"rems_ready_minutes": "80"}).status_code == 302
    assert status(db, t.sid) == "discharged"


def test_the_rems_form_prints_and_exports_from_the_discharged_session(client, nasal, db):
    login(client, "nurse.0")
    t = Tablet(client, nasal["session"].id)
    through_monitoring(t, nasal["clock"])
    assert t.post("discharge", ALL_CRITERIA | {"rems_ready_minutes": "90"}).status_code == 302
    advance(t, nasal["clock"], 60)  # printed an hour later: the form still ends at the discharge

    r = client.get(f"/sessions/{t.sid}/rems")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Spravato" in html and "Winifred Oddbody" in html and "ESK-771" in html and 'id="rems-complete"' in html
    assert "mainnav" not in html and "@media print" in html  # a clean document, not the app's page
    assert "121 minutes" in html and "148/92" in html

    r = client.get(f"/sessions/{t.sid}/rems.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == f'attachment; filename="spravato-rems-session-{t.sid}-2027-01-11.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 2 and rows[0] == RemsForm.field_names()
    row = dict(zip(rows[0], rows[1], strict=True))
    assert {
        "patient_name": "Winifred Oddbody", "first_treatment": "yes", "enrolled": "yes", "benzodiazepines": "yes",
        "other_sedatives": "no", "stimulants": "no", "maois": "no", "monitoring_clinician": "Nurse 0",
        "site": "Harbourview", "date": "2027-01-11", "dose": "56", "dose_mg": "56", "lot_number": "ESK-771",
        "total_minutes": "121", "ready_minutes": "90", "vitals_ok_before_dosing": "yes",
        "vitals_ok_before_leaving": "yes", "bp_before_dosing": "128/82", "bp_at_40_minutes": "148/92",
        "bp_before_leaving": "130/82", "sedation": "yes", "dissociation": "yes", "respiratory_depression": "no",
        "other_adverse_events": "no",
    }.items() <= row.items()

    events = db.exec(select(AuditEvent).where(AuditEvent.entity == "treatment_session",
                                              AuditEvent.action.in_(("print", "export")))
                     .order_by(AuditEvent.id)).all()
    assert [(e.action, e.entity_id, e.patient_id) for e in events] == [
        ("print", str(t.sid), nasal["patient"].id), ("export", str(t.sid), nasal["patient"].id)]


def test_there_is_no_rems_form_for_an_iv_session(client, iv):
    login(client, "nurse.0")
    assert client.get(f"/sessions/{iv['session'].id}/rems").status_code == 404
    assert client.get(f"/sessions/{iv['session'].id}/rems.csv").status_code == 404


# --- adverse events -----------------------------------------------------------------------------


def _dosed_iv(client, iv) -> Tablet:
    login(client, "nurse.0")
    t = Tablet(client, iv["session"].id)
    prepare(t)
    advance(t, iv["clock"], 10)
    assert t.post("dose", {"amount": "0.5", "lot_number": "KET-24113"}).status_code == 302
    advance(t, iv["clock"], 20)
    return t


def _ae(t: Tablet, kind: str, severity: str = "mild", **extra) -> int:
    r = t.post("adverse-events", {"kind": kind, "severity": severity, "outcome": "resolved", **extra}, json=True)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.json["id"]


def test_serious_severe_and_policy_kinds_are_flagged_for_reporting(client, iv, db):
    t = _dosed_iv(client, iv)
    ids = {
        "policy": _ae(t, "over_sedation"),  # config.toml [reporting] always_report
        "mild": _ae(t, "nausea"),
        "severe": _ae(t, "headache", "severe"),
        "serious": _ae(t, "hypotension", serious="1"),
    }
    flagged = {name: db.get(AdverseEvent, i).reportable for name, i in ids.items()}
    assert flagged == {"policy": True, "mild": False, "severe": True, "serious": True}
    page = t.page("monitoring")
    assert "/adverse-events/reportable" in page and f"/adverse-events/{ids['policy']}/report" in page

    listing = client.get("/adverse-events/reportable").get_data(as_text=True)
    for name in ("policy", "severe", "serious"):
        assert f"/adverse-events/{ids[name]}/report" in listing
    assert f"/adverse-events/{ids['mild']}/report" not in listing


def test_the_report_carries_the_regulators_fields_and_never_the_patients_name(app, client, iv, db, nurse):
    _rename(db, iv["patient"])
    t = _dosed_iv(client, iv)
    event_id = _ae(t, "over_sedation", "severe", description="MOAA/S 2 at 30 minutes", action_taken="infusion paused")
    html = client.get(f"/adverse-events/{event_id}/report").get_data(as_text=True)
    assert "Winifred" not in html and "Oddbody" not in html
    for field in ("RACE-1", "W.O.", "47 years", "Female", "70 kg", "Over-sedation", "MOAA/S 2 at 30 minutes",
                  "Ketamine hydrochloride injection", "IV infusion", "KET-24113", "35 mg (0.5 mg/kg)",
                  "Treatment-resistant depression", "Nurse 0", "Harbourview Infusion Clinic", "Hospitalisation"):
        assert field in html, field
    assert "mainnav" not in html

    api = TokenClient(app, token_for(db, nurse))
    r = api.get(f"/api/v1/adverse-events/{event_id}/report")
    assert r.status_code == 200
    body = r.json
    assert "Winifred" not in json.dumps(body) and "Oddbody" not in json.dumps(body)
    assert (body["patient"]["identifier"], body["patient"]["initials"]) == ("RACE-1", "W.O.")
    assert (body["patient"]["age_years"], body["patient"]["weight_kg"]) == (47, 70.0)
    assert (body["product"]["route"], body["product"]["lot_number"]) == ("IV infusion", "KET-24113")
    assert body["event"]["seriousness"] is None and body["reportable"] is True
    actions = [(e.action, e.detail) for e in db.exec(select(AuditEvent).where(AuditEvent.entity == "adverse_event",
                                                                          AuditEvent.entity_id == str(event_id)))]
    assert ("print", "adverse event report") in actions and ("export", "adverse event report") in actions


def test_seriousness_is_ticked_on_the_report_and_makes_the_event_serious(client, iv, db):
    t = _dosed_iv(client, iv)
    event_id = _ae(t, "nausea")
    assert db.get(AdverseEvent, event_id).reportable is False
    r = client.post(f"/adverse-events/{event_id}/seriousness",
                    data={"csrf_token": t.token, "criteria": ["hospitalisation", "other"]})
    assert r.status_code == 302
    row = db.get(AdverseEvent, event_id)
    assert (json.loads(row.seriousness_json), row.serious, row.reportable) == (["hospitalisation", "other"], True, True)
    r = client.post(f"/adverse-events/{event_id}/seriousness", data={"csrf_token": t.token, "criteria": ["fainted"]},
                    headers={"Accept": "application/json"})
    assert r.status_code == 422
    html = client.get(f"/adverse-events/{event_id}/report").get_data(as_text=True)
    assert 'value="hospitalisation" checked' in html


def test_mark_as_sent_records_who_and_when_once_and_is_audited(client, iv, db, app):
    t = _dosed_iv(client, iv)
    event_id = _ae(t, "allergic_reaction")
    sent_at = iv["clock"].now
    r = client.post(f"/adverse-events/{event_id}/sent", data={"csrf_token": t.token}, follow_redirects=True)
    assert "Marked as sent" in r.get_data(as_text=True)
    advance(t, iv["clock"], 10)
    r = client.post(f"/adverse-events/{event_id}/sent", data={"csrf_token": t.token}, follow_redirects=True)
    assert "Already marked as sent" in r.get_data(as_text=True)
    other = app.test_client()
    login(other, "dr.pat")
    r = other.post(f"/adverse-events/{event_id}/sent", headers={"X-CSRFToken": Tablet(other, 1).token,
                                                                "Accept": "application/json"})
    assert r.status_code == 200 and r.json["changed"] is False

    row = db.get(AdverseEvent, event_id)
    assert (row.reported_at, row.reported_by_id) == (sent_at, iv["nurse"].id)
    sent = db.exec(select(AuditEvent).where(AuditEvent.entity == "adverse_event", AuditEvent.action == "update",
                                            AuditEvent.detail == "adverse event report sent")).all()
    assert len(sent) == 1 and sent[0].actor_label == "nurse.0"
    assert f"/adverse-events/{event_id}/report" not in client.get("/adverse-events/reportable").get_data(as_text=True)
    html = client.get(f"/adverse-events/{event_id}/report").get_data(as_text=True)
    assert "Sent</strong>" in html and "Mark as sent" not in html
    r = client.post(f"/adverse-events/{event_id}/seriousness", data={"csrf_token": t.token, "criteria": ["other"]},
                    headers={"Accept": "application/json"})
    assert r.status_code == 409 and db.get(AdverseEvent, event_id).seriousness_json is None


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_administrators_cannot_open_reports(app, client, nasal, db, role):
    login(client, "nurse.0")
    t = Tablet(client, nasal["session"].id)
    prepare(t)
    event_id = _ae(t, "allergic_reaction")
    user = make_staff(db, f"x.{role}", role)
    other = app.test_client()
    login(other, user.username)
    for path in (f"/sessions/{t.sid}/rems", f"/sessions/{t.sid}/rems.csv", "/adverse-events/reportable",
                 f"/adverse-events/{event_id}/report"):
        assert other.get(path).status_code == 403, path
    token = Tablet(other, 1).token
    assert other.post(f"/adverse-events/{event_id}/sent", data={"csrf_token": token}).status_code == 403
    api = TokenClient(app, token_for(db, user))
    assert api.get(f"/api/v1/adverse-events/{event_id}/report").status_code == 403
    assert api.post(f"/api/v1/adverse-events/{event_id}/sent").status_code == 403
    assert api.get(f"/api/v1/sessions/{t.sid}/rems").status_code == 403
    assert db.get(AdverseEvent, event_id).reported_at is None


def test_the_api_gives_the_rems_form_and_marks_reports_sent_once(app, client, nasal, db):
    login(client, "nurse.0")
    t = Tablet(client, nasal["session"].id)
    through_monitoring(t, nasal["clock"])
    event_id = _ae(t, "respiratory_depression")
    api = TokenClient(app, token_for(db, nasal["nurse"]))
    r = api.get(f"/api/v1/sessions/{t.sid}/rems")
    assert r.status_code == 200
    assert r.json["final"] is False and r.json["form"]["respiratory_depression"] is True
    assert r.json["missing"] == ["Minutes until ready to leave without the 2-hour rule (enter it on the discharge "
                                 "form)"]
    assert [i["event_id"] for i in api.get("/api/v1/adverse-events/reportable").json["items"]] == [event_id]
    first = api.post(f"/api/v1/adverse-events/{event_id}/sent")
    second = api.post(f"/api/v1/adverse-events/{event_id}/sent")
    assert (first.json["changed"], second.json["changed"]) == (True, False)
    assert first.json["reported_at"] == second.json["reported_at"]
    assert api.get("/api/v1/adverse-events/reportable").json["items"] == []
