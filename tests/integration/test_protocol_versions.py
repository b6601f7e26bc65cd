"""Protocols: seeded in every database, listed in plain words, created and changed by new versions only."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlmodel import select

from clinic import create_app
from clinic.audit import AuditEvent
from clinic.db import make_engine
from clinic.patients.models import Patient
from clinic.sessions.models import Protocol, Site, TreatmentCourse
from clinic.sessions.protocol_service import ensure_seed_protocols
from clinic.sessions.protocols import SEED_PROTOCOLS, seed_protocols
from tests.conftest import csrf_token, login

IV_FORM = {"name": "IV ketamine induction", "route": "iv", "dose_rule": "mg_per_kg", "dose_default": "0.5",
           "dose_min": "0.1", "dose_max": "0.75", "infusion_minutes": "40", "pre_minutes": "15",
           "post_minutes": "45", "min_observation_minutes": "30", "observation_from": "dosing_end",
           "induction_sessions": "6", "min_days_between": "1", "max_days_between": "7", "max_per_week": "3",
           "target_per_week": "3", "baseline_vitals": "on", "discharge_vitals": "on", "dosing_every_minutes": "10",
           "recovery_every_minutes": "15", "score_cadss-6": "baseline, 40, discharge",
           "score_moaas": "baseline, 40, discharge", "scale_PHQ-9": "on", "when_PHQ-9": "each_session_pre",
           "scale_GAD-7": "on", "when_GAD-7": "each_session_pre"}


@pytest.fixture
def seeded(db) -> dict[str, Protocol]:
    protocols = seed_protocols(db)
    db.commit()
    return protocols


def versions(db, code: str) -> list[Protocol]:
    return db.exec(select(Protocol).where(Protocol.code == code).order_by(Protocol.version)).all()


def test_seeding_twice_is_harmless(db):
    ensure_seed_protocols(db)
    ensure_seed_protocols(db)
    rows = db.exec(select(Protocol)).all()
    assert sorted(p.code for p in rows) == sorted(s.code for s in SEED_PROTOCOLS)
    assert len(db.exec(select(AuditEvent).where(AuditEvent.entity == "protocol")).all()) == len(SEED_PROTOCOLS)


def test_every_new_database_gets_the_seed_protocols_at_start_up(tmp_path, settings, backend):
    if backend != "sqlite":
        pytest.skip("start-up on a fresh database is checked once, on SQLite")
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    create_app(settings=settings, engine=engine)
    create_app(settings=settings, engine=engine)  # a restart seeds nothing twice
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT code, version, active FROM protocol ORDER BY code").all()
    engine.dispose()
    assert [(c, v, bool(a)) for c, v, a in rows] == sorted((s.code, 1, True) for s in SEED_PROTOCOLS)


def test_a_changed_seed_protocol_is_not_seeded_again(client, prescriber, seeded, db):
    login(client, "pat.prescriber")
    iv = seeded["iv-induction"]
    r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {"dose_default": "0.6", "based_on_version": "1",
                                                                  "csrf_token": csrf_token(client, "/protocols")})
    assert r.status_code == 302
    ensure_seed_protocols(db)
    assert [(p.version, p.active) for p in versions(db, "iv-induction")] == [(1, False), (2, True)]


def test_everyone_sees_the_active_protocols_in_plain_words(client, nurse, seeded):
    login(client, "nina.nurse")
    page = client.get("/protocols").get_data(as_text=True)
    assert ("6 sessions, at least 1 day apart (at most 7), at most 3 a week; 0.5 mg/kg (0.1–0.75) over 40 min; "
            "chair time 100 min") in page
    assert "Esketamine nasal spray induction" in page and "New protocol" not in page
    detail = client.get(f"/protocols/{seeded['esketamine-nasal'].id}").get_data(as_text=True)
    assert "2 a week for 4 weeks" in detail and "Vitals at 40 min after dosing starts" in detail
    assert "Change (new version)" not in detail


def test_a_change_makes_a_new_version_and_courses_keep_theirs(client, prescriber, seeded, db):
    iv = seeded["iv-induction"]
    patient = Patient(mrn="PV-1", given_name="Ada", family_name="Old", date_of_birth=date(1970, 1, 1), sex="female")
    db.add(patient)
    db.commit()
    site = db.exec(select(Site).where(Site.code == "HBR")).one()
    course = TreatmentCourse(patient_id=patient.id, protocol_id=iv.id, prescriber_id=prescriber.id, site_id=site.id,
                             planned_sessions=6, earliest_start=date(2027, 1, 11))
    db.add(course)
    db.commit()
    before = iv.model_dump()

    login(client, "pat.prescriber")
    form = client.get(f"/protocols/{iv.id}/change").get_data(as_text=True)
    assert 'name="based_on_version" value="1"' in form and 'value="baseline, 40, discharge"' in form
    r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {
        "dose_default": "0.6", "infusion_minutes": "45", "based_on_version": "1",
        "csrf_token": csrf_token(client, "/protocols")})
    assert r.status_code == 302
    old, new = versions(db, "iv-induction")
    assert (old.version, old.active, new.version, new.active) == (1, False, 2, True)
    assert old.model_dump() | {"active": True} == before  # nothing else about the old row changed
    assert (new.dose_default, new.infusion_minutes, new.created_by_id) == (0.6, 45, prescriber.id)
    assert json.loads(new.cadence_json) == json.loads(old.cadence_json)  # unchanged parts carried as they were
    assert db.get(TreatmentCourse, course.id).protocol_id == old.id  # the course keeps version 1
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "0.6 mg/kg (0.1–0.75) over 45 min" in page and "v1" in page and "v2" in page
    assert "over 45 min" in client.get("/protocols").get_data(as_text=True)
    events = db.exec(select(AuditEvent).where(AuditEvent.entity == "protocol", AuditEvent.actor_label ==
                                              "pat.prescriber").order_by(AuditEvent.id)).all()
    assert [(e.action, e.entity_id) for e in events] == [("update", str(old.id)), ("create", str(new.id))]
    assert json.loads(events[1].before_json) == {"dose_default": 0.5, "infusion_minutes": 40}
    assert "changed: dose_default, infusion_minutes" in events[1].detail


def test_a_change_based_on_a_replaced_version_is_refused(client, prescriber, seeded, db):
    iv = seeded["iv-induction"]
    login(client, "pat.prescriber")
    token = csrf_token(client, "/protocols")
    assert client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {"dose_default": "0.6", "based_on_version": "1",
                                                                     "csrf_token": token}).status_code == 302
    r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {"dose_default": "0.4", "based_on_version": "1",
                                                                  "csrf_token": token})
    assert r.status_code == 409 and "replaced by version 2" in r.get_data(as_text=True)
    new = versions(db, "iv-induction")[-1]
    r = client.post(f"/protocols/{new.id}/change", data=IV_FORM | {"dose_default": "0.4", "based_on_version": "1",
                                                                   "csrf_token": token})
    assert r.status_code == 409
    assert [p.version for p in versions(db, "iv-induction")] == [1, 2]


def test_a_change_that_changes_nothing_makes_no_version(client, prescriber, seeded, db):
    login(client, "pat.prescriber")
    iv = seeded["iv-induction"]
    r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {"based_on_version": "1",
                                                                  "csrf_token": csrf_token(client, "/protocols")})
    assert r.status_code == 422 and "Nothing was changed" in r.get_data(as_text=True)
    assert len(versions(db, "iv-induction")) == 1


@pytest.mark.parametrize(("changes", "field"), [
    ({"dose_default": "0.9"}, "dose_default"),
    ({"dose_min": "0.8"}, "dose_min"),
    ({"dose_max": "3"}, "dose_max"),
    ({"min_days_between": "5", "max_days_between": "3"}, "max_days_between"),
    ({"max_per_week": "8"}, "max_per_week"),
    ({"target_per_week": "4"}, "target_per_week"),
    ({"min_observation_minutes": "60"}, "min_observation_minutes"),
    ({"dosing_every_minutes": "3"}, "dosing_every_minutes"),
    ({"at_minutes": "40, soon"}, "at_minutes"),
    ({"score_cadss-6": "baseline, later"}, "scores"),
    ({"phase1_weeks": "2", "phase1_per_week": "2"}, "phases"),
    ({"phase1_weeks": "2", "phase1_per_week": "9"}, "phase1_per_week"),
    ({"route": "oral"}, "route"),
    ({"name": ""}, "name"),
])
def test_bad_values_name_the_field_and_save_nothing(client, admin, seeded, db, changes, field):
    login(client, "ada.admin")
    iv = seeded["iv-induction"]
    r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | changes | {
        "based_on_version": "1", "csrf_token": csrf_token(client, "/protocols")})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert f'id="e-{field}"' in html, html[html.find("notice-error"):][:400]
    assert len(versions(db, "iv-induction")) == 1 and db.get(Protocol, iv.id).active


def test_an_admin_creates_a_protocol_with_phases_and_scales(client, admin, seeded, db):
    login(client, "ada.admin")
    form = IV_FORM | {"code": "iv-extended", "name": "IV ketamine extended induction", "induction_sessions": "8",
                      "min_days_between": "2", "max_per_week": "3", "target_per_week": "", "phase1_weeks": "2",
                      "phase1_per_week": "3", "phase2_weeks": "2", "phase2_per_week": "1", "then_min_days": "14",
                      "then_max_days": "28", "at_minutes": "30", "scale_PCL-5": "on",
                      "when_PCL-5": "first_and_last_session_pre", "csrf_token": csrf_token(client, "/protocols")}
    r = client.post("/protocols/new", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    row = db.exec(select(Protocol).where(Protocol.code == "iv-extended")).one()
    assert (row.version, row.active, row.induction_sessions) == (1, True, 8)
    assert json.loads(row.schedule_json) == {"phases": [{"weeks": 2, "per_week": 3}, {"weeks": 2, "per_week": 1}],
                                             "then": {"every_days": [14, 28]}}
    cadence = json.loads(row.cadence_json)
    assert cadence["at_minutes"] == [30] and cadence["scores"]["MOAA/S"] == ["baseline", 40, "discharge"]
    assert json.loads(row.scales_json) == {"GAD-7": "each_session_pre", "PHQ-9": "each_session_pre",
                                           "PCL-5": "first_and_last_session_pre"}
    assert db.exec(select(AuditEvent).where(AuditEvent.entity == "protocol", AuditEvent.action == "create",
                                            AuditEvent.entity_id == str(row.id))).one().actor_label == "ada.admin"
    again = client.post("/protocols/new", data=form)
    assert again.status_code == 409 and 'id="e-code"' in again.get_data(as_text=True)
    assert len(db.exec(select(Protocol).where(Protocol.code == "iv-extended")).all()) == 1


def test_a_manager_or_nurse_cannot_create_or_change_a_protocol(client, manager, nurse, seeded, db):
    iv = seeded["iv-induction"]
    for who in ("max.manager", "nina.nurse"):
        login(client, who)
        assert client.get("/protocols").status_code == 200
        assert client.get(f"/protocols/{iv.id}/change").status_code == 403
        token = csrf_token(client, "/protocols")
        r = client.post(f"/protocols/{iv.id}/change", data=IV_FORM | {"dose_default": "0.6", "based_on_version": "1",
                                                                      "csrf_token": token})
        assert r.status_code == 403
        assert client.post("/protocols/new", data=IV_FORM | {"code": "x-1", "csrf_token": token}).status_code == 403
        r = client.post(f"/api/v1/protocols/{iv.id}/versions", json={}, headers={"X-CSRFToken": token})
        assert r.status_code == 403
    assert len(db.exec(select(Protocol)).all()) == len(SEED_PROTOCOLS)


def test_the_api_lists_creates_and_versions_protocols(client, prescriber, seeded, db):
    login(client, "pat.prescriber")
    headers = {"X-CSRFToken": csrf_token(client, "/")}
    items = client.get("/api/v1/protocols").json["items"]
    iv = next(p for p in items if p["code"] == "iv-induction")
    assert iv["summary"].startswith("6 sessions") and iv["chair_minutes"] == 100 and iv["cadence"]["baseline"]
    body = {k: iv[k] for k in ("name", "route", "dose_rule", "dose_default", "dose_min", "dose_max",
                               "infusion_minutes", "pre_minutes", "post_minutes", "min_observation_minutes",
                               "induction_sessions", "min_days_between", "max_days_between", "max_per_week",
                               "scales")}
    body |= {"dosing_every_minutes": 10, "recovery_every_minutes": 15, "target_per_week": 3,
             "scores": iv["cadence"]["scores"], "based_on_version": 1, "post_minutes": 50}
    r = client.post(f"/api/v1/protocols/{iv['id']}/versions", json=body, headers=headers)
    assert r.status_code == 201, r.json
    assert (r.json["version"], r.json["post_minutes"], r.json["chair_minutes"]) == (2, 50, 105)
    detail = client.get(f"/api/v1/protocols/{iv['id']}").json
    assert [v["version"] for v in detail["versions"]] == [2, 1] and detail["protocol"]["active"] is False
    bad = client.post("/api/v1/protocols", json=body | {"code": "Bad Code", "dose_min": 1.0}, headers=headers)
    assert bad.status_code == 422 and "code" in bad.json["fields"]
    bad = client.post("/api/v1/protocols", json={k: v for k, v in body.items() if k != "based_on_version"}
                      | {"code": "iv-short", "dose_min": 1.0}, headers=headers)
    assert bad.status_code == 422 and "dose_min" in bad.json["fields"]
    assert db.exec(select(Protocol).where(Protocol.code == "iv-short")).first() is None


def test_the_new_protocol_form_offers_structured_inputs(client, admin, seeded):
    login(client, "ada.admin")
    html = client.get("/protocols/new").get_data(as_text=True)
    for name in ("phase1_weeks", "phase3_per_week", "dosing_every_minutes", "score_moaas", "scale_MADRS",
                 "when_HAM-A", "observation_from"):
        assert f'name="{name}"' in html


def test_the_planning_endpoints_are_in_the_api_document(client, nurse):
    login(client, "nina.nurse")
    paths = client.get("/api/openapi.json").json["paths"]
    assert {"/api/v1/protocols", "/api/v1/protocols/{protocol_id}", "/api/v1/protocols/{protocol_id}/versions",
            "/api/v1/patients/{patient_id}/eligibility", "/api/v1/eligibility/choices", "/api/v1/waitlist",
            "/api/v1/waitlist/{entry_id}/status", "/api/v1/waitlist/candidates"} <= set(paths)
    create = paths["/api/v1/protocols"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ProtocolCreate")
