"""Patient endpoints of the JSON API: the same services (and the same audit) as the patient pages."""

from __future__ import annotations

from datetime import date

from flask_openapi3 import Tag
from pydantic import BaseModel, Field

from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.patients import service
from clinic.patients.schemas import ConsentIn, ConsentRevoke, FlagClear, FlagIn, PatientIn, PatientQuery, PatientUpdate
from clinic.web import actor, clock, settings

tag = Tag(name="patients", description="Registration, search, the patient record, flags and consents")


# --- path parameters and inputs not shared with the pages ----------------------------------------


class PatientPath(BaseModel):
    patient_id: int = Field(description="The patient's id (not the MRN)")


class FlagPath(BaseModel):
    flag_id: int


class ConsentPath(BaseModel):
    consent_id: int


# --- responses ----------------------------------------------------------------------------------


class PatientOut(Out):
    id: int
    mrn: str
    given_name: str
    family_name: str
    preferred_name: str | None
    date_of_birth: date
    sex: str
    phone: str | None
    email: str | None
    address: str | None
    escort_name: str | None
    escort_phone: str | None
    allergies: str | None
    home_site_id: int | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    row_version: int = Field(description="Send this back with a change; a newer save by someone else wins")


class PatientSummary(Out):
    id: int
    mrn: str
    given_name: str
    family_name: str
    preferred_name: str | None
    date_of_birth: date
    sex: str
    home_site_id: int | None
    flags: list[str] = Field(default_factory=list, description="Kinds of the open flags (cautions)")


class PatientPageOut(BaseModel):
    items: list[PatientSummary]
    total: int
    page: int
    per_page: int
    pages: int


class FlagOut(Out):
    id: int
    patient_id: int
    kind: str
    note: str | None
    set_at: UtcDateTime
    set_by_id: int | None
    cleared_at: UtcDateTime | None
    cleared_by_id: int | None
    clear_reason: str | None


class ConsentOut(Out):
    id: int
    patient_id: int
    kind: str
    text_version: str
    signed_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    revoke_reason: str | None
    witnessed_by_id: int | None
    recorded_by_id: int | None
    recorded_at: UtcDateTime


class ConsentStateOut(Out):
    kind: str
    status: str = Field(description="current, expiring, expired or revoked")
    text_version: str
    signed_at: UtcDateTime
    expires_at: UtcDateTime | None


class WeightOut(Out):
    weight_kg: float
    measured_at: UtcDateTime


class SiteOut(Out):
    id: int
    code: str
    name: str


class PatientRecordOut(Out):
    patient: PatientOut
    flags: list[FlagOut] = Field(description="Open flags only")
    consents: list[ConsentStateOut] = Field(description="The newest consent of each kind and its status now")
    consent_history: list[ConsentOut] = Field(description="Every consent recorded, newest first")
    latest_weight: WeightOut | None
    home_site: SiteOut | None


# --- endpoints ----------------------------------------------------------------------------------


@api.get("/patients", tags=[tag], responses={200: PatientPageOut})
@requires("patients.list")
def list_patients(query: PatientQuery):
    """Find patients by name, MRN or date of birth (the search is audited)."""
    db = get_db()
    result = service.search(db, actor(), query)
    flags = service.active_flags(db, [p.id for p in result.patients])
    items = [PatientSummary.model_validate(p).model_copy(
        update={"flags": sorted(f.kind for f in flags.get(p.id, []))}) for p in result.patients]
    return dump(PatientPageOut, {"items": items, "total": result.total, "page": result.page,
                                 "per_page": result.per_page, "pages": result.pages})


@api.post("/patients", tags=[tag], responses={201: PatientOut, 409: ErrorOut})
@requires("patients.register")
def create_patient(body: PatientIn):
    """Register a patient. A second record for the same name and date of birth is refused (409)."""
    return dump(PatientOut, service.register(get_db(), actor(), body, now=clock()), 201)


@api.get("/patients/<int:patient_id>", tags=[tag], responses={200: PatientRecordOut, 404: ErrorOut})
@requires("patients.view")
def get_patient(path: PatientPath):
    """A patient's record: details, open flags, consent status. The read is audited."""
    record = service.view(get_db(), actor(), path.patient_id, now=clock(), what="record (API)")
    return dump(PatientRecordOut, {
        "patient": record.patient,
        "flags": [f for f in record.flags if f.cleared_at is None],
        "consents": record.consents,
        "consent_history": record.consent_rows,
        "latest_weight": record.latest_weight,
        "home_site": record.home_site,
    })


@api.put("/patients/<int:patient_id>", tags=[tag], responses={200: PatientOut, 404: ErrorOut, 409: ErrorOut})
@requires("patients.edit")
def update_patient(path: PatientPath, body: PatientUpdate):
    """Replace a patient's details. Send the `row_version` you read; if someone saved since, 409."""
    return dump(PatientOut, service.update(get_db(), actor(), path.patient_id, body, now=clock()))


@api.post("/patients/<int:patient_id>/flags", tags=[tag],
          responses={201: FlagOut, 404: ErrorOut, 409: ErrorOut})
@requires("patients.flags")
def add_flag(path: PatientPath, body: FlagIn):
    """Set a caution on a patient (one open flag of each kind)."""
    return dump(FlagOut, service.add_flag(get_db(), actor(), path.patient_id, body, now=clock()), 201)


@api.post("/patients/flags/<int:flag_id>/clear", tags=[tag], responses={200: FlagOut, 404: ErrorOut})
@requires("patients.flags")
def clear_flag(path: FlagPath, body: FlagClear):
    """Clear an open flag, saying why."""
    return dump(FlagOut, service.clear_flag(get_db(), actor(), path.flag_id, body, now=clock()))


@api.post("/patients/<int:patient_id>/consents", tags=[tag], responses={201: ConsentOut, 404: ErrorOut})
@requires("patients.consent")
def record_consent(path: PatientPath, body: ConsentIn):
    """Record a signed consent form; `signed_on` and `expires_on` are days in the clinic's time zone."""
    consent = service.record_consent(get_db(), actor(), path.patient_id, body, now=clock(),
                                     zone=settings().zone)
    return dump(ConsentOut, consent, 201)


@api.post("/patients/consents/<int:consent_id>/revoke", tags=[tag],
          responses={200: ConsentOut, 404: ErrorOut})
@requires("patients.consent")
def revoke_consent(path: ConsentPath, body: ConsentRevoke):
    """Revoke a consent that is in force."""
    return dump(ConsentOut, service.revoke_consent(get_db(), actor(), path.consent_id, body.reason,
                                                   now=clock()))
