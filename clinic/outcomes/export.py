"""Export of one patient's record: CSV tables (scores, sessions, vitals) and a FHIR R4 Bundle.

The builders read the database and return text or plain dicts; the views audit and send them. Amended
entries are exported in their latest version only (a row that another row `amends` is left out), as on
the dashboard. Times are ISO 8601 in UTC.

FHIR: a Bundle of type "collection". Every resource has a stable id, a name-based UUID (uuid5) of its
kind and database id, so exporting twice gives the same ids; `fullUrl` is "urn:uuid:<id>" and references
between resources use those URNs. Codes: LOINC for vital signs and the GAD-7 / PHQ-9 totals (domain.md §7),
a local code system for the scales without a public LOINC code, UCUM units, SNOMED CT routes.
"""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, select

from clinic.errors import NotFound
from clinic.outcomes import service
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import Consent, Patient, WeightMeasurement
from clinic.sessions.models import Protocol, TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent, DoseAdministration, VitalsReading
from clinic.vocab import ADVERSE_EVENT_KINDS, INACTIVE_SESSION_STATUSES, SCALES

BASE = "https://chairside.example/fhir"
SCALE_SYSTEM = f"{BASE}/CodeSystem/scales"
AE_KIND_SYSTEM = f"{BASE}/CodeSystem/adverse-event-kind"
MRN_SYSTEM = f"{BASE}/sid/mrn"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# Scale totals with a public LOINC code (domain.md §7); every other scale uses SCALE_SYSTEM.
SCALE_LOINC = {"GAD-7": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score"),
               "PHQ-9": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score")}
# LOINC code, display, VitalsReading field, UCUM unit
VITAL_CODES = (
    ("8867-4", "Heart rate", "heart_rate", "/min"),
    ("9279-1", "Respiratory rate", "respiratory_rate", "/min"),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "spo2", "%"),
    ("8310-5", "Body temperature", "temperature_c", "Cel"),
)
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_PARTS = (("8480-6", "Systolic blood pressure", "systolic"), ("8462-4", "Diastolic blood pressure", "diastolic"))
BODY_WEIGHT = ("29463-7", "Body weight")

APPOINTMENT_STATUS = {"booked": "booked", "checked_in": "checked-in", "dosing": "arrived", "recovery": "arrived",
                      "discharged": "fulfilled", "cancelled": "cancelled", "no_show": "noshow"}
ENCOUNTER_STATUS = {"booked": "planned", "checked_in": "arrived", "dosing": "in-progress",
                    "recovery": "in-progress", "discharged": "finished"}
CAREPLAN_STATUS = {"planned": "draft", "active": "active", "on_hold": "on-hold", "completed": "completed",
                   "cancelled": "revoked"}
ROUTE_SNOMED = {"iv": ("47625008", "Intravenous route"), "im": ("78421000", "Intramuscular route"),
                "intranasal": ("46713006", "Nasal route")}
AE_SEVERITY = {"mild": "mild", "moderate": "moderate", "severe": "severe", "life_threatening": "severe"}
AE_OUTCOME = {"resolved": "resolved", "resolving": "recovering", "ongoing": "ongoing",
              "resolved_with_sequelae": "resolvedWithSequelae", "fatal": "fatal", "unknown": "unknown"}

SCORE_HEADER = ("response_id", "measured_at", "scale", "total", "items", "source", "course_id", "session_id",
                "session_number", "amends_response_id")
SESSION_HEADER = ("session_id", "course_id", "course_kind", "protocol", "session_number", "status", "starts_at",
                  "ends_at", "checked_in_at", "dosing_started_at", "dosing_ended_at", "discharged_at", "route",
                  "dose_mg", "mg_per_kg", "lot_numbers", "peak_cadss6", "lowest_moaas", "systolic_baseline",
                  "systolic_rise", "adverse_events")
VITALS_HEADER = ("reading_id", "session_id", "measured_at", "phase", "systolic", "diastolic", "heart_rate", "spo2",
                 "respiratory_rate", "temperature_c", "amends_reading_id", "amendment_reason")


# --- helpers --------------------------------------------------------------------------------------


