"""Session monitoring endpoints of the JSON API: the same services as the tablet page."""

from __future__ import annotations

from flask_openapi3 import Tag
from pydantic import BaseModel

from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.vitals import service
from clinic.vitals.service import (
    AcknowledgeIn,
    AdverseEventIn,
    ChecklistIn,
    DischargeIn,
    DoseEventIn,
    DoseIn,
    ScoreIn,
    VitalsIn,
)
from clinic.web import actor, clock, settings

tag = Tag(name="monitoring", description="One session at the chairside: vitals, scores, dose, alerts, discharge")
ERRORS = {404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class SessionPath(BaseModel):
    session_id: int


class AlertPath(BaseModel):
    alert_id: int


class SitePath(BaseModel):
    site_id: int


class AlertOut(Out):
    id: int
    site_id: int
    session_id: int | None
    patient_id: int | None
    kind: str
    priority: str
    message: str
    raised_at: UtcDateTime
    acknowledged_at: UtcDateTime | None
    action: str | None


class ReadingOut(Out):
    id: int
    phase: str
    measured_at: UtcDateTime
    recorded_at: UtcDateTime
    systolic: int | None
    diastolic: int | None
    heart_rate: int | None
    spo2: int | None
    respiratory_rate: int | None
    temperature_c: float | None
    amends_id: int | None
    amendment_reason: str | None


class SavedOut(BaseModel):
    id: int
    created: bool
    alerts: list[AlertOut] = []


class DueOut(BaseModel):
    kind: str
    label: str
    due_at: UtcDateTime
    overdue: bool


class CriterionOut(BaseModel):
    code: str
    label: str
    met: bool
    evidence: str


class StateOut(BaseModel):
    session_id: int
    status: str
    minutes_since_dosing: int | None
    due: list[DueOut]
    dosing_gate: list[str]
    discharge: list[CriterionOut]
    readings: list[ReadingOut]
    open_alerts: list[AlertOut]


@api.get("/sessions/<int:session_id>/monitor", tags=[tag], responses={200: StateOut, **ERRORS})
@requires("monitor.view")
def state(path: SessionPath):
    """What the tablet shows: what is due, what blocks dosing, the discharge criteria, readings, open alerts."""
    from clinic import audit

    db = get_db()
    s = service.load_state(db, settings(), path.session_id, now=clock(), nurse_id=actor().user_id)
    audit.record(db, actor(), "view", "treatment_session", s.session.id, patient_id=s.patient.id,
                 detail="monitoring (API)")
    db.commit()
    return StateOut(
        session_id=s.session.id, status=s.session.status, minutes_since_dosing=s.minutes_since_dosing,
        due=[DueOut(kind=d.kind, label=d.label, due_at=d.due_at, overdue=d.overdue) for d in s.due],
        dosing_gate=s.gate,
        discharge=[CriterionOut(code=c.code, label=c.label, met=c.met, evidence=c.evidence) for c in s.discharge],
        readings=[ReadingOut.model_validate(r) for r in s.readings],
        open_alerts=[AlertOut.model_validate(a) for a in s.open_alerts],
    ).model_dump(mode="json")


def _saved(row, created: bool, alerts=()):
    body = SavedOut(id=row.id, created=created, alerts=[AlertOut.model_validate(a) for a in alerts])
    return body.model_dump(mode="json"), 201 if created else 200


@api.post("/sessions/<int:session_id>/vitals", tags=[tag], responses={201: SavedOut, 200: SavedOut, **ERRORS})
@requires("monitor.record")
def post_vitals(path: SessionPath, body: VitalsIn):
    """Save vitals; 201 when new, 200 when this client key was saved before. Alerts raised come back."""
    row, alerts, created = service.record_vitals(get_db(), actor(), settings(), path.session_id, body, now=clock())
    return _saved(row, created, alerts)


@api.post("/sessions/<int:session_id>/scores", tags=[tag], responses={201: SavedOut, 200: SavedOut, **ERRORS})
@requires("monitor.record")
def post_score(path: SessionPath, body: ScoreIn):
    """Save a scale item by item (CADSS-6, MOAA/S, PHQ-9 …); the total is derived."""
    row, alerts, created = service.record_score(get_db(), actor(), settings(), path.session_id, body, now=clock())
    return _saved(row, created, alerts)


@api.post("/sessions/<int:session_id>/checklist", tags=[tag], responses={201: SavedOut, **ERRORS})
@requires("monitor.record")
def post_checklist(path: SessionPath, body: ChecklistIn):
    row = service.record_checklist(get_db(), actor(), path.session_id, body, now=clock())
    return _saved(row, True)


@api.post("/sessions/<int:session_id>/dose", tags=[tag], responses={201: SavedOut, **ERRORS})
@requires("monitor.record")
def post_dose(path: SessionPath, body: DoseIn):
    """Start dosing (409 with the reasons while the dosing gate is closed)."""
    row = service.start_dosing(get_db(), actor(), settings(), path.session_id, body, now=clock())
    return _saved(row, True)


@api.post("/sessions/<int:session_id>/dose-events", tags=[tag], responses={201: SavedOut, **ERRORS})
@requires("monitor.record")
def post_dose_event(path: SessionPath, body: DoseEventIn):
    row = service.dose_event(get_db(), actor(), path.session_id, body, now=clock())
    return _saved(row, True)


@api.post("/sessions/<int:session_id>/adverse-events", tags=[tag], responses={201: SavedOut, **ERRORS})
@requires("monitor.record")
def post_adverse_event(path: SessionPath, body: AdverseEventIn):
    row = service.record_adverse_event(get_db(), actor(), path.session_id, body, now=clock(), settings=settings())
    return _saved(row, True)


@api.post("/sessions/<int:session_id>/discharge", tags=[tag], responses={200: SavedOut, **ERRORS})
@requires("monitor.record")
def post_discharge(path: SessionPath, body: DischargeIn):
    """Discharge (409 listing the unmet criteria unless an override reason is given)."""
    row = service.discharge(get_db(), actor(), settings(), path.session_id, body, now=clock())
    return SavedOut(id=row.id, created=False).model_dump(mode="json")


@api.post("/alerts/<int:alert_id>/acknowledge", tags=[tag], responses={200: AlertOut, **ERRORS})
@requires("alerts.acknowledge")
def post_acknowledge(path: AlertPath, body: AcknowledgeIn):
    """Acknowledge an alert with the action taken."""
    return dump(AlertOut, service.acknowledge(get_db(), actor(), path.alert_id, body, now=clock()))


@api.get("/sites/<int:site_id>/alerts", tags=[tag], responses={200: AlertOut})
@requires("alerts.view")
def site_alerts(path: SitePath):
    """The site's open alerts, high priority first (what every tablet of the site shows)."""
    return [AlertOut.model_validate(a).model_dump(mode="json") for a in service.open_site_alerts(get_db(),
                                                                                               path.site_id)]
