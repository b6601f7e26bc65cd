"""Regulatory reports in the JSON API: the Spravato REMS form and adverse-event reports (the same services
and the same audit as the printable pages)."""

from __future__ import annotations

from datetime import date

from flask_openapi3 import Tag
from pydantic import BaseModel, Field

from clinic.api import ErrorOut, Out, UtcDateTime, api, dump
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.vitals import reports
from clinic.vitals.reports import SeriousnessIn
from clinic.web import actor, clock, settings

tag = Tag(name="reports", description="The Spravato REMS monitoring form and adverse-event reports")
ERRORS = {404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class SessionPath(BaseModel):
    session_id: int


class EventPath(BaseModel):
    event_id: int


class RemsOut(Out):
    session_id: int
    patient_name: str
    date_of_birth: date
    sex: str
    first_treatment: bool | None
    enrolled: bool | None
    benzodiazepines: bool | None
    other_sedatives: bool | None = Field(description="Non-benzodiazepine sedative hypnotics")
    stimulants: bool | None = Field(description="Psychostimulants")
    maois: bool | None
    monitoring_clinician: str | None
    site: str
    date: date
    dose_mg: float | None
    dose: str | None = Field(description='"56", "84" or "other"')
    lot_number: str | None
    first_device_at: UtcDateTime | None
    end_of_monitoring_at: UtcDateTime | None
    total_minutes: int | None
    ready_minutes: int | None
    vitals_ok_before_dosing: bool | None
    vitals_ok_before_leaving: bool | None
    bp_before_dosing: str | None
    bp_at_40_minutes: str | None
    bp_at_40_measured_minute: int | None
    bp_before_leaving: str | None
    sedation: bool | None
    dissociation: bool | None
    respiratory_depression: bool | None
    other_adverse_events: bool | None
    other_adverse_events_described: str


class RemsViewOut(BaseModel):
    form: RemsOut
    missing: list[str] = Field(description="What the form still lacks; the session cannot be discharged until "
                                           "this is empty")
    final: bool = Field(description="The session is discharged (otherwise counted as if discharged now)")


class ReportPatientOut(Out):
    identifier: str = Field(description="The MRN; the report never carries the patient's name")
    initials: str
    age_years: int
    sex: str
    weight_kg: float | None
    allergies: str | None


class ReportEventOut(Out):
    id: int
    kind: str
    kind_label: str
    description: str | None
    severity: str
    severity_label: str
    onset_at: UtcDateTime
    onset_date: date
    resolved_at: UtcDateTime | None
    action_taken: str | None
    outcome: str
    outcome_label: str
    serious: bool
    seriousness: list[str] | None = Field(description="Seriousness criteria ticked; null: not assessed yet")
    seriousness_labels: list[str]
    relevant_vitals: list[str]


class ReportProductOut(Out):
    name: str
    route: str
    dose_mg: float
    mg_per_kg: float | None
    lot_number: str
    started_at: UtcDateTime
    stopped_at: UtcDateTime | None
    indication: str | None


class ReportReporterOut(Out):
    name: str
    role: str
    site: str
    clinic: str


class AdverseEventReportOut(Out):
    event_id: int
    session_id: int
    patient: ReportPatientOut
    event: ReportEventOut
    product: ReportProductOut | None
    concomitant_medications: list[str]
    reporter: ReportReporterOut
    reportable: bool
    reported_at: UtcDateTime | None
    reported_by: str | None


class SentOut(Out):
    id: int
    changed: bool = Field(description="False when it had already been marked as sent (nothing changed)")
    reported_at: UtcDateTime
    reported_by_id: int | None


class ReportableOut(Out):
    event_id: int
    session_id: int
    patient_id: int
    mrn: str
    site_id: int
    kind: str
    severity: str
    serious: bool
    onset_at: UtcDateTime


class ReportableListOut(BaseModel):
    items: list[ReportableOut]


@api.get("/sessions/<int:session_id>/rems", tags=[tag], responses={200: RemsViewOut, **ERRORS})
@requires("reports.view")
def rems(path: SessionPath):
    """The Spravato REMS monitoring form of an intranasal session, and what it still lacks (audited)."""
    view = reports.rems_for_session(get_db(), actor(), settings(), path.session_id, now=clock(), action="export")
    return dump(RemsViewOut, {"form": view.form, "missing": view.missing, "final": view.final})


@api.get("/adverse-events/reportable", tags=[tag], responses={200: ReportableListOut})
@requires("reports.view")
def reportable():
    """Adverse events flagged for reporting and not yet marked as sent, oldest first."""
    rows = reports.reportable_unsent(get_db(), actor(), now=clock())
    items = [ReportableOut(event_id=r.event.id, session_id=r.session.id, patient_id=r.patient.id, mrn=r.patient.mrn,
                           site_id=r.site.id, kind=r.event.kind, severity=r.event.severity, serious=r.event.serious,
                           onset_at=r.event.onset_at) for r in rows]
    return dump(ReportableListOut, {"items": items})


@api.get("/adverse-events/<int:event_id>/report", tags=[tag], responses={200: AdverseEventReportOut, **ERRORS})
@requires("reports.view")
def ae_report(path: EventPath):
    """The report of an adverse event, with the fields of a voluntary report (MedWatch 3500); no patient name."""
    report = reports.report_for_event(get_db(), actor(), settings(), path.event_id, now=clock(), action="export")
    return dump(AdverseEventReportOut, report)


@api.put("/adverse-events/<int:event_id>/seriousness", tags=[tag], responses={200: AdverseEventReportOut, **ERRORS})
@requires("reports.send")
def ae_seriousness(path: EventPath, body: SeriousnessIn):
    """Set the seriousness criteria (any makes the event serious); 409 once the report was sent."""
    db = get_db()
    reports.set_seriousness(db, actor(), path.event_id, body, now=clock())
    return dump(AdverseEventReportOut, reports.report_for_event(db, actor(), settings(), path.event_id, now=clock(),
                                                                action="export"))


@api.post("/adverse-events/<int:event_id>/sent", tags=[tag], responses={200: SentOut, **ERRORS})
@requires("reports.send")
def ae_sent(path: EventPath):
    """Mark the report as sent (now, by the caller). A second call changes nothing (`changed` false)."""
    row, changed = reports.mark_sent(get_db(), actor(), path.event_id, now=clock())
    return dump(SentOut, {"id": row.id, "changed": changed, "reported_at": row.reported_at,
                          "reported_by_id": row.reported_by_id})
