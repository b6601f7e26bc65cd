"""Planning endpoints of the JSON API: eligibility evaluations, protocols (versioned) and the waitlist.

The same services, permissions and audit as the pages. Clinic managers get ready / not ready for a
freed slot's candidates, without what is missing and without flags.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_login import current_user
from flask_openapi3 import Tag
from pydantic import BaseModel, Field

from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.patients import eligibility, waitlist
from clinic.patients.eligibility import EvaluationIn
from clinic.patients.eligibility_rules import INTERACTING_CLASSES
from clinic.sessions import protocol_service
from clinic.sessions.protocol_service import ProtocolChange, ProtocolCreate
from clinic.sessions.protocols import load_json
from clinic.web import actor, clock, settings, today_local

eligibility_tag = Tag(name="eligibility", description="Evaluations before a first course")
protocols_tag = Tag(name="protocols", description="Treatment protocols; a change makes a new version")
waitlist_tag = Tag(name="waitlist", description="Referred patients awaiting a first course; filling a freed slot")


class PatientPath(BaseModel):
    patient_id: int


class ProtocolPath(BaseModel):
    protocol_id: int


class EntryPath(BaseModel):
    entry_id: int


# --- eligibility --------------------------------------------------------------------------------


class Choice(BaseModel):
    code: str
    label: str


class EligibilityChoicesOut(BaseModel):
    contraindications: list[Choice] = Field(description="The clinic's list (config.toml [eligibility])")
    interacting_medications: list[Choice]
    valid_days: int = Field(description="Default validity of an evaluation, days")


class EvaluationOut(BaseModel):
    id: int
    patient_id: int
    prescriber_id: int
    evaluated_at: UtcDateTime
    status: str = Field(description="eligible, not_eligible, deferred, or expired once valid_until has passed")
    decision: str
    reasons: str
    valid_until: date
    diagnosis: str
    prior_treatments: str | None
    psychiatric_history: str | None
    psychosis_history: bool
    psychosis_details: str | None
    substance_use_history: str | None
    substance_screen_score: int | None
    medical_history: str | None
    contraindications: list[Choice]
    interacting_medications: dict[str, bool] | None = Field(
        description="Each interacting class → taking it; null when not asked class by class (older records)")
    other_medications: str | None
    baseline_systolic: int | None
    baseline_diastolic: int | None


class FlagSetOut(Out):
    id: int
    kind: str
    note: str | None


class EvaluationListOut(BaseModel):
    items: list[EvaluationOut] = Field(description="Newest first: the first is what course ordering reads")


class RecordedOut(BaseModel):
    evaluation: EvaluationOut
    flags_set: list[FlagSetOut] = Field(description="Patient flags this evaluation opened")


def _evaluation(view: eligibility.EvaluationView) -> dict[str, Any]:
    r = view.row
    return {
        "id": r.id, "patient_id": r.patient_id, "prescriber_id": r.prescriber_id, "evaluated_at": r.evaluated_at,
        "status": view.status, "decision": r.decision, "reasons": r.reasons, "valid_until": r.valid_until,
        "diagnosis": r.diagnosis, "prior_treatments": r.prior_treatments,
        "psychiatric_history": view.psychiatric_history, "psychosis_history": r.psychosis_history,
        "psychosis_details": view.psychosis_details, "substance_use_history": r.substance_use_history,
        "substance_screen_score": r.substance_screen_score, "medical_history": view.medical_history,
        "contraindications": [{"code": c, "label": label} for c, label in view.contraindications],
        "interacting_medications": view.interacting, "other_medications": view.other_medications,
        "baseline_systolic": r.baseline_systolic, "baseline_diastolic": r.baseline_diastolic,
    }


@api.get("/eligibility/choices", tags=[eligibility_tag], responses={200: EligibilityChoicesOut})
@requires("eligibility.view")
def eligibility_choices():
    """The contraindications and interacting medicine classes an evaluation chooses from."""
    return dump(EligibilityChoicesOut, {
        "contraindications": [{"code": c.code, "label": c.label} for c in eligibility.catalogue(settings())],
        "interacting_medications": [{"code": k, "label": v} for k, v in INTERACTING_CLASSES.items()],
        "valid_days": settings().eligibility.valid_days})


@api.get("/patients/<int:patient_id>/eligibility", tags=[eligibility_tag],
         responses={200: EvaluationListOut, 404: ErrorOut})
@requires("eligibility.view")
def list_evaluations(path: PatientPath):
    """A patient's evaluations, newest first (the first one is what course ordering reads). Audited."""
    views = eligibility.history(get_db(), actor(), path.patient_id, settings(), today_local())
    return dump(EvaluationListOut, {"items": [_evaluation(v) for v in views]})


