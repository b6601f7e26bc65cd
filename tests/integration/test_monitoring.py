"""Session monitoring at the chairside: check-in to discharge, both tiers of checks on every number,
server-side alerts, idempotent entries, amendments, the dosing gates and the discharge criteria."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.auth.models import Credential, StaffUser
from clinic.outcomes.models import ScaleResponse
from clinic.patients.models import Consent
from clinic.sessions.models import TreatmentCourse, TreatmentSession
from clinic.vitals.models import Alert, ChecklistEntry, DoseAdministration, VitalsReading
from tests.conftest import csrf_token, login
from tests.integration.conftest import DAY, NY, ready_patient

START = datetime.combine(DAY, time(10), NY).astimezone(UTC)
KEYS = iter(f"k{i:06d}abcdef" for i in range(100_000))


@pytest.fixture
def visit(clinic, db, app):
    """A checked-in IV induction session at 10:00 with nurse.0 (credentials current) signed in."""
    clock = app.extensions["clinic.clock"]
    clock.now = START - timedelta(minutes=5)
    nurse = db.exec(select(StaffUser).where(StaffUser.username == "nurse.0")).one()
    for kind in ("nursing_licence", "acls"):
        db.add(Credential(staff_user_id=nurse.id, kind=kind, number="N-1", expires_on=DAY + timedelta(days=300)))
    patient = ready_patient(db, 1)
    protocol = clinic["protocols"]["iv-induction"]
    course = TreatmentCourse(patient_id=patient.id, protocol_id=protocol.id, prescriber_id=clinic["prescriber"].id,
                             site_id=clinic["site"].id, earliest_start=DAY, planned_sessions=6)
    db.add(course)
    db.commit()
    session = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=clinic["site"].id,
                               chair_id=clinic["chairs"][0].id, number_in_course=1, starts_at=START,
                               ends_at=START + timedelta(minutes=100), status="checked_in", checked_in_at=clock.now)
    db.add(session)
    db.commit()
    return {"session": session, "clock": clock, "nurse": nurse, "patient": patient, "course": course}


class Tablet:
    def __init__(self, client, session_id: int):
        self.client, self.sid = client, session_id
        self.token = csrf_token(client, "/")

    def post(self, path: str, data: dict, *, json: bool = False, key: str | None = None):
        body = {"csrf_token": self.token, "client_key": key or next(KEYS)} | data
        headers = {"Accept": "application/json"} if json else {}
        return self.client.post(f"/sessions/{self.sid}/{path}", data=body, headers=headers)

    def page(self, step: str | None = None) -> str:
        return self.client.get(f"/sessions/{self.sid}/monitor" + (f"?step={step}" if step else "")).get_data(
            as_text=True)


def advance(t: Tablet, clock, minutes: int) -> None:
    """Let time pass while the nurse keeps using the tablet (so the idle lock does not fall)."""
    while minutes > 0:
        step = min(10, minutes)
        clock.now += timedelta(minutes=step)
        t.client.get("/")
        minutes -= step


def prepare(t: Tablet, *, bp=(128, 82)) -> None:
    for item in ("consent_current", "escort_confirmed", "fasting_confirmed"):
        assert t.post("checklist", {"item": item, "answer": "yes"}).status_code == 302
    assert t.post("interacting", {}).status_code == 302
    assert t.post("weight", {"weight_kg": "70"}).status_code == 302
    assert t.post("vitals", {"systolic": bp[0], "diastolic": bp[1], "heart_rate": 72, "spo2": 98,
                             "respiratory_rate": 14, "temperature_c": "36.8"}).status_code == 302
    assert t.post("scores", {"scale": "CADSS-6", **{f"item{i}": 0 for i in range(1, 7)}}).status_code == 302
    assert t.post("scores", {"scale": "MOAA/S", "item1": 5}).status_code == 302
    for scale, n in (("PHQ-9", 9), ("GAD-7", 7)):  # the course's symptom scales, due before every dose
        assert t.post("scores", {"scale": scale, **{f"item{i}": 1 for i in range(1, n)}, f"item{n}": 0}
                      ).status_code == 302


def test_an_iv_session_from_check_in_to_discharge(client, visit, db, app):
    clock = visit["clock"]
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    assert "Dosing cannot start yet" in t.page()
    prepare(t)
    assert "Dosing cannot start yet" not in t.page()
    advance(t, clock, 10)
    r = t.post("dose", {"amount": "0.5", "concentration_mg_per_ml": "1", "lot_number": "KET-24113"})
    assert r.status_code == 302
    dose = db.exec(select(DoseAdministration)).one()
    assert (dose.dose_mg, dose.mg_per_kg, dose.rate_ml_per_h) == (35.0, 0.5, 52.5)
    assert db.get(TreatmentSession, visit["session"].id).status == "dosing"

    advance(t, clock, 20)
    t.post("vitals", {"systolic": 185, "diastolic": 112, "heart_rate": 88, "spo2": 97, "respiratory_rate": 14})
    first = db.exec(select(Alert).where(Alert.kind == "bp_high")).one()
    assert first.priority == "medium" and "185" in first.message
    advance(t, clock, 5)
    t.post("vitals", {"systolic": 188, "diastolic": 114, "heart_rate": 90, "spo2": 97, "respiratory_rate": 14})
    sustained = db.exec(select(Alert).where(Alert.kind == "bp_high_sustained")).one()
    assert sustained.priority == "high"
    page = t.page("dosing")
    assert "▲▲ HIGH" in page and "Acknowledge" in page
    r = client.post(f"/alerts/{sustained.id}/acknowledge", data={"csrf_token": t.token, "action": "pause_or_slow",
                                                                 "note": "rate halved", "session_id": t.sid})
    assert r.status_code == 302
    assert db.get(Alert, sustained.id).action == "pause_or_slow"
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "acknowledge")).one().actor_label == "nurse.0"

    advance(t, clock, 15)
    assert t.post("dose-events", {"kind": "stop", "reason": "infusion complete"}).status_code == 302
    assert db.get(TreatmentSession, t.sid).status == "recovery"
    advance(t, clock, 32)
    t.post("vitals", {"systolic": 132, "diastolic": 84, "heart_rate": 74, "spo2": 98, "respiratory_rate": 14,
                      "before_discharge": "1"})
    t.post("scores", {"scale": "MOAA/S", "item1": 5})
    t.post("scores", {"scale": "CADSS-6", **{f"item{i}": (1 if i == 1 else 0) for i in range(1, 7)}})
    r = t.post("discharge", {"nausea_controlled": "1", "escort_present": "1", "instructions_given": "1"})
    assert r.status_code == 302, r.get_data(as_text=True)
    row = db.get(TreatmentSession, t.sid)
    assert row.status == "discharged" and row.discharge_override_reason is None


def test_implausible_values_are_refused_at_the_field_and_the_form_is_kept(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    r = t.post("vitals", {"systolic": 30, "diastolic": 20, "heart_rate": 72, "spo2": 98})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'id="vitals-systolic-e"' in html and "mmHg" in html
    assert 'value="72"' in html and 'value="98"' in html
    r = t.post("vitals", {"systolic": 120, "diastolic": 130})
    assert r.status_code == 422 and "below" in r.get_data(as_text=True).lower()
    assert db.exec(select(VitalsReading)).all() == []


def test_a_resent_entry_is_saved_once(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    values = {"systolic": 130, "diastolic": 80, "heart_rate": 70}
    first = t.post("vitals", values, json=True, key="resend-key-0001")
    second = t.post("vitals", values, json=True, key="resend-key-0001")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json["id"] == second.json["id"]
    assert len(db.exec(select(VitalsReading)).all()) == 1


def test_an_entry_sent_after_the_idle_lock_is_not_lost_or_doubled(client, visit, db, app):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    visit["clock"].now += timedelta(minutes=16)
    r = t.post("vitals", {"systolic": 131, "diastolic": 81}, json=True, key="after-lock-0001")
    assert r.status_code == 401 and r.json["error"] == "SessionExpired"
    assert db.exec(select(VitalsReading)).all() == []
    login(client, "nurse.0")
    t.token = csrf_token(client, "/")
    for _ in range(2):
        t.post("vitals", {"systolic": 131, "diastolic": 81}, json=True, key="after-lock-0001")
    assert [r.systolic for r in db.exec(select(VitalsReading)).all()] == [131]


def test_measured_time_is_kept_and_checked(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    earlier = (visit["clock"].now - timedelta(minutes=8)).astimezone(NY).strftime("%Y-%m-%dT%H:%M")
    assert t.post("vitals", {"systolic": 125, "diastolic": 80, "measured_at": earlier}).status_code == 302
    reading = db.exec(select(VitalsReading)).one()
    assert reading.measured_at == visit["clock"].now.replace(second=0, microsecond=0) - timedelta(minutes=8) or \
        abs((reading.measured_at - (visit["clock"].now - timedelta(minutes=8))).total_seconds()) < 60
    assert reading.recorded_at == visit["clock"].now
    future = (visit["clock"].now + timedelta(minutes=30)).astimezone(NY).strftime("%Y-%m-%dT%H:%M")
    r = t.post("vitals", {"systolic": 125, "diastolic": 80, "measured_at": future})
    assert r.status_code == 422 and "future" in r.get_data(as_text=True)


def test_a_correction_points_to_the_original_and_both_stay(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    t.post("vitals", {"systolic": 210, "diastolic": 80})
    original = db.exec(select(VitalsReading)).one()
    r = t.post(f"vitals/{original.id}/amend", {"systolic": 120, "diastolic": 80, "reason": "typed 210 for 120"})
    assert r.status_code == 302
    rows = db.exec(select(VitalsReading).order_by(VitalsReading.id)).all()
    assert [(x.systolic, x.amends_id) for x in rows] == [(210, None), (120, original.id)]
    assert rows[1].amendment_reason == "typed 210 for 120"
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "amend")).one()
    assert '"systolic": 210' in event.before_json and '"systolic": 120' in event.after_json
    r = t.post(f"vitals/{original.id}/amend", {"systolic": 121, "diastolic": 80, "reason": "again"})
    assert r.status_code == 409


def test_high_predose_pressure_holds_dosing_until_a_prescriber_decides(client, visit, db, app):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    prepare(t, bp=(152, 94))
    assert db.exec(select(Alert).where(Alert.kind == "predose_bp_high")).one().recipient_id == \
        visit["course"].prescriber_id
    r = t.post("dose", {"amount": "0.5", "lot_number": "L1"})
    assert r.status_code == 409 and "prescriber" in r.get_data(as_text=True)
    assert t.post("decision", {"decision": "dose"}).status_code == 403
    prescriber = app.test_client()
    login(prescriber, "dr.pat")
    p = Tablet(prescriber, t.sid)
    assert p.post("decision", {"decision": "dose", "note": "BP acceptable for this patient"}).status_code == 302
    decision = db.exec(select(ChecklistEntry).where(ChecklistEntry.item == "bp_gate_decision")).one()
    assert decision.decided_by_id == visit["course"].prescriber_id
    assert t.post("dose", {"amount": "0.5", "lot_number": "L1"}).status_code == 302


def test_dosing_is_refused_with_an_expired_credential_or_lapsed_consent(client, visit, db):
    acls = db.exec(select(Credential).where(Credential.kind == "acls")).one()
    acls.expires_on = date(2020, 1, 1)
    db.add(acls)
    consent = db.exec(select(Consent)).one()
    consent.expires_at = visit["clock"].now - timedelta(days=1)
    db.add(consent)
    db.commit()
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    prepare(t)
    r = t.post("dose", {"amount": "0.5", "lot_number": "L1"})
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and "ACLS" in html and "onsent" in html
    assert db.exec(select(DoseAdministration)).all() == []


def test_a_dose_outside_the_protocol_range_is_refused_at_the_field(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    prepare(t)
    r = t.post("dose", {"amount": "2", "lot_number": "L1"})
    assert r.status_code == 422 and "0.75" in r.get_data(as_text=True)


def test_deep_sedation_raises_a_high_alert(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    t.post("scores", {"scale": "MOAA/S", "item1": 2})
    alert = db.exec(select(Alert).where(Alert.kind == "sedation_deep")).one()
    assert alert.priority == "high"
    r = t.post("scores", {"scale": "CADSS-6", "item1": 5, **{f"item{i}": 0 for i in range(2, 7)}})
    assert r.status_code == 422 and db.exec(select(ScaleResponse).where(ScaleResponse.scale == "CADSS-6")).all() == []


def test_discharge_before_the_criteria_needs_an_override_and_is_flagged(client, visit, db):
    clock = visit["clock"]
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    prepare(t)
    advance(t, clock, 10)
    t.post("dose", {"amount": "0.5", "lot_number": "L1"})
    advance(t, clock, 40)
    t.post("dose-events", {"kind": "stop", "reason": "complete"})
    advance(t, clock, 5)
    r = t.post("discharge", {"nausea_controlled": "1", "escort_present": "1", "instructions_given": "1"})
    assert r.status_code == 409 and "Not ready for discharge" in r.get_data(as_text=True)
    assert db.get(TreatmentSession, t.sid).status == "recovery"
    r = t.post("discharge", {"nausea_controlled": "1", "escort_present": "1", "instructions_given": "1",
                             "override_reason": "family emergency, escort present, prescriber informed"})
    assert r.status_code == 302
    assert db.get(TreatmentSession, t.sid).discharge_override_reason.startswith("family emergency")
    assert db.exec(select(Alert).where(Alert.kind == "discharge_override")).one()


def test_overdue_vitals_are_raised_by_the_sweeper_with_no_request(client, visit, db, engine, settings):
    from clinic import jobs

    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    prepare(t)
    advance(t, visit["clock"], 10)
    t.post("dose", {"amount": "0.5", "lot_number": "L1"})
    later = visit["clock"].now + timedelta(minutes=10 + settings.vitals.overdue_grace_minutes + 2)
    assert jobs.sweep_overdue_checks(engine, settings, now=later) >= 1
    alert = db.exec(select(Alert).where(Alert.kind == "vitals_overdue")).one()
    assert alert.priority == "medium" and alert.session_id == t.sid
    assert jobs.sweep_overdue_checks(engine, settings, now=later + timedelta(seconds=30)) == 0


def test_open_alerts_of_the_site_show_on_other_tablets(client, visit, db, app):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    t.post("scores", {"scale": "MOAA/S", "item1": 1})
    other = app.test_client()
    login(other, "nurse.1")
    board = other.get(f"/board?site={visit['session'].site_id}&day={DAY.isoformat()}").get_data(as_text=True)
    assert re.search(r"MOAA/S|sedation", board, re.I)


def test_the_api_records_vitals_idempotently_and_reports_the_state(client, visit, db):
    login(client, "nurse.0")
    h = {"X-CSRFToken": csrf_token(client, "/")}
    sid = visit["session"].id
    body = {"client_key": "api-vitals-0001", "systolic": 150, "diastolic": 95, "heart_rate": 80}
    first = client.post(f"/api/v1/sessions/{sid}/vitals", json=body, headers=h)
    again = client.post(f"/api/v1/sessions/{sid}/vitals", json=body, headers=h)
    assert (first.status_code, again.status_code) == (201, 200) and first.json["id"] == again.json["id"]
    assert first.json["alerts"][0]["kind"] == "predose_bp_high"
    bad = client.post(f"/api/v1/sessions/{sid}/vitals", json={"client_key": "api-vitals-0002", "spo2": 120},
                      headers=h)
    assert bad.status_code == 422 and "spo2" in bad.json["fields"]
    state = client.get(f"/api/v1/sessions/{sid}/monitor").json
    assert state["status"] == "checked_in" and any("Weight" in g for g in state["dosing_gate"])
    alerts = client.get(f"/api/v1/sites/{visit['session'].site_id}/alerts").json
    alert_id = alerts[0]["id"]
    r = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"action": "prescriber_called"}, headers=h)
    assert r.status_code == 200 and r.json["action"] == "prescriber_called"


def test_the_course_symptom_scale_is_due_before_dosing(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    for item in ("consent_current", "escort_confirmed", "fasting_confirmed"):
        t.post("checklist", {"item": item, "answer": "yes"})
    t.post("interacting", {})
    t.post("weight", {"weight_kg": "70"})
    t.post("vitals", {"systolic": 120, "diastolic": 80, "heart_rate": 70, "spo2": 98, "respiratory_rate": 14})
    t.post("scores", {"scale": "CADSS-6", **{f"item{i}": 0 for i in range(1, 7)}})
    t.post("scores", {"scale": "MOAA/S", "item1": 5})
    page = t.page()
    assert "PHQ-9 (depression) — due before this session" in page and "Symptom scale (when due): not recorded" in page
    r = t.post("dose", {"amount": "0.5", "lot_number": "L1"})
    assert r.status_code == 409
    t.post("scores", {"scale": "PHQ-9", **{f"item{i}": 2 for i in range(1, 10)}})
    t.post("scores", {"scale": "GAD-7", **{f"item{i}": 2 for i in range(1, 8)}})
    phq9 = db.exec(select(ScaleResponse).where(ScaleResponse.scale == "PHQ-9")).one()
    assert phq9.total == 18
    assert db.exec(select(Alert).where(Alert.kind == "phq9_item9")).one().priority == "high"
    assert t.post("dose", {"amount": "0.5", "lot_number": "L1"}).status_code == 302


def test_the_header_and_alerts_refresh_on_their_own_and_the_full_cadss_is_offered(client, visit, db):
    login(client, "nurse.0")
    t = Tablet(client, visit["session"].id)
    bar = client.get(f"/sessions/{t.sid}/monitor/bar", headers={"X-Background": "1"}).get_data(as_text=True)
    assert 'id="session-bar"' in bar and "<html" not in bar
    alerts = client.get(f"/sessions/{t.sid}/monitor/alerts", headers={"X-Background": "1"}).get_data(as_text=True)
    assert 'id="alerts"' in alerts
    row = db.get(TreatmentSession, t.sid)
    row.status, row.dosing_started_at = "dosing", visit["clock"].now
    db.add(row)
    db.commit()
    assert "Full CADSS (23 items)" in t.page("monitoring")
    assert t.post("scores", {"scale": "CADSS", **{f"item{i}": 1 for i in range(1, 24)}}).status_code == 302
    assert db.exec(select(ScaleResponse).where(ScaleResponse.scale == "CADSS")).one().total == 23
