"""Regulatory paperwork filled from the session record.

- **The Spravato REMS patient monitoring form** (domain note §4), after every intranasal esketamine
  session: `rems_form` maps a session's `MonitorState` to a `RemsForm`; `rems_missing` names what the
  form still lacks. A session cannot be discharged while anything is missing (the service's discharge
  asks `rems_discharge_problems`), and an override does not change that: it is a regulatory form.
- **Adverse-event reports** with the fields of a regulator's voluntary report (FDA MedWatch 3500):
  `ae_report` builds one without the patient's name; `mark_sent` records when and by whom it went.

The top half is pure (values in, values out; "now" is passed in). The services below it load rows,
call it, audit the read or the change and commit.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.models import StaffUser
from clinic.config import Settings
from clinic.errors import Conflict, NotFound
from clinic.patients import eligibility_rules
from clinic.patients.models import Consent, EligibilityEvaluation, Patient, WeightMeasurement
from clinic.patients.rules import consent_status
from clinic.sessions.models import Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.vitals import rules
from clinic.vitals.models import AdverseEvent, VitalsReading
from clinic.vitals.service import MonitorState, load_state
from clinic.vocab import ADVERSE_EVENT_KINDS, AE_OUTCOMES, ROLES, ROUTES, SERIOUSNESS_CRITERIA, SEVERITIES, SEXES

# --- the interacting-medications answer ---------------------------------------------------------

# The classes the tablet asks about (clinic.vitals.views.INTERACTING), by the words it writes, mapped to
# the codes of clinic.patients.eligibility_rules.INTERACTING_CLASSES.
_SESSION_CLASSES = {"benzodiazepines": "benzodiazepines", "other sedatives": "other_sedatives",
                    "stimulants": "stimulants", "maois": "maois", "opioids": "opioids"}


def interacting_answer(answer: str | None) -> tuple[dict[str, bool], str | None] | None:
    """The checklist answer "none" / "taking: benzodiazepines, MAOIs (note)" as ({class code: taking?}, note).

    Every class the tablet asks about is in the dict (False when not named). None when the answer is
    missing or not in that form (then the question counts as not asked).
    """
    if not answer:
        return None
    text = answer.strip()
    note = None
    head, sep, tail = text.partition(" (")
    if sep and tail.endswith(")"):
        text, note = head.strip(), tail[:-1].strip() or None
    taking = dict.fromkeys(_SESSION_CLASSES.values(), False)
    if text.lower() == "none":
        return taking, note
    if not text.lower().startswith("taking:"):
        return None
    for word in text.split(":", 1)[1].split(","):
        code = _SESSION_CLASSES.get(word.strip().lower())
        if code is None:
            return None
        taking[code] = True
    return taking, note


# --- the Spravato REMS form (pure) ---------------------------------------------------------------

REMS_MIN_MINUTES = 120  # observation from the first device (REMS)
REMS_BP_AT_MINUTES = 40  # the blood pressure "at about 40 minutes" ...
REMS_BP_WINDOW_MINUTES = 10  # ... is the reading nearest to it within this many minutes either side
SEDATION_KINDS = ("over_sedation",)
RESPIRATORY_KINDS = ("respiratory_depression",)


@dataclass(frozen=True)
class RemsForm:
    """The Spravato REMS patient monitoring form for one session. None means "not known": missing."""

    session_id: int
    patient_name: str
    date_of_birth: date
    sex: str
    first_treatment: bool | None  # the patient's first esketamine session ever
    enrolled: bool | None  # a current REMS enrolment on file
    benzodiazepines: bool | None
    other_sedatives: bool | None  # non-benzodiazepine sedative hypnotics
    stimulants: bool | None  # psychostimulants
    maois: bool | None
    monitoring_clinician: str | None
    site: str
    date: date  # in the site's time zone
    dose_mg: float | None  # given: devices × 28 mg
    dose: str | None  # "56", "84" or "other" (the form's boxes)
    lot_number: str | None
    first_device_at: datetime | None
    end_of_monitoring_at: datetime | None
    total_minutes: int | None  # first device → end of monitoring; at least 120
    ready_minutes: int | None  # when the patient would have been ready to leave without the 2-hour rule
    vitals_ok_before_dosing: bool | None
    vitals_ok_before_leaving: bool | None
    bp_before_dosing: str | None  # "128/82"
    bp_at_40_minutes: str | None
    bp_at_40_measured_minute: int | None  # minutes after the first device it was measured
    bp_before_leaving: str | None
    sedation: bool | None  # MOAA/S below 5 after dosing, or an over-sedation event
    dissociation: bool | None  # CADSS-6 above baseline after dosing
    respiratory_depression: bool | None  # SpO2 or respiratory rate below the limit, or such an event
    other_adverse_events: bool | None
    other_adverse_events_described: str

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


REMS_LABELS: dict[str, str] = {
    "session_id": "Session",
    "patient_name": "Patient name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "first_treatment": "First treatment with Spravato",
    "enrolled": "Patient enrolled in the Spravato REMS",
    "benzodiazepines": "Concomitant benzodiazepines",
    "other_sedatives": "Concomitant non-benzodiazepine sedative hypnotics",
    "stimulants": "Concomitant psychostimulants",
    "maois": "Concomitant MAOIs",
    "monitoring_clinician": "Monitoring clinician",
    "site": "Site",
    "date": "Date of treatment",
    "dose_mg": "Dose given (mg)",
    "dose": "Dose (56 / 84 / other mg)",
    "lot_number": "Lot number",
    "first_device_at": "First device given at",
    "end_of_monitoring_at": "End of monitoring",
    "total_minutes": "Minutes from first device to end of monitoring",
    "ready_minutes": "Minutes until ready to leave without the 2-hour rule",
    "vitals_ok_before_dosing": "Vital signs acceptable before dosing",
    "vitals_ok_before_leaving": "Vital signs acceptable before leaving",
    "bp_before_dosing": "Blood pressure before dosing",
    "bp_at_40_minutes": "Blood pressure at about 40 minutes",
    "bp_at_40_measured_minute": "Minute the 40-minute blood pressure was taken",
    "bp_before_leaving": "Blood pressure before leaving",
    "sedation": "Sedation",
    "dissociation": "Dissociation",
    "respiratory_depression": "Respiratory depression",
    "other_adverse_events": "Other adverse events",
    "other_adverse_events_described": "Other adverse events (which)",
}
# Derived or descriptive fields the form can do without.
_OPTIONAL = {"first_device_at", "end_of_monitoring_at", "bp_at_40_measured_minute", "other_adverse_events_described"}
# Why a field can be missing, in words a nurse can act on.
_HOW_TO_FILL = {
    "benzodiazepines": "ask about interacting medications",
    "other_sedatives": "ask about interacting medications",
    "stimulants": "ask about interacting medications",
    "maois": "ask about interacting medications",
    "monitoring_clinician": "no nurse is recorded for the session",
    "dose_mg": "no dose recorded",
    "dose": "no dose recorded",
    "lot_number": "no dose recorded",
    "total_minutes": "no device recorded",
    "ready_minutes": "enter it on the discharge form",
    "vitals_ok_before_dosing": "no pre-dose blood pressure",
    "vitals_ok_before_leaving": "take vitals before the patient leaves",
    "bp_before_dosing": "no pre-dose blood pressure",
    "bp_at_40_minutes": f"no blood pressure {REMS_BP_AT_MINUTES - REMS_BP_WINDOW_MINUTES}–"
                        f"{REMS_BP_AT_MINUTES + REMS_BP_WINDOW_MINUTES} minutes after the first device",
    "bp_before_leaving": f"take a blood pressure within {rules.VITALS_FRESH_MINUTES} minutes before the patient "
                         "leaves",
    "sedation": "score MOAA/S after dosing",
    "dissociation": "score CADSS-6 after dosing",
    "respiratory_depression": "record SpO2 after dosing",
}


def _minutes_between(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def _bp(r: VitalsReading | None) -> str | None:
    return None if r is None else f"{r.systolic}/{r.diastolic}"


def _has_bp(r: VitalsReading) -> bool:
    return r.systolic is not None and r.diastolic is not None


def effective_adverse_events(events: list[AdverseEvent]) -> list[AdverseEvent]:
    """The events that stand (an event corrected by an amendment is left out; the amendment counts)."""
    replaced = {e.amends_id for e in events if e.amends_id}
    return [e for e in events if e.id not in replaced]


def rems_form(state: MonitorState, *, first_treatment: bool | None = None, enrolled: bool | None = None,
              clinician: str | None = None, end_of_monitoring: datetime | None = None) -> RemsForm:
    """The Spravato REMS monitoring form of an intranasal session, filled from its record.

    What the session record cannot say is passed in: `first_treatment` (no earlier esketamine session
    of this patient was dosed), `enrolled` (a current "rems_enrolment" consent) and `clinician` (the
    session nurse's full name). `end_of_monitoring` defaults to the discharge time, else `state.now`.

    - Concomitant medicines: the pre-dose "interacting medications" answer ("none" / "taking: …").
    - Dose: the devices given × 28 mg ("56", "84", else "other"); lot from the dose record.
    - Total minutes: the first device to the end of monitoring.
    - Vitals acceptable before dosing: the last pre-dose blood pressure is within the pre-dose limits,
      or a prescriber decided to dose despite it (the dosing gate's rule). Before leaving: the discharge
      criterion "vitals back within pre-dose limits" as evaluated at `state.now`.
    - BP at 40 minutes: the reading nearest 40 minutes after the first device, within ±10 minutes.
      BP before leaving: the latest reading after dosing, taken at most 20 minutes before the end.
    - Sedation: a MOAA/S below 5 after the first device, or an over-sedation event. Dissociation: a
      CADSS-6 after the first device above the baseline (the last one before it; 0 if none).
      Respiratory depression: SpO2 below spo2_low or a respiratory rate below respiratory_rate_low after
      the first device, or a respiratory-depression event. Each is None until scored/measured after
      dosing. Other adverse events: any event of another kind.

    Raises ValueError for a session that is not intranasal.
    """
    if state.protocol.route != "intranasal":
        raise ValueError("the Spravato REMS form is for intranasal sessions only")
    s, patient, t = state.session, state.patient, state.thresholds

    taken = interacting_answer(a.answer if (a := state.checklist.get("interacting_medications")) else None)
    meds: dict[str, bool | None] = dict.fromkeys(("benzodiazepines", "other_sedatives", "stimulants", "maois"))
    if taken is not None:
        meds = {k: taken[0][k] for k in meds}

    devices = [e for e in state.dose_events if e.kind == "device"]
    first_device = (min(e.at for e in devices) if devices
                    else state.dose.started_at if state.dose else s.dosing_started_at)
    dose_mg: float | None = None
    if state.dose is not None:
        dose_mg = float(len(devices) * rules.NASAL_DEVICE_MG) if devices else float(state.dose.dose_mg)
    dose = None if dose_mg is None else ("56" if dose_mg == 56 else "84" if dose_mg == 84 else "other")
    end = end_of_monitoring or s.discharged_at or state.now
    total = _minutes_between(first_device, end) if first_device else None

    ready_entry = state.checklist.get("rems_ready_minutes")
    ready = int(ready_entry.answer) if ready_entry and ready_entry.answer.strip().isdigit() else None

    # before dosing: the gate's blood-pressure rule
    before = first_device or state.now
    baseline = [r for r in state.readings if r.phase == "baseline" and _has_bp(r) and r.measured_at <= before]
    bp_before = baseline[-1] if baseline else None
    ok_before: bool | None = None
    if bp_before is not None:
        high = bp_before.systolic > t.predose_systolic_max or bp_before.diastolic > t.predose_diastolic_max
        decision = state.checklist.get("bp_gate_decision")
        ok_before = not high or rules.prescriber_choice(decision.answer if decision else None) == "dose"

    after = [r for r in state.readings if first_device and r.measured_at > first_device and r.phase != "baseline"]
    bp_40 = None
    if first_device:
        target = first_device + timedelta(minutes=REMS_BP_AT_MINUTES)
        window = timedelta(minutes=REMS_BP_WINDOW_MINUTES)
        near = [r for r in after if _has_bp(r) and abs(r.measured_at - target) <= window]
        bp_40 = min(near, key=lambda r: (abs(r.measured_at - target), r.measured_at), default=None)
    fresh = timedelta(minutes=rules.VITALS_FRESH_MINUTES)
    leaving = [r for r in after if _has_bp(r) and end - fresh <= r.measured_at <= end]
    bp_leaving = leaving[-1] if leaving else None
    vitals_back = next((c.met for c in state.discharge if c.code == "vitals_back"), None)

    events = effective_adverse_events(state.adverse_events)
    kinds = {e.kind for e in events}

    def after_dosing(scale: str) -> list[int]:
        return [sc.total for sc in state.score_values(scale) if first_device and sc.measured_at > first_device]

    moaas = after_dosing("MOAA/S")
    sedation = True if kinds & set(SEDATION_KINDS) else (any(v < 5 for v in moaas) if moaas else None)
    cadss = after_dosing("CADSS-6")
    cadss_base = [sc.total for sc in state.score_values("CADSS-6") if sc.measured_at <= before]
    base = cadss_base[-1] if cadss_base else 0
    dissociation = any(v > base for v in cadss) if cadss else None
    breathing = [r for r in after if r.spo2 is not None or r.respiratory_rate is not None]
    if kinds & set(RESPIRATORY_KINDS):
        respiratory: bool | None = True
    elif breathing:
        respiratory = any((r.spo2 is not None and r.spo2 < t.spo2_low)
                          or (r.respiratory_rate is not None and r.respiratory_rate < t.respiratory_rate_low)
                          for r in breathing)
    else:
        respiratory = None
    others = [e for e in events if e.kind not in SEDATION_KINDS + RESPIRATORY_KINDS]

    return RemsForm(
        session_id=s.id, patient_name=f"{patient.given_name} {patient.family_name}",
        date_of_birth=patient.date_of_birth, sex=SEXES.get(patient.sex, patient.sex),
        first_treatment=first_treatment, enrolled=enrolled, **meds,
        monitoring_clinician=clinician, site=state.site.name,
        date=(first_device or s.starts_at).astimezone(state.zone).date(),
        dose_mg=dose_mg, dose=dose, lot_number=state.dose.lot_number if state.dose else None,
        first_device_at=first_device, end_of_monitoring_at=end if first_device else None, total_minutes=total,
        ready_minutes=ready, vitals_ok_before_dosing=ok_before,
        vitals_ok_before_leaving=vitals_back if after else None,
        bp_before_dosing=_bp(bp_before), bp_at_40_minutes=_bp(bp_40),
        bp_at_40_measured_minute=_minutes_between(first_device, bp_40.measured_at) if bp_40 else None,
        bp_before_leaving=_bp(bp_leaving), sedation=sedation, dissociation=dissociation,
        respiratory_depression=respiratory, other_adverse_events=bool(others),
        other_adverse_events_described="; ".join(
            f"{ADVERSE_EVENT_KINDS[e.kind]} ({SEVERITIES[e.severity].lower()})" for e in others),
    )


def rems_missing(form: RemsForm) -> list[str]:
    """What the form still lacks, one entry per field, in the form's order (empty when complete).

    A field is missing when it is None (optional descriptive fields aside). Also refused: fewer than 120
    minutes from the first device to the end of monitoring, and "ready to leave" minutes beyond the time
    the patient was actually monitored.
    """
    out = []
    for name in RemsForm.field_names():
        if name in _OPTIONAL:
            continue
        value = getattr(form, name)
        label = REMS_LABELS[name]
        if value is None:
            how = _HOW_TO_FILL.get(name)
            out.append(f"{label} ({how})" if how else label)
        elif name == "total_minutes" and value < REMS_MIN_MINUTES:
            out.append(f"{label} ({value}; at least {REMS_MIN_MINUTES} are needed)")
        elif name == "ready_minutes" and form.total_minutes is not None and value > form.total_minutes:
            out.append(f"{label} ({value} is more than the {form.total_minutes} minutes the patient was monitored)")
    return out


def _cell(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rems_csv(form: RemsForm, zone: ZoneInfo) -> str:
    """The form as CSV: one header row of field names, one row of values (yes/no, ISO dates, local times)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = RemsForm.field_names()
    writer.writerow(names)
    writer.writerow([_cell(getattr(form, n), zone) for n in names])
    return out.getvalue()


# --- adverse-event reports (pure) ----------------------------------------------------------------

PRODUCTS = {"iv": "Ketamine hydrochloride injection", "im": "Ketamine hydrochloride injection",
            "intranasal": "Esketamine nasal spray (Spravato)"}


@dataclass(frozen=True)
class ReportPatient:
    identifier: str  # the MRN: lets the clinic find the case again; never the name
    initials: str
    age_years: int
    sex: str
    weight_kg: float | None
    allergies: str | None


@dataclass(frozen=True)
class ReportEvent:
    id: int
    kind: str
    kind_label: str
    description: str | None
    severity: str
    severity_label: str
    onset_at: datetime
    onset_date: date  # in the site's time zone
    resolved_at: datetime | None
    action_taken: str | None
    outcome: str
    outcome_label: str
    serious: bool
    seriousness: list[str] | None  # SERIOUSNESS_CRITERIA codes ticked; None: not assessed yet
    seriousness_labels: list[str]
    relevant_vitals: list[str]  # the readings within 30 minutes of the onset


@dataclass(frozen=True)
class ReportProduct:
    name: str
    route: str
    dose_mg: float
    mg_per_kg: float | None
    lot_number: str
    started_at: datetime
    stopped_at: datetime | None
    indication: str | None


@dataclass(frozen=True)
class ReportReporter:
    name: str
    role: str
    site: str
    clinic: str


@dataclass(frozen=True)
class AdverseEventReport:
    """A voluntary adverse-event report (FDA MedWatch 3500 sections A–E) without the patient's name."""

    event_id: int
    session_id: int
    patient: ReportPatient
    event: ReportEvent
    product: ReportProduct | None  # None when the event came before any dose
    concomitant_medications: list[str]
    reporter: ReportReporter
    reportable: bool
    reported_at: datetime | None
    reported_by: str | None


def _age(dob: date, on: date) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def _initials(patient: Patient) -> str:
    return "".join(f"{n.strip()[0].upper()}." for n in (patient.given_name, patient.family_name) if n.strip())


def concomitant_medications(session_answer: str | None, evaluation_medications: str | None) -> list[str]:
    """The interacting medicines taken (session answer first, then the eligibility evaluation's
    `current_medications`: its classes answered yes and its other medications), without repeats."""
    labels = eligibility_rules.INTERACTING_CLASSES
    out: list[str] = []
    seen: set[str] = set()

    def add(code: str, source: str) -> None:
        if code not in seen:
            seen.add(code)
            out.append(f"{labels[code]} ({source})")

    parsed = interacting_answer(session_answer)
    if parsed:
        for code, taking in parsed[0].items():
            if taking:
                add(code, "asked at this session")
        if parsed[1]:
            out.append(f"Note at this session: {parsed[1]}")
    for code, taking in (eligibility_rules.interacting_answers(evaluation_medications) or {}).items():
        if taking:
            add(code, "eligibility evaluation")
    other = eligibility_rules.parse_sections(evaluation_medications,
                                             untitled=eligibility_rules.OTHER_MEDICATIONS
                                             ).get(eligibility_rules.OTHER_MEDICATIONS)
    out.extend(line.strip(" -•") for line in (other or "").splitlines() if line.strip(" -•"))
    return out


def ae_report(event: AdverseEvent, state: MonitorState, *, reporter: ReportReporter, weight_kg: float | None,
              evaluation_medications: str | None = None, indication: str | None = None,
              reported_by: str | None = None) -> AdverseEventReport:
    """The report of one adverse event of the session in `state`.

    The patient appears by MRN, initials, age at the onset (site's zone), sex and weight, never by name.
    The suspect product is the session's dose (ketamine or esketamine) with route, lot and times.
    """
    patient, zone = state.patient, state.zone
    onset_day = event.onset_at.astimezone(zone).date()
    criteria = json.loads(event.seriousness_json) if event.seriousness_json else None
    window = timedelta(minutes=30)
    vitals = []
    for r in state.readings:
        if abs(r.measured_at - event.onset_at) <= window:
            parts = [f"BP {r.systolic or '–'}/{r.diastolic or '–'} mmHg"]
            parts += [f"{label} {v}{unit}" for label, v, unit in (("HR", r.heart_rate, " bpm"), ("SpO2", r.spo2, " %"),
                                                                 ("RR", r.respiratory_rate, "/min"))
                      if v is not None]
            vitals.append(f"{r.measured_at.astimezone(zone):%H:%M}: " + ", ".join(parts))
    dose = state.dose
    product = None
    if dose is not None:
        product = ReportProduct(name=PRODUCTS[dose.route], route=ROUTES[dose.route], dose_mg=float(dose.dose_mg),
                                mg_per_kg=dose.mg_per_kg, lot_number=dose.lot_number, started_at=dose.started_at,
                                stopped_at=dose.stopped_at or state.session.dosing_ended_at, indication=indication)
    answer = state.checklist.get("interacting_medications")
    return AdverseEventReport(
        event_id=event.id, session_id=state.session.id,
        patient=ReportPatient(identifier=patient.mrn, initials=_initials(patient),
                              age_years=_age(patient.date_of_birth, onset_day), sex=SEXES.get(patient.sex, patient.sex),
                              weight_kg=weight_kg, allergies=patient.allergies),
        event=ReportEvent(
            id=event.id, kind=event.kind, kind_label=ADVERSE_EVENT_KINDS[event.kind], description=event.description,
            severity=event.severity, severity_label=SEVERITIES[event.severity], onset_at=event.onset_at,
            onset_date=onset_day, resolved_at=event.resolved_at, action_taken=event.action_taken,
            outcome=event.outcome, outcome_label=AE_OUTCOMES[event.outcome], serious=event.serious,
            seriousness=criteria, seriousness_labels=[SERIOUSNESS_CRITERIA[c] for c in criteria or []],
            relevant_vitals=vitals),
        product=product,
        concomitant_medications=concomitant_medications(answer.answer if answer else None, evaluation_medications),
        reporter=reporter, reportable=event.reportable, reported_at=event.reported_at, reported_by=reported_by,
    )


def is_reportable(*, kind: str, severity: str, serious: bool, always_report: list[str] | tuple[str, ...]) -> bool:
    """Whether an adverse event is flagged for onward reporting: serious, severe or life-threatening, or of
    a kind the clinic's policy names (config.toml `[reporting] always_report`)."""
    return serious or severity in ("severe", "life_threatening") or kind in always_report


# --- services: the REMS form ---------------------------------------------------------------------


def _session(db: Session, session_id: int) -> TreatmentSession:
    row = db.get(TreatmentSession, session_id)
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    return row


def rems_facts(db: Session, state: MonitorState) -> dict[str, Any]:
    """What `rems_form` needs from outside the session: first treatment, REMS enrolment, the clinician."""
    s = state.session
    anchor = s.dosing_started_at or s.starts_at
    earlier = db.exec(
        select(TreatmentSession.id)
        .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
        .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
        .where(TreatmentSession.patient_id == s.patient_id, TreatmentSession.id != s.id,
               Protocol.route == "intranasal", TreatmentSession.dosing_started_at.is_not(None),
               TreatmentSession.dosing_started_at < anchor)
    ).first()
    consents = db.exec(select(Consent).where(Consent.patient_id == s.patient_id,
                                             Consent.kind == "rems_enrolment")).all()
    enrolled = any(consent_status(c.signed_at, c.expires_at, c.revoked_at, state.now) in ("current", "expiring")
                   for c in consents)
    nurse_id = s.nurse_id or (state.dose.administered_by_id if state.dose else None)
    nurse = db.get(StaffUser, nurse_id) if nurse_id else None
    return {"first_treatment": earlier is None, "enrolled": enrolled, "clinician": nurse.full_name if nurse else None}


def rems_discharge_problems(db: Session, state: MonitorState, *, now: datetime) -> list[str]:
    """What the REMS form would still lack if the session were discharged at `now` (see `rems_missing`)."""
    return rems_missing(rems_form(state, **rems_facts(db, state), end_of_monitoring=now))


@dataclass(frozen=True)
class RemsView:
    form: RemsForm
    missing: list[str]
    state: MonitorState
    final: bool  # the session is discharged: the form is as it will be sent


def rems_for_session(db: Session, actor: Actor, settings: Settings, session_id: int, *, now: datetime,
                     action: str = "print") -> RemsView:
    """The REMS form of an intranasal session; the read is audited (`action`: "print" or "export").

    A discharged session is read as it stood at its discharge; one still open, as if discharged `now`.
    """
    session = _session(db, session_id)
    state = load_state(db, settings, session_id, now=session.discharged_at or now)
    if state.protocol.route != "intranasal":
        raise NotFound("The Spravato REMS form is for intranasal esketamine sessions only.")
    form = rems_form(state, **rems_facts(db, state))
    audit.record(db, actor, action, "treatment_session", session_id, patient_id=session.patient_id,
                 detail="Spravato REMS monitoring form" + (" (CSV)" if action == "export" else ""), at=now)
    db.commit()
    return RemsView(form=form, missing=rems_missing(form), state=state, final=session.status == "discharged")


# --- services: adverse-event reports -------------------------------------------------------------


class SeriousnessIn(BaseModel):
    """The seriousness criteria the reporter ticks (codes of clinic.vocab.SERIOUSNESS_CRITERIA)."""

    model_config = ConfigDict(extra="forbid")

    criteria: list[str] = []

    @field_validator("criteria")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in SERIOUSNESS_CRITERIA]
        if unknown:
            raise ValueError(f"unknown criterion {', '.join(unknown)}; use {', '.join(SERIOUSNESS_CRITERIA)}")
        return [c for c in SERIOUSNESS_CRITERIA if c in v]


_AE = AdverseEvent.__table__


def _event(db: Session, event_id: int) -> AdverseEvent:
    row = db.get(AdverseEvent, event_id)
    if row is None:
        raise NotFound(f"No adverse event with id {event_id}.")
    return row


def _reporter(user: StaffUser | None, roles: frozenset[str] | set[str], site: Site, settings: Settings
              ) -> ReportReporter:
    role = ", ".join(ROLES[r] for r in sorted(roles) if r in ROLES) or "—"
    return ReportReporter(name=user.full_name if user else "—", role=role, site=site.name, clinic=settings.clinic.name)


def report_for_event(db: Session, actor: Actor, settings: Settings, event_id: int, *, now: datetime,
                     action: str = "print") -> AdverseEventReport:
    """The report of one adverse event; the read is audited (`action`: "print" for the page, "export")."""
    event = _event(db, event_id)
    state = load_state(db, settings, event.session_id, now=now)
    if event.reported_by_id:
        from clinic.auth.models import StaffRole

        who = db.get(StaffUser, event.reported_by_id)
        roles = set(db.exec(select(StaffRole.role).where(StaffRole.staff_user_id == event.reported_by_id)).all())
    else:
        who = db.get(StaffUser, actor.user_id) if actor.user_id else None
        roles = set(actor.roles)
    weight = state.weight_kg or db.exec(
        select(WeightMeasurement.weight_kg).where(WeightMeasurement.patient_id == event.patient_id,
                                                  WeightMeasurement.measured_at <= event.onset_at)
        .order_by(WeightMeasurement.measured_at.desc())).first()
    evaluation = db.exec(select(EligibilityEvaluation).where(EligibilityEvaluation.patient_id == event.patient_id)
                         .order_by(EligibilityEvaluation.evaluated_at.desc(), EligibilityEvaluation.id.desc())).first()
    report = ae_report(event, state, reporter=_reporter(who, roles, state.site, settings), weight_kg=weight,
                       evaluation_medications=evaluation.current_medications if evaluation else None,
                       indication=evaluation.diagnosis if evaluation else None,
                       reported_by=who.full_name if event.reported_by_id and who else None)
    audit.record(db, actor, action, "adverse_event", event_id, patient_id=event.patient_id,
                 detail="adverse event report", at=now)
    db.commit()
    return report


def set_seriousness(db: Session, actor: Actor, event_id: int, data: SeriousnessIn, *, now: datetime
                    ) -> AdverseEvent:
    """Store the seriousness criteria the reporter ticked. Any criterion makes the event serious (and
    reportable); unticking never makes a serious event non-serious. Refused once the report was sent."""
    event = _event(db, event_id)
    before = {"seriousness": json.loads(event.seriousness_json) if event.seriousness_json else None,
              "serious": event.serious, "reportable": event.reportable}
    values: dict[str, Any] = {"seriousness_json": json.dumps(data.criteria)}
    if data.criteria:
        values |= {"serious": True, "reportable": True}
    changed = db.exec(sa.update(_AE).where(_AE.c.id == event_id, _AE.c.reported_at.is_(None)).values(**values)
                      ).rowcount
    if changed != 1:
        db.rollback()
        db.refresh(event)
        raise Conflict("This report was already sent"
                       + (f" ({event.reported_at:%Y-%m-%d})" if event.reported_at else "")
                       + ": its seriousness can no longer be changed.")
    audit.record(db, actor, "update", "adverse_event", event_id, patient_id=event.patient_id, before=before,
                 after={"seriousness": data.criteria, "serious": values.get("serious", event.serious),
                        "reportable": values.get("reportable", event.reportable)},
                 detail="seriousness criteria", at=now)
    db.commit()
    db.refresh(event)
    return event


def mark_sent(db: Session, actor: Actor, event_id: int, *, now: datetime) -> tuple[AdverseEvent, bool]:
    """Record that the report went out, now and by `actor`. Returns (event, changed): a second mark (or
    one racing the first) changes nothing and records nothing."""
    event = _event(db, event_id)
    changed = db.exec(sa.update(_AE).where(_AE.c.id == event_id, _AE.c.reported_at.is_(None))
                      .values(reported_at=now, reported_by_id=actor.user_id)).rowcount == 1
    if changed:
        audit.record(db, actor, "update", "adverse_event", event_id, patient_id=event.patient_id,
                     before={"reported_at": None, "reported_by_id": None},
                     after={"reported_at": now.isoformat(), "reported_by_id": actor.user_id},
                     detail="adverse event report sent", at=now)
    db.commit()
    db.refresh(event)
    return event, changed


@dataclass(frozen=True)
class ReportableRow:
    event: AdverseEvent
    patient: Patient
    session: TreatmentSession
    site: Site


def reportable_unsent(db: Session, actor: Actor, *, now: datetime) -> list[ReportableRow]:
    """Adverse events flagged for reporting and not yet sent, oldest onset first (the read is audited)."""
    amended = select(AdverseEvent.amends_id).where(AdverseEvent.amends_id.is_not(None))
    rows = db.exec(
        select(AdverseEvent, Patient, TreatmentSession, Site)
        .join(Patient, Patient.id == AdverseEvent.patient_id)
        .join(TreatmentSession, TreatmentSession.id == AdverseEvent.session_id)
        .join(Site, Site.id == TreatmentSession.site_id)
        .where(AdverseEvent.reportable.is_(True), AdverseEvent.reported_at.is_(None),
               AdverseEvent.id.not_in(amended))
        .order_by(AdverseEvent.onset_at, AdverseEvent.id)).all()
    audit.record(db, actor, "view", "adverse_event", None,
                 detail=f"reportable adverse events not yet sent ({len(rows)})", at=now)
    db.commit()
    return [ReportableRow(*r) for r in rows]