@api.post("/patients/<int:patient_id>/eligibility", tags=[eligibility_tag],
          responses={201: RecordedOut, 404: ErrorOut})
@requires("eligibility.record")
def record_evaluation(path: PatientPath, body: EvaluationIn):
    """Record an evaluation (prescribers). "eligible" despite a contraindication needs reasons naming it;
    a substance-use or psychosis history opens the matching patient flag."""
    today = today_local()
    done = eligibility.record_evaluation(get_db(), actor(), path.patient_id, body, now=clock(), today=today,
                                         settings=settings())
    view = eligibility.as_view(done.evaluation, settings(), today)
    return dump(RecordedOut, {"evaluation": _evaluation(view), "flags_set": done.flags_set}, 201)


# --- protocols ----------------------------------------------------------------------------------


class ProtocolOut(Out):
    id: int
    code: str
    version: int
    name: str
    active: bool
    summary: str = Field(description="The key parameters in plain words")
    route: str
    dose_rule: str
    dose_default: float
    dose_min: float
    dose_max: float
    infusion_minutes: int
    pre_minutes: int
    post_minutes: int
    chair_minutes: int
    min_observation_minutes: int
    induction_sessions: int
    min_days_between: int
    max_days_between: int | None
    max_per_week: int
    booster_interval_days: int | None
    schedule: dict[str, Any]
    cadence: dict[str, Any]
    scales: dict[str, str]
    thresholds: dict[str, Any]
    created_at: UtcDateTime
    created_by_id: int | None


class ProtocolListOut(BaseModel):
    items: list[ProtocolOut]


class ProtocolDetailOut(BaseModel):
    protocol: ProtocolOut
    versions: list[ProtocolOut] = Field(description="Every version of this code, newest first")


def _protocol(p) -> dict[str, Any]:
    return p.model_dump() | {"summary": protocol_service.summary(p), "chair_minutes": p.chair_minutes,
                             "schedule": load_json(p.schedule_json), "cadence": load_json(p.cadence_json),
                             "scales": load_json(p.scales_json), "thresholds": load_json(p.thresholds_json)}


@api.get("/protocols", tags=[protocols_tag], responses={200: ProtocolListOut})
@requires("protocols.view")
def list_protocols():
    """The protocols in use (active versions)."""
    return dump(ProtocolListOut, {"items": [_protocol(p) for p in protocol_service.list_active(get_db())]})


@api.get("/protocols/<int:protocol_id>", tags=[protocols_tag], responses={200: ProtocolDetailOut, 404: ErrorOut})
@requires("protocols.view")
def get_protocol(path: ProtocolPath):
    """One protocol version, with every version of its code."""
    d = protocol_service.detail(get_db(), path.protocol_id)
    return dump(ProtocolDetailOut, {"protocol": _protocol(d.protocol), "versions": [_protocol(v) for v in d.versions]})


@api.post("/protocols", tags=[protocols_tag], responses={201: ProtocolOut, 409: ErrorOut})
@requires("protocols.manage")
def create_protocol(body: ProtocolCreate):
    """Create a protocol (version 1). Every value is checked, alone and against the others."""
    return dump(ProtocolOut, _protocol(protocol_service.create(get_db(), actor(), body, now=clock())), 201)


@api.post("/protocols/<int:protocol_id>/versions", tags=[protocols_tag],
          responses={201: ProtocolOut, 404: ErrorOut, 409: ErrorOut})