def iso(value: datetime | date | None) -> str:
    """ISO 8601 in UTC ("2027-01-11T15:00:00Z"); a date as is; "" for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value.isoformat()


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _text(value: str | None) -> str:
    """Free text for a spreadsheet: a leading = + - @ would be read as a formula, so quote it."""
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def _csv(header: tuple[str, ...], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def safe_mrn(patient: Patient) -> str:
    """The MRN as a file-name part (never the patient's name)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", patient.mrn) or f"patient-{patient.id}"


def _patient(db: Session, patient_id: int) -> Patient:
    patient = db.get(Patient, patient_id)
    if patient is None:
        raise NotFound("No such patient.")
    return patient


def _current(db: Session, model, *where) -> list:
    return list(db.exec(select(model).where(*where, service._current(model)).order_by(model.id)))


def _scores(db: Session, patient_id: int) -> list[ScaleResponse]:
    return list(db.exec(select(ScaleResponse)
                        .where(ScaleResponse.patient_id == patient_id, service._current(ScaleResponse))
                        .order_by(ScaleResponse.measured_at, ScaleResponse.id)))


def _items(db: Session, response_ids: list[int]) -> dict[int, list[ScaleItemAnswer]]:
    items: dict[int, list[ScaleItemAnswer]] = defaultdict(list)
    if response_ids:
        for a in db.exec(select(ScaleItemAnswer).where(ScaleItemAnswer.response_id.in_(response_ids))
                         .order_by(ScaleItemAnswer.response_id, ScaleItemAnswer.item_number)):
            items[a.response_id].append(a)
    return items


def _sessions(db: Session, patient_id: int) -> list[TreatmentSession]:
    return list(db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == patient_id)
                        .order_by(TreatmentSession.starts_at, TreatmentSession.id)))


def _courses(db: Session, patient_id: int) -> list[tuple[TreatmentCourse, Protocol]]:
    return list(db.exec(select(TreatmentCourse, Protocol).join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
                        .where(TreatmentCourse.patient_id == patient_id)
                        .order_by(TreatmentCourse.ordered_at, TreatmentCourse.id)))


# --- CSV ------------------------------------------------------------------------------------------


def scores_csv(db: Session, patient_id: int) -> tuple[Patient, str]:
    """One row per current scale response; `items` lists the item answers in item order ("2;3;1")."""
    patient = _patient(db, patient_id)
    scores = _scores(db, patient_id)
    items = _items(db, [r.id for r in scores])
    numbers = {s.id: (s.course_id, s.number_in_course) for s in _sessions(db, patient_id)}
    rows = []
    for r in scores:
        course_id, number = numbers.get(r.session_id, (r.course_id, None))
        rows.append([r.id, iso(r.measured_at), r.scale, r.total, ";".join(str(a.value) for a in items[r.id]),
                     r.source, _num(r.course_id or course_id), _num(r.session_id), _num(number), _num(r.amends_id)])
    return patient, _csv(SCORE_HEADER, rows)


def sessions_csv(db: Session, patient_id: int) -> tuple[Patient, str]:
    """Every session (cancelled and missed ones too), with the dashboard's per-session safety numbers."""
    patient = _patient(db, patient_id)
    sessions = _sessions(db, patient_id)
    courses = {c.id: (c, p) for c, p in _courses(db, patient_id)}
    table = service.session_table(db, patient_id, service.load_scores(db, patient_id))
    numbers = {int(r["session_id"]): r for r in table.to_dict("records")}
    doses: dict[int, list[DoseAdministration]] = defaultdict(list)
    if sessions:
        for d in _current(db, DoseAdministration, DoseAdministration.session_id.in_([s.id for s in sessions])):
            doses[d.session_id].append(d)
    rows = []
    for s in sessions:
        course, protocol = courses[s.course_id]
        n = numbers.get(s.id, {})
        given = doses[s.id]
        rows.append([
            s.id, s.course_id, course.kind, protocol.code, s.number_in_course, s.status, iso(s.starts_at),
            iso(s.ends_at), iso(s.checked_in_at), iso(s.dosing_started_at), iso(s.dosing_ended_at),
            iso(s.discharged_at), ";".join(sorted({d.route for d in given})),
            _num(n.get("dose_mg")), _num(n.get("mg_per_kg")), _text(";".join(d.lot_number for d in given)),
            _num(n.get("peak_cadss6")), _num(n.get("lowest_moaas")), _num(n.get("systolic_baseline")),
            _num(n.get("systolic_rise")), _num(n.get("adverse_events")),
        ])
    return patient, _csv(SESSION_HEADER, rows)


