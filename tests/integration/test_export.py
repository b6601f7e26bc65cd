"""Export of one patient's record: the CSV tables on the dashboard's hand-worked example, the FHIR R4 Bundle
(validated with fhir.resources' R4B models, the R4-family models that fhir.resources 8 ships), audit, roles."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import WeightMeasurement
from clinic.sessions.models import TreatmentSession
from clinic.vitals.models import DoseAdministration, VitalsReading
from tests.conftest import login, make_staff
from tests.integration.test_outcomes_dashboard import KEYS, _at, history  # noqa: F401  (fixture)

PHQ9_ITEMS = (3, 3, 2, 2, 2, 2, 2, 2, 2)  # the baseline PHQ-9 of 20, item by item
URLS = ("scores.csv", "sessions.csv", "vitals.csv", "fhir.json")


@pytest.fixture
def record(history, db, clinic):  # noqa: F811
    """The dashboard's example plus: the baseline PHQ-9's items, a cancelled booster session, a full set of
    vitals in recovery, a weight and a second dose given at a set rate."""
    patient, c1, c2, first = history["patient"], history["c1"], history["c2"], history["first"]
    nurse = db.exec(select(VitalsReading)).first().recorded_by_id
    baseline = db.exec(select(ScaleResponse).where(ScaleResponse.scale == "PHQ-9", ScaleResponse.total == 20)).one()
    db.add_all([ScaleItemAnswer(response_id=baseline.id, item_number=n, scale="PHQ-9", value=v)
                for n, v in enumerate(PHQ9_ITEMS, start=1)])
    cancelled = TreatmentSession(course_id=c2.id, patient_id=patient.id, site_id=clinic["site"].id,
                                 chair_id=clinic["chairs"][0].id, number_in_course=3, starts_at=_at(66),
                                 ends_at=_at(66) + timedelta(minutes=100), status="cancelled",
                                 cancelled_at=_at(65), cancel_reason="Unwell")
    db.add(cancelled)
    t0 = first.starts_at
    db.add(VitalsReading(session_id=first.id, patient_id=patient.id, phase="recovery",
                         measured_at=t0 + timedelta(minutes=70), recorded_by_id=nurse, systolic=130, diastolic=82,
                         heart_rate=88, spo2=97, respiratory_rate=14, temperature_c=36.8, client_key=next(KEYS)))
    db.add(WeightMeasurement(patient_id=patient.id, session_id=first.id, weight_kg=70, measured_at=t0))
    second = db.exec(select(TreatmentSession).where(TreatmentSession.course_id == c1.id,
                                                    TreatmentSession.number_in_course == 2)).one()
    db.add(DoseAdministration(session_id=second.id, route="iv", weight_kg=70, mg_per_kg=0.5, dose_mg=35,
                              concentration_mg_per_ml=1, rate_ml_per_h=52.5, lot_number="L2",
                              started_at=second.starts_at + timedelta(minutes=15),
                              stopped_at=second.starts_at + timedelta(minutes=55), administered_by_id=nurse,
                              client_key=next(KEYS)))
    db.commit()
    return {**history, "cancelled": cancelled, "second": second, "baseline": baseline}


def _rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _get(client, pid, name):
    r = client.get(f"/patients/{pid}/export/{name}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r


def test_scores_csv(client, record):
    login(client, "dr.pat")
    r = _get(client, record["patient"].id, "scores.csv")
    assert r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="RACE-1-scores.csv"'
    assert r.get_data(as_text=True).splitlines()[0] == (
        "response_id,measured_at,scale,total,items,source,course_id,session_id,session_number,amends_response_id")
    rows = _rows(r)
    assert Counter(row["scale"] for row in rows) == {"PHQ-9": 7, "GAD-7": 3, "CADSS-6": 3, "MOAA/S": 2}
    base = rows[0]  # oldest first: the baseline, two days before the first session at 10:00 New York (EST)
    assert base["measured_at"] == "2027-01-09T15:00:00Z"
    assert (base["scale"], base["total"], base["items"]) == ("PHQ-9", "20", "3;3;2;2;2;2;2;2;2")
    assert base["session_id"] == "" and base["course_id"] == str(record["c1"].id)
    phq = [(row["session_number"], row["total"]) for row in rows if row["scale"] == "PHQ-9"]
    assert phq == [("", "20"), ("1", "16"), ("2", "12"), ("3", "9"), ("4", "4"), ("1", "14"), ("2", "6")]
    assert all(row["measured_at"].endswith("Z") for row in rows)


def test_sessions_csv(client, record):
    login(client, "nurse.x")
    r = _get(client, record["patient"].id, "sessions.csv")
    assert r.headers["Content-Disposition"] == 'attachment; filename="RACE-1-sessions.csv"'
    assert "Ient1" not in r.headers["Content-Disposition"]
    rows = {int(row["session_id"]): row for row in _rows(r)}
    assert len(rows) == 7
    first = rows[record["first"].id]
    assert first["starts_at"] == "2027-01-11T15:00:00Z" and first["dosing_started_at"] == "2027-01-11T15:15:00Z"
    assert (first["status"], first["course_kind"], first["protocol"], first["route"]) == (
        "discharged", "induction", "iv-induction", "iv")
    assert (first["dose_mg"], first["mg_per_kg"], first["lot_numbers"]) == ("35", "0.5", "L1")
    assert (first["peak_cadss6"], first["lowest_moaas"], first["systolic_baseline"], first["systolic_rise"],
            first["adverse_events"]) == ("9", "3", "120", "22", "1")
    assert rows[record["second"].id]["lot_numbers"] == "L2"
    gone = rows[record["cancelled"].id]
    assert gone["status"] == "cancelled" and gone["dose_mg"] == "" and gone["adverse_events"] == ""


def test_vitals_csv_has_latest_versions_only(client, record, db):
    login(client, "dr.pat")
    r = _get(client, record["patient"].id, "vitals.csv")
    assert r.headers["Content-Disposition"] == 'attachment; filename="RACE-1-vitals.csv"'
    rows = _rows(r)
    assert [row["systolic"] for row in rows] == ["120", "135", "142", "130"]  # the 160 was amended to 142
    amended = rows[2]
    wrong = db.exec(select(VitalsReading).where(VitalsReading.systolic == 160)).one()
    assert amended["amends_reading_id"] == str(wrong.id) and amended["amendment_reason"] == "typed 160 for 142"
    assert amended["measured_at"] == "2027-01-11T15:40:00Z"
    assert (rows[3]["heart_rate"], rows[3]["spo2"], rows[3]["respiratory_rate"], rows[3]["temperature_c"],
            rows[3]["phase"]) == ("88", "97", "14", "36.8", "recovery")


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _references(value) -> list[tuple[str, str | None]]:
    """(reference, declared type) of every Reference in `value`."""
    if isinstance(value, dict):
        own = [(value["reference"], value.get("type"))] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def test_fhir_bundle_validates_and_maps_the_record(client, record):
    login(client, "dr.pat")
    r = _get(client, record["patient"].id, "fhir.json")
    assert r.mimetype == "application/fhir+json"
    assert r.headers["Content-Disposition"] == 'attachment; filename="RACE-1-fhir.json"'
    data = json.loads(r.get_data(as_text=True))
    bundle = Bundle.model_validate(data)  # R4B models (fhir.resources 8's default package is R5)
    assert bundle.type == "collection" and data["timestamp"].endswith("Z")

    counts = Counter(e["resource"]["resourceType"] for e in data["entry"])
    assert counts == {"Patient": 1, "CarePlan": 2, "Appointment": 7, "Encounter": 6, "Observation": 24,
                      "QuestionnaireResponse": 1, "MedicationAdministration": 2, "AdverseEvent": 1, "Consent": 1}

    # Every reference resolves inside the bundle (or to a contained resource), and ids are unique.
    full_urls = {e["fullUrl"] for e in data["entry"]}
    assert len(full_urls) == len(data["entry"])
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in data["entry"])
    kinds = {e["fullUrl"]: e["resource"]["resourceType"] for e in data["entry"]}
    refs = [(ref, kind) for ref, kind in _references(data["entry"]) if not ref.startswith("#")]
    assert refs and all(kinds.get(ref) == kind for ref, kind in refs)

    (patient,) = _resources(data, "Patient")
    assert patient["identifier"][0]["value"] == "RACE-1" and patient["gender"] == "female"
    assert Counter(a["status"] for a in _resources(data, "Appointment")) == {"fulfilled": 6, "cancelled": 1}
    assert {e["status"] for e in _resources(data, "Encounter")} == {"finished"}
    first_ref = f"urn:uuid:{next(a['id'] for a in _resources(data, 'Appointment') if a['identifier'][0]['value'] == str(record['first'].id))}"  # noqa: E501
    enc = next(e for e in _resources(data, "Encounter") if e["appointment"][0]["reference"] == first_ref)
    assert enc["period"]["start"] == "2027-01-11T15:00:00Z"

    obs = _resources(data, "Observation")
    codes = Counter((c["system"], c["code"]) for o in obs for c in o["code"]["coding"])
    loinc = {code: n for (system, code), n in codes.items() if system == "http://loinc.org"}
    assert loinc == {"85354-9": 4, "8867-4": 1, "9279-1": 1, "59408-5": 1, "8310-5": 1, "29463-7": 1,
                     "44261-6": 7, "70274-6": 3}
    local = {code: n for (system, code), n in codes.items()
             if system == "https://chairside.example/fhir/CodeSystem/scales"}
    assert local == {"CADSS-6": 3, "MOAA/S": 2}
    categories = Counter(o["category"][0]["coding"][0]["code"] for o in obs)
    assert categories == {"vital-signs": 9, "survey": 15}
    bp = [o for o in obs if o["code"]["coding"][0]["code"] == "85354-9"]
    components = {(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
                  for o in bp for c in o["component"]}
    assert ("8480-6", 142, "mm[Hg]") in components and ("8462-4", 80, "mm[Hg]") in components
    assert not any(v == 160 for _c, v, _u in components)  # the amended reading is left out
    units = {o["code"]["coding"][0]["code"]: o["valueQuantity"]["code"] for o in obs if "valueQuantity" in o}
    assert units == {"8867-4": "/min", "9279-1": "/min", "59408-5": "%", "8310-5": "Cel", "29463-7": "kg"}

    (qr,) = _resources(data, "QuestionnaireResponse")
    assert [i["answer"][0]["valueInteger"] for i in qr["item"]] == list(PHQ9_ITEMS)
    total = next(o for o in obs if o.get("derivedFrom"))
    assert total["valueInteger"] == 20 and total["derivedFrom"][0]["reference"] == f"urn:uuid:{qr['id']}"

    meds = {m["contained"][0]["batch"]["lotNumber"]: m for m in _resources(data, "MedicationAdministration")}
    assert meds["L1"]["dosage"]["dose"] == {"value": 35.0, "unit": "mg", "system": "http://unitsofmeasure.org",
                                            "code": "mg"}
    assert meds["L1"]["dosage"]["route"]["coding"][0]["code"] == "47625008"
    rate = meds["L2"]["dosage"]["rateQuantity"]
    assert (rate["value"], rate["code"]) == (52.5, "mL/h")
    (ae,) = _resources(data, "AdverseEvent")
    assert ae["event"]["coding"][0]["code"] == "hypertension" and ae["severity"]["coding"][0]["code"] == "mild"
    assert ae["suspectEntity"][0]["instance"]["reference"] == f"urn:uuid:{meds['L1']['id']}"
    (consent,) = _resources(data, "Consent")
    assert consent["status"] == "active" and consent["patient"]["reference"] == f"urn:uuid:{patient['id']}"

    # Ids are stable: a second export names every resource the same.
    again = json.loads(_get(client, record["patient"].id, "fhir.json").get_data(as_text=True))
    assert [e["fullUrl"] for e in again["entry"]] == [e["fullUrl"] for e in data["entry"]]


def test_exports_are_audited(client, record, db):
    login(client, "dr.pat")
    pid = record["patient"].id
    for name in URLS:
        _get(client, pid, name)
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.patient_id == pid)
                     .order_by(AuditEvent.id)).all()
    assert [e.detail for e in events] == [f"outcomes export: {n}" for n in URLS]
    assert {e.actor_label for e in events} == {"dr.pat"} and {e.entity for e in events} == {"patient"}


def test_dashboard_links_to_the_exports(client, record):
    login(client, "dr.pat")
    pid = record["patient"].id
    html = client.get(f"/patients/{pid}/outcomes").get_data(as_text=True)
    for name in URLS:
        assert f'href="/patients/{pid}/export/{name}"' in html


def test_manager_gets_403_and_nothing_is_audited(client, record, db):
    make_staff(db, "max.manager", "manager")
    login(client, "max.manager")
    for name in URLS:
        assert client.get(f"/patients/{record['patient'].id}/export/{name}").status_code == 403
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "export")).all()


def test_unknown_patient_is_404_and_unknown_table_too(client, record, db):
    login(client, "dr.pat")
    assert client.get("/patients/999999/export/scores.csv").status_code == 404
    assert client.get("/patients/999999/export/fhir.json").status_code == 404
    assert client.get(f"/patients/{record['patient'].id}/export/alerts.csv").status_code == 404
    assert not db.exec(select(AuditEvent).where(AuditEvent.action == "export")).all()