@requires("protocols.manage")
def change_protocol(path: ProtocolPath, body: ProtocolChange):
    """Change a protocol: a new version is made and the old one retired (courses keep theirs).
    `thresholds` left out keeps the old version's. 409 when `based_on_version` is not the current one."""
    row = protocol_service.change(get_db(), actor(), path.protocol_id, body, now=clock())
    return dump(ProtocolOut, _protocol(row), 201)


# --- waitlist -----------------------------------------------------------------------------------


class WaitlistEntryOut(BaseModel):
    id: int
    patient_id: int
    mrn: str
    patient_name: str
    site_id: int
    site_name: str
    referred_at: UtcDateTime
    referred_by: str | None
    priority: str = Field(description="urgent, routine or flexible")
    status: str
    note: str | None
    closed_at: UtcDateTime | None
    wait_days: int = Field(description="Days since referral, in the site's calendar")
    flags: list[str] = Field(description="Open flag kinds (clinical roles only; empty for others)")


class WaitlistOut(BaseModel):
    items: list[WaitlistEntryOut] = Field(description="Open entries first, by priority, then the longest wait")


class CandidateOut(Out):
    entry_id: int
    patient_id: int
    mrn: str
    name: str
    priority: str
    wait_days: int
    ready: bool
    missing: list[str] = Field(description="What stops a course being ordered (clinical roles only)")
    busy: bool = Field(description="Already booked at an overlapping time")
    flags: list[str]


class CandidatesOut(BaseModel):
    items: list[CandidateOut] = Field(description="The ready first; each group by priority, then the longest wait")


def _clinical() -> bool:
    return current_user.can("eligibility.view")


def _row(r: waitlist.WaitlistRow) -> dict[str, Any]:
    e = r.entry
    return {"id": e.id, "patient_id": e.patient_id, "mrn": r.patient.mrn, "patient_name": r.patient.display_name,
            "site_id": e.site_id, "site_name": r.site.name, "referred_at": e.referred_at,
            "referred_by": e.referred_by, "priority": r.priority, "status": e.status, "note": e.note,
            "closed_at": e.closed_at, "wait_days": r.wait_days, "flags": r.flags}


def _entry(entry_id: int) -> dict[str, Any]:
    entry = waitlist.get(get_db(), entry_id)
    rows = waitlist.for_patient(get_db(), entry.patient_id, now=clock())
    return _row(next(r for r in rows if r.entry.id == entry_id))


@api.get("/waitlist", tags=[waitlist_tag], responses={200: WaitlistOut})
@requires("waitlist.view")
def list_waitlist(query: waitlist.WaitlistQuery):
    """The waitlist: open entries by priority, then the longest wait. Audited."""
    rows = waitlist.entries(get_db(), actor(), query, now=clock(), clinical_detail=_clinical())
    return dump(WaitlistOut, {"items": [_row(r) for r in rows]})


@api.post("/waitlist", tags=[waitlist_tag], responses={201: WaitlistEntryOut, 404: ErrorOut, 409: ErrorOut})
@requires("waitlist.manage")
def add_to_waitlist(body: waitlist.WaitlistAdd):
    """Put a referred patient on a site's waitlist (one open entry per patient and site)."""
    entry = waitlist.add(get_db(), actor(), body, now=clock())
    return dump(WaitlistEntryOut, _entry(entry.id), 201)


@api.post("/waitlist/<int:entry_id>/status", tags=[waitlist_tag],
          responses={200: WaitlistEntryOut, 404: ErrorOut})
@requires("waitlist.manage")
def change_waitlist_status(path: EntryPath, body: waitlist.StatusChange):
    """Offer, schedule, put back (waiting) or remove with a reason."""
    waitlist.change_status(get_db(), actor(), path.entry_id, body, now=clock())
    return dump(WaitlistEntryOut, _entry(path.entry_id))


@api.get("/waitlist/candidates", tags=[waitlist_tag], responses={200: CandidatesOut, 422: ErrorOut})
@requires("waitlist.view")
def slot_candidates(query: waitlist.SlotQuery):
    """Who on the site's waitlist could take a slot starting at `start`: the ready first."""
    found = waitlist.candidates_for_slot(get_db(), query.site_id, query.start, clock(),
                                         protocol_id=query.protocol_id, clinical_detail=_clinical())
    return dump(CandidatesOut, {"items": found})
