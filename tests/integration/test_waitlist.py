"""The waitlist: adding referred patients, the order they wait in, status changes, and who could take a
freed slot — with managers seeing ready / not ready but no clinical detail."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.patients.models import Consent, EligibilityEvaluation, Patient, PatientFlag, WaitlistEntry
from clinic.patients.waitlist import candidates_for_slot
from clinic.sessions.models import Chair, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.protocols import seed_protocols
from tests.conftest import csrf_token, login

NY = ZoneInfo("America/New_York")


@pytest.fixture
def site(db) -> Site:
    seed_protocols(db)
    db.commit()
    return db.exec(select(Site).where(Site.code == "HBR")).one()


def patient(db, n: int, family: str) -> Patient:
    p = Patient(mrn=f"WL-{n}", given_name="Pat", family_name=family, date_of_birth=date(1980, 1, n), sex="female")
    db.add(p)
    db.commit()
    return p


def on_list(db, p: Patient, site: Site, *, days_ago: int, priority: int = 2, status: str = "waiting"):
    entry = WaitlistEntry(patient_id=p.id, site_id=site.id, referred_at=datetime.now(UTC) - timedelta(days=days_ago),
                          priority=priority, status=status, referred_by="Dr Farrow")
    db.add(entry)
    db.commit()
    return entry


def make_ready(db, p: Patient, prescriber_id: int, *, consent: bool = True, decision: str = "eligible"):
    now = datetime.now(UTC)
    db.add(EligibilityEvaluation(patient_id=p.id, prescriber_id=prescriber_id, evaluated_at=now - timedelta(days=2),
                                 diagnosis="TRD", decision=decision, reasons="Psychotic features ruled out",
                                 valid_until=(now + timedelta(days=180)).date()))
    if consent:
        db.add(Consent(patient_id=p.id, kind="ketamine", text_version="K1", signed_at=now - timedelta(days=1)))
    db.commit()


def test_a_manager_adds_a_patient_from_the_patient_page_and_it_is_audited(client, manager, site, db):
    p = patient(db, 1, "Quill")
    login(client, "max.manager")
    page = client.get(f"/patients/{p.id}").get_data(as_text=True)
    assert 'id="waitlist"' in page and "Not on the waitlist" in page
    assert client.get(f"/waitlist/add?patient_id={p.id}").status_code == 200
    r = client.post("/waitlist/add", data={"patient_id": p.id, "site_id": site.id, "priority": "urgent",
                                           "referred_by": "Dr Farrow (primary care)", "note": "Prefers mornings",
                                           "csrf_token": csrf_token(client, "/waitlist")})
    assert r.status_code == 302
    entry = db.exec(select(WaitlistEntry)).one()
    assert (entry.status, entry.priority, entry.referred_by) == ("waiting", 1, "Dr Farrow (primary care)")
    event = db.exec(select(AuditEvent).where(AuditEvent.entity == "waitlist_entry")).one()
    assert event.action == "create" and event.patient_id == p.id and event.actor_label == "max.manager"
    page = client.get(f"/patients/{p.id}").get_data(as_text=True)
    assert "Harbourview · Waiting · Urgent · waiting 0 days" in page


def test_a_second_open_entry_at_the_same_site_is_refused(client, manager, site, db):
    p = patient(db, 1, "Quill")
    on_list(db, p, site, days_ago=3)
    login(client, "max.manager")
    r = client.post("/waitlist/add", data={"patient_id": p.id, "site_id": site.id, "priority": "routine",
                                           "csrf_token": csrf_token(client, "/waitlist")})
    assert r.status_code == 409 and 'id="e-site_id"' in r.get_data(as_text=True)
    assert len(db.exec(select(WaitlistEntry)).all()) == 1


@pytest.mark.parametrize(("changes", "field"), [
    ({"priority": "whenever"}, "priority"),
    ({"referred_on": "2999-01-01"}, "referred_on"),
    ({"referred_on": "yesterday"}, "referred_on"),
    ({"site_id": "999"}, "site_id"),
    ({"note": "x" * 1001}, "note"),
])
def test_bad_input_names_the_field_and_saves_nothing(client, manager, site, db, changes, field):
    p = patient(db, 1, "Quill")
    login(client, "max.manager")
    data = {"patient_id": p.id, "site_id": site.id, "priority": "routine", "referred_by": "Dr Farrow"} | changes
    r = client.post("/waitlist/add", data=data | {"csrf_token": csrf_token(client, "/waitlist")})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert f'id="e-{field}"' in html and 'value="Dr Farrow"' in html
    assert db.exec(select(WaitlistEntry)).all() == []


def test_the_list_is_by_priority_then_longest_wait_with_days_waited(client, manager, site, db, app):
    a, b, c, d = (patient(db, i, name) for i, name in enumerate(("Alder", "Birch", "Cedar", "Dogwood"), start=1))
    on_list(db, a, site, days_ago=40, priority=3)
    on_list(db, b, site, days_ago=5, priority=1)
    on_list(db, c, site, days_ago=30, priority=2)
    on_list(db, d, site, days_ago=12, priority=1)
    on_list(db, patient(db, 5, "Elm"), site, days_ago=90, priority=1, status="removed")
    login(client, "max.manager")
    html = client.get(f"/waitlist?site_id={site.id}").get_data(as_text=True)
    order = [html.index(name) for name in ("Dogwood", "Birch", "Cedar", "Alder")]
    assert order == sorted(order) and "Elm" not in html
    assert "12 days" in html and "40 days" in html
    assert "Elm" in client.get("/waitlist?status=all").get_data(as_text=True)
    assert db.exec(select(AuditEvent).where(AuditEvent.entity == "waitlist", AuditEvent.action == "view")).first()
    items = client.get(f"/api/v1/waitlist?site_id={site.id}").json["items"]
    assert [i["patient_name"] for i in items] == ["Dogwood, Pat", "Birch, Pat", "Cedar, Pat", "Alder, Pat"]
    assert [i["wait_days"] for i in items] == [12, 5, 30, 40]
    assert client.get("/waitlist?status=lost").status_code == 422


def test_removing_needs_a_reason_and_closes_the_entry(client, prescriber, site, db):
    entry = on_list(db, patient(db, 1, "Quill"), site, days_ago=3)
    login(client, "pat.prescriber")
    token = csrf_token(client, "/waitlist")
    r = client.post(f"/waitlist/{entry.id}/status", data={"status": "removed", "reason": "", "csrf_token": token})
    assert r.status_code == 422 and 'id="e-reason"' in r.get_data(as_text=True)
    assert db.get(WaitlistEntry, entry.id).status == "waiting"
    r = client.post(f"/waitlist/{entry.id}/status", data={"status": "offered", "reason": "Tue 14:00 offered",
                                                          "csrf_token": token})
    assert r.status_code == 302 and db.get(WaitlistEntry, entry.id).status == "offered"
    r = client.post(f"/waitlist/{entry.id}/status", data={"status": "removed", "reason": "Moved out of state",
                                                          "csrf_token": token})
    assert r.status_code == 302
    done = db.get(WaitlistEntry, entry.id)
    assert done.status == "removed" and done.closed_at is not None and "Moved out of state" in done.note
    events = db.exec(select(AuditEvent).where(AuditEvent.entity == "waitlist_entry", AuditEvent.action == "update")
                     .order_by(AuditEvent.id)).all()
    assert [json.loads(e.after_json)["status"] for e in events] == ["offered", "removed"]
    assert json.loads(events[1].before_json)["status"] == "offered" and events[1].detail == "Moved out of state"
    r = client.post(f"/waitlist/{entry.id}/status", data={"status": "waiting", "csrf_token": token})
    assert r.status_code == 422 and "add the patient to the waitlist again" in r.get_data(as_text=True)
    assert db.get(WaitlistEntry, entry.id).status == "removed"
    r = client.post(f"/api/v1/waitlist/{entry.id}/status", json={"status": "waiting"},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 422 and "status" in r.json["fields"]


def test_a_nurse_sees_the_waitlist_but_cannot_change_it(client, nurse, site, db):
    p = patient(db, 1, "Quill")
    entry = on_list(db, p, site, days_ago=3)
    login(client, "nina.nurse")
    assert client.get("/waitlist").status_code == 200
    token = csrf_token(client, "/waitlist")
    assert client.post(f"/waitlist/{entry.id}/status", data={"status": "offered", "csrf_token": token}
                       ).status_code == 403
    assert client.post("/waitlist/add", data={"patient_id": p.id, "site_id": site.id, "csrf_token": token}
                       ).status_code == 403
    assert db.get(WaitlistEntry, entry.id).status == "waiting"


@pytest.fixture
def slot_world(db, site, prescriber):
    """Four waiting patients: one ready, one without consent, one never evaluated, one ready but booked."""
    ready = patient(db, 1, "Ready")
    no_consent = patient(db, 2, "Noconsent")
    never = patient(db, 3, "Never")
    busy = patient(db, 4, "Busy")
    make_ready(db, ready, prescriber.id)
    make_ready(db, no_consent, prescriber.id, consent=False)
    make_ready(db, busy, prescriber.id)
    on_list(db, ready, site, days_ago=2, priority=3)
    on_list(db, no_consent, site, days_ago=50, priority=1)
    on_list(db, never, site, days_ago=10, priority=2)
    on_list(db, busy, site, days_ago=60, priority=1)
    on_list(db, patient(db, 5, "Offered"), site, days_ago=70, priority=1, status="offered")
    db.add(PatientFlag(patient_id=ready.id, kind="substance_use", set_at=datetime.now(UTC)))
    start = datetime.combine(date.today() + timedelta(days=7), time(10), NY).astimezone(UTC)
    chair = db.exec(select(Chair).where(Chair.site_id == site.id)).first()
    iv = seed_protocols(db)["iv-induction"]
    course = TreatmentCourse(patient_id=busy.id, protocol_id=iv.id, prescriber_id=prescriber.id, site_id=site.id,
                             earliest_start=start.date())
    db.add(course)
    db.commit()
    db.add(TreatmentSession(course_id=course.id, patient_id=busy.id, site_id=site.id, chair_id=chair.id,
                            number_in_course=1, starts_at=start + timedelta(minutes=30),
                            ends_at=start + timedelta(minutes=130)))
    db.commit()
    return {"site": site, "start": start}


def test_who_could_take_a_freed_slot_lists_the_ready_first(db, slot_world):
    found = candidates_for_slot(db, slot_world["site"].id, slot_world["start"], datetime.now(UTC))
    assert [c.name for c in found] == ["Ready, Pat", "Busy, Pat", "Noconsent, Pat", "Never, Pat"]
    ready, busy, no_consent, never = found
    assert ready.ready and ready.missing == [] and ready.flags == ["substance_use"]
    assert not busy.ready and busy.busy and busy.missing == []
    assert no_consent.missing == ["no current ketamine consent"]
    assert "no eligibility evaluation on file" in never.missing
    quiet = candidates_for_slot(db, slot_world["site"].id, slot_world["start"], datetime.now(UTC),
                                clinical_detail=False)
    assert [c.ready for c in quiet] == [True, False, False, False]
    assert all(c.missing == [] and c.flags == [] for c in quiet)


def test_the_slot_form_shows_prescribers_what_is_missing(client, slot_world):
    login(client, "pat.prescriber")
    local = slot_world["start"].astimezone(NY)
    html = client.get(f"/waitlist/candidates?site_id={slot_world['site'].id}&day={local.date()}"
                      f"&at={local.strftime('%H:%M')}").get_data(as_text=True)
    assert html.index("Ready, Pat") < html.index("Noconsent, Pat")
    assert "no current ketamine consent" in html and "Already booked at that time" in html
    assert "Substance-use history" in html


def test_a_manager_sees_ready_or_not_but_no_clinical_detail(client, manager, slot_world):
    login(client, "max.manager")
    local = slot_world["start"].astimezone(NY)
    r = client.get(f"/waitlist/candidates?site_id={slot_world['site'].id}&day={local.date()}"
                   f"&at={local.strftime('%H:%M')}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Ready, Pat" in html and "WL-1" in html and "Not ready" in html
    assert "Missing:" not in html and "ketamine consent" not in html
    assert "eligibility" not in html.lower() and "Substance" not in html
    api = client.get("/api/v1/waitlist/candidates", query_string={"site_id": slot_world["site"].id,
                                                                  "start": slot_world["start"].isoformat()}).json
    assert [c["ready"] for c in api["items"]] == [True, False, False, False]
    assert all(c["missing"] == [] and c["flags"] == [] for c in api["items"])
    assert "Substance" not in client.get("/waitlist").get_data(as_text=True)


def test_the_slot_form_names_a_bad_field(client, manager, site):
    login(client, "max.manager")
    r = client.get(f"/waitlist/candidates?site_id={site.id}&day=someday&at=10:00")
    assert r.status_code == 422 and 'id="e-day"' in r.get_data(as_text=True)
    r = client.get("/api/v1/waitlist/candidates", query_string={"site_id": site.id, "start": "2026-12-01T10:00:00"})
    assert r.status_code == 422 and "start" in r.json["fields"]


def test_the_api_adds_and_changes_entries(client, manager, site, db):
    p = patient(db, 1, "Quill")
    login(client, "max.manager")
    headers = {"X-CSRFToken": csrf_token(client, "/")}
    r = client.post("/api/v1/waitlist", json={"patient_id": p.id, "site_id": site.id, "priority": "flexible",
                                              "referred_on": (date.today() - timedelta(days=20)).isoformat()},
                    headers=headers)
    assert r.status_code == 201, r.json
    assert r.json["priority"] == "flexible" and r.json["wait_days"] in (19, 20, 21) and r.json["mrn"] == "WL-1"
    entry_id = r.json["id"]
    r = client.post(f"/api/v1/waitlist/{entry_id}/status", json={"status": "removed"}, headers=headers)
    assert r.status_code == 422 and "reason" in r.json["fields"]
    r = client.post(f"/api/v1/waitlist/{entry_id}/status", json={"status": "scheduled"}, headers=headers)
    assert r.status_code == 200 and r.json["status"] == "scheduled" and r.json["closed_at"]
    assert client.post("/api/v1/waitlist", json={"patient_id": p.id, "site_id": site.id, "priority": "soon"},
                       headers=headers).status_code == 422


def test_the_status_page_offers_only_the_allowed_next_statuses(client, manager, site, db):
    entry = on_list(db, patient(db, 1, "Quill"), site, days_ago=3, status="offered")
    login(client, "max.manager")
    html = client.get(f"/waitlist/{entry.id}/status").get_data(as_text=True)
    assert '<option value="waiting"' in html and '<option value="scheduled"' in html
    assert '<option value="offered"' not in html
    assert client.get("/waitlist/999999/status").status_code == 404