def vitals_csv(db: Session, patient_id: int) -> tuple[Patient, str]:
    """One row per current vitals reading, oldest first."""
    patient = _patient(db, patient_id)
    readings = sorted(_current(db, VitalsReading, VitalsReading.patient_id == patient_id),
                      key=lambda v: (v.measured_at, v.id))
    rows = [[v.id, v.session_id, iso(v.measured_at), v.phase, _num(v.systolic), _num(v.diastolic),
             _num(v.heart_rate), _num(v.spo2), _num(v.respiratory_rate), _num(v.temperature_c), _num(v.amends_id),
             _text(v.amendment_reason)] for v in readings]
    return patient, _csv(VITALS_HEADER, rows)


# --- FHIR R4 --------------------------------------------------------------------------------------


def resource_id(kind: str, key: Any) -> str:
    """A stable id for the resource `kind` made from database row `key` (same export, same ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE}/{kind}/{key}"))


def _ref(kind: str, key: Any, display: str | None = None) -> dict:
    ref = {"reference": f"urn:uuid:{resource_id(kind, key)}", "type": kind}
    if display:
        ref["display"] = display
    return ref


def _coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict = {"coding": [_coding(system, code, display)]}
    if text or display:
        cc["text"] = text or display
    return cc


def _qty(value: float | int, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _category(code: str, display: str) -> list[dict]:
    return [_concept(OBS_CATEGORY, code, display)]


def _period(start: datetime | None, end: datetime | None) -> dict | None:
    p = {k: iso(v) for k, v in (("start", start), ("end", end)) if v is not None}
    return p or None


def _scale_code(scale: str) -> dict:
    if scale in SCALE_LOINC:
        code, display = SCALE_LOINC[scale]
        return _concept(LOINC, code, display, text=f"{scale} total score")
    label = SCALES.get(scale, (scale,))[0]
    return _concept(SCALE_SYSTEM, scale, f"{label} total score")


def _medication_name(protocol: Protocol) -> str:
    return "Esketamine" if protocol.route == "intranasal" or "esketamine" in protocol.code else "Ketamine"


def _clean(value: Any) -> Any:
    """Drop None and empty containers (FHIR forbids empty elements)."""
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [v for v in (_clean(v) for v in value) if v not in (None, {}, [], "")]
    return value


def fhir_bundle(db: Session, patient_id: int, *, now: datetime | None = None) -> tuple[Patient, dict]:
    """The patient's record as a FHIR R4 Bundle (type "collection"), as a JSON-ready dict."""
    patient = _patient(db, patient_id)
    pref = _ref("Patient", patient.id)
    courses = _courses(db, patient_id)
    protocol_of = {c.id: p for c, p in courses}
    sessions = _sessions(db, patient_id)
    session_ids = [s.id for s in sessions]
    has_encounter = {s.id for s in sessions if s.status not in INACTIVE_SESSION_STATUSES}
    resources: list[tuple[str, Any, dict]] = []  # (kind, key, body)

    def add(kind: str, key: Any, body: dict) -> None:
        resources.append((kind, key, body))

    def encounter(session_id: int | None) -> dict | None:
        return _ref("Encounter", session_id) if session_id in has_encounter else None

    add("Patient", patient.id, {
        "identifier": [{"use": "usual", "system": MRN_SYSTEM, "value": patient.mrn,
                        "type": _concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR",
                                         "Medical record number")}],
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]},
                 {"use": "usual", "given": [patient.preferred_name]} if patient.preferred_name else None],
        "gender": patient.sex,  # female | male | other | unknown, as FHIR's administrative gender
        "birthDate": patient.date_of_birth.isoformat(),
        "telecom": [{"system": "phone", "value": patient.phone} if patient.phone else None,
                    {"system": "email", "value": patient.email} if patient.email else None],
        "address": [{"text": patient.address}] if patient.address else None,
    })

    by_course: dict[int, list[TreatmentSession]] = defaultdict(list)
    for s in sessions:
        by_course[s.course_id].append(s)
    for course, protocol in courses:
        add("CarePlan", course.id, {
            "identifier": [{"system": f"{BASE}/sid/course", "value": str(course.id)}],
            "status": CAREPLAN_STATUS.get(course.status, "unknown"),
            "intent": "plan",
            "category": [{"coding": [_coding(f"{BASE}/CodeSystem/course-kind", course.kind)],
                          "text": course.kind}],
            "title": f"{protocol.name} ({course.kind})",
            "description": f"{course.planned_sessions} sessions planned under protocol {protocol.code} "
                           f"version {protocol.version}",
            "subject": pref,
            "period": _period(course.ordered_at, course.ended_at),
            "created": iso(course.ordered_at),
            "activity": [{"reference": _ref("Appointment", s.id)} for s in by_course[course.id]],
        })

    for s in sessions:
        add("Appointment", s.id, {
            "identifier": [{"system": f"{BASE}/sid/session", "value": str(s.id)}],
            "status": APPOINTMENT_STATUS[s.status],
            "cancelationReason": {"text": s.cancel_reason} if s.cancel_reason else None,
            "description": f"Session {s.number_in_course} of course {s.course_id}",
            "start": iso(s.starts_at),
            "end": iso(s.ends_at),
            "created": iso(s.created_at),
            "supportingInformation": [_ref("CarePlan", s.course_id)],
            "participant": [{"actor": pref, "status": "accepted"}],
        })
        if s.id in has_encounter:
            add("Encounter", s.id, {
                "identifier": [{"system": f"{BASE}/sid/session", "value": str(s.id)}],
                "status": ENCOUNTER_STATUS[s.status],
                "class": _coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
                "subject": pref,
                "appointment": [_ref("Appointment", s.id)],
                "period": _period(s.checked_in_at or s.starts_at, s.discharged_at),
            })

    # Vitals: the BP panel with systolic/diastolic components, and one Observation per other value.
    for v in _current(db, VitalsReading, VitalsReading.patient_id == patient_id):
        common = {"status": "amended" if v.amends_id else "final", "category": _category("vital-signs",
                                                                                          "Vital Signs"),
                  "subject": pref, "encounter": encounter(v.session_id), "effectiveDateTime": iso(v.measured_at)}
        parts = [(code, display, getattr(v, field)) for code, display, field in BP_PARTS]
        if any(value is not None for _c, _d, value in parts):
            add("Observation", f"vitals-{v.id}-bp", {**common, "code": _concept(LOINC, *BP_PANEL), "component": [
                {"code": _concept(LOINC, code, display), "valueQuantity": _qty(value, "mm[Hg]")}
                for code, display, value in parts if value is not None]})
        for code, display, field, unit in VITAL_CODES:
            value = getattr(v, field)
            if value is not None:
                add("Observation", f"vitals-{v.id}-{field}",
                    {**common, "code": _concept(LOINC, code, display), "valueQuantity": _qty(value, unit)})
    for w in db.exec(select(WeightMeasurement).where(WeightMeasurement.patient_id == patient_id)
                     .order_by(WeightMeasurement.measured_at, WeightMeasurement.id)):
        add("Observation", f"weight-{w.id}", {
            "status": "final", "category": _category("vital-signs", "Vital Signs"),
            "code": _concept(LOINC, *BODY_WEIGHT), "subject": pref, "encounter": encounter(w.session_id),
            "effectiveDateTime": iso(w.measured_at), "valueQuantity": _qty(w.weight_kg, "kg")})

    # Scales: the items in a QuestionnaireResponse, the total in an Observation derived from it.
    scores = _scores(db, patient_id)
    items = _items(db, [r.id for r in scores])
    for r in scores:
        if items[r.id]:
            add("QuestionnaireResponse", r.id, {
                "identifier": {"system": f"{BASE}/sid/scale-response", "value": str(r.id)},
                "questionnaire": f"{BASE}/Questionnaire/{re.sub(r'[^A-Za-z0-9]+', '-', r.scale).lower()}",
                "status": "amended" if r.amends_id else "completed",
                "subject": pref,
                "encounter": encounter(r.session_id),
                "authored": iso(r.measured_at),
                "source": pref if r.source != "staff" else None,
                "item": [{"linkId": str(a.item_number), "text": f"{r.scale} item {a.item_number}",
                          "answer": [{"valueInteger": a.value}]} for a in items[r.id]],
            })
        add("Observation", f"score-{r.id}", {
            "status": "amended" if r.amends_id else "final",
            "category": _category("survey", "Survey"),
            "code": _scale_code(r.scale),
            "subject": pref,
            "encounter": encounter(r.session_id),
            "effectiveDateTime": iso(r.measured_at),
            "valueInteger": r.total,
            "derivedFrom": [_ref("QuestionnaireResponse", r.id)] if items[r.id] else None,
        })

    session_of = {s.id: s for s in sessions}
    doses = _current(db, DoseAdministration, DoseAdministration.session_id.in_(session_ids)) if session_ids else []
    doses_by_session: dict[int, list[DoseAdministration]] = defaultdict(list)
    for d in doses:
        doses_by_session[d.session_id].append(d)
        s = session_of[d.session_id]
        name = _medication_name(protocol_of[s.course_id])
        route_code, route_display = ROUTE_SNOMED[d.route]
        per_kg = f"{d.mg_per_kg:g} mg/kg" if d.mg_per_kg else None
        weight = f"{d.weight_kg:g} kg" if d.weight_kg else None
        add("MedicationAdministration", d.id, {
            "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": name},
                           "batch": {"lotNumber": d.lot_number}}],
            "status": "completed" if d.stopped_at or s.status == "discharged" else "in-progress",
            "medicationReference": {"reference": "#med", "display": name},
            "subject": pref,
            "context": encounter(s.id),
            "effectivePeriod": _period(d.started_at, d.stopped_at),
            "note": [{"text": f"Amends an earlier entry: {d.amendment_reason}"}] if d.amends_id else None,
            "dosage": {
                "text": " · ".join(x for x in (f"{d.dose_mg:g} mg", per_kg, weight and f"weight {weight}") if x),
                "route": _concept(SNOMED, route_code, route_display),
                "dose": _qty(d.dose_mg, "mg"),
                "rateQuantity": _qty(d.rate_ml_per_h, "mL/h") if d.rate_ml_per_h else None,
            },
        })

    aes = _current(db, AdverseEvent, AdverseEvent.patient_id == patient_id)
    for a in aes:
        kind = ADVERSE_EVENT_KINDS.get(a.kind, a.kind)
        add("AdverseEvent", a.id, {
            "identifier": {"system": f"{BASE}/sid/adverse-event", "value": str(a.id)},
            "actuality": "actual",
            "event": _concept(AE_KIND_SYSTEM, a.kind, kind, text=a.description or kind),
            "subject": pref,
            "encounter": encounter(a.session_id),
            "date": iso(a.onset_at),
            "recordedDate": iso(a.recorded_at),
            "seriousness": _concept("http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                    "serious" if a.serious else "non-serious",
                                    "Serious" if a.serious else "Non-serious"),
            "severity": _concept("http://terminology.hl7.org/CodeSystem/adverse-event-severity",
                                 AE_SEVERITY[a.severity], text=a.severity.replace("_", "-")),
            "outcome": _concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                                AE_OUTCOME[a.outcome]),
            "suspectEntity": [{"instance": _ref("MedicationAdministration", d.id)}
                              for d in doses_by_session[a.session_id]],
        })

    for c in db.exec(select(Consent).where(Consent.patient_id == patient_id).order_by(Consent.signed_at, Consent.id)):
        expired = c.expires_at is not None and c.expires_at <= (now or datetime.now(UTC))
        add("Consent", c.id, {
            "status": "inactive" if c.revoked_at or expired else "active",
            "scope": _concept("http://terminology.hl7.org/CodeSystem/consentscope",
                              *(("patient-privacy", "Privacy Consent") if c.kind == "data_sharing"
                                else ("treatment", "Treatment"))),
            "category": [_concept(LOINC, "59284-0", "Patient Consent", text=c.kind)],
            "patient": pref,
            "dateTime": iso(c.signed_at),
            "policy": [{"uri": f"{BASE}/consent-text/{c.kind}/{c.text_version}"}],
            "provision": {"period": _period(c.signed_at, c.revoked_at or c.expires_at)},
        })

    entries = []
    for kind, key, body in resources:
        rid = resource_id(kind, key)
        entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": _clean({"resourceType": kind, "id": rid, **body})})
    bundle = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
              "timestamp": iso(now or datetime.now(UTC)), "entry": entries}
    return patient, bundle
