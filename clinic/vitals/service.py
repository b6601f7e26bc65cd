"""Session monitoring: from check-in to discharge.

Every entry from the tablet carries a client-generated key. Saving the same key twice (a double tap,
a retry after a dropped connection, a resubmission after the idle lock) returns the entry that was
saved the first time: nothing is duplicated and nothing is lost. Entries are append-only; a mistake is
corrected by an amendment that points to the original and gives a reason. Threshold alerts are raised
in the same transaction as the reading that crosses them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.service import current_credentials
from clinic.config import ReportingSection, Settings
from clinic.errors import Conflict, InvalidInput, NotFound
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import Consent, Patient, WeightMeasurement
from clinic.patients.rules import consent_status
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.validation import choice
from clinic.vitals import rules
from clinic.vitals.models import AdverseEvent, Alert, ChecklistEntry, DoseAdministration, DoseEvent, VitalsReading
from clinic.vocab import ADVERSE_EVENT_KINDS, AE_OUTCOMES, ALERT_ACTIONS, CHECKLIST_ITEMS, SCALES, SEVERITIES

CONSENT_FOR_ROUTE = {"iv": "ketamine", "im": "ketamine", "intranasal": "esketamine"}
PRE_DOSE_ITEMS = ("consent_current", "escort_confirmed", "fasting_confirmed", "interacting_medications",
                  "weight_today", "baseline_vitals", "baseline_cadss", "baseline_moaas")
# The administering nurse needs a current licence and life-support certification.
REQUIRED_CREDENTIALS = ("nursing_licence", ("acls", "bls"))
MEASURED_AT_PAST_LIMIT = timedelta(hours=4)  # "editable within reason"
MEASURED_AT_FUTURE_LIMIT = timedelta(minutes=2)
VITAL_FIELDS = ("systolic", "diastolic", "heart_rate", "spo2", "respiratory_rate", "temperature_c")


# --- inputs -------------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_key: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                            description="Made by the tablet once per entry; resending it never duplicates")


class VitalsIn(_Entry):
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    spo2: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None
    measured_at: datetime | None = Field(default=None, description="When measured (default: when saved)")
    before_discharge: bool = False


class ScoreIn(_Entry):
    scale: choice(SCALES)
    items: list[int] = Field(min_length=1)
    measured_at: datetime | None = None



class ChecklistIn(_Entry):
    item: choice(CHECKLIST_ITEMS)
    answer: str = Field(min_length=1, max_length=1000)



class WeightIn(_Entry):
    weight_kg: float


class DoseIn(_Entry):
    amount: float = Field(gt=0, description="mg/kg, or mg for a fixed-dose protocol")
    concentration_mg_per_ml: float | None = Field(default=None, gt=0, le=100)
    lot_number: str = Field(min_length=1, max_length=60)
    started_at: datetime | None = None


class DoseEventIn(_Entry):
    kind: choice(("pause", "resume", "stop", "device"), "choose pause, resume, stop or device")
    reason: str | None = Field(default=None, max_length=500)
    at: datetime | None = None



class AdverseEventIn(_Entry):
    kind: choice(ADVERSE_EVENT_KINDS, "choose an event from the list")
    description: str | None = Field(default=None, max_length=2000)
    severity: choice(SEVERITIES)
    onset_at: datetime | None = None
    action_taken: str | None = Field(default=None, max_length=1000)
    outcome: choice(AE_OUTCOMES) = "ongoing"
    serious: bool = False





class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: choice(ALERT_ACTIONS, "choose the action taken")
    note: str | None = Field(default=None, max_length=1000)



class AmendVitalsIn(VitalsIn):
    reason: str = Field(min_length=3, max_length=500)


class DischargeIn(_Entry):
    nausea_controlled: bool = False
    escort_present: bool = False
    instructions_given: bool = False
    override_reason: str | None = Field(default=None, max_length=1000)
    rems_ready_minutes: int | None = Field(
        default=None, ge=0, le=720,
        description="Spravato only: minutes after the first device until the patient would have been ready to "
                    "leave without the 2-hour rule (REMS form)")


class DecisionIn(_Entry):
    decision: choice(("dose", "hold"), "choose dose or hold")
    note: str | None = Field(default=None, max_length=500)



# --- the state of one session -------------------------------------------------------------------


@dataclass
class MonitorState:
    session: TreatmentSession
    course: TreatmentCourse
    protocol: Protocol
    patient: Patient
    site: Site
    chair: Chair
    zone: ZoneInfo
    checklist: dict[str, ChecklistEntry]
    readings: list[VitalsReading]  # effective (amended originals left out)
    amended: dict[int, VitalsReading]  # original id -> the amendment that replaced it
    scores: list[ScaleResponse]
    dose: DoseAdministration | None
    dose_events: list[DoseEvent]
    adverse_events: list[AdverseEvent]
    alerts: list[Alert]  # this session's, newest first
    thresholds: rules.Thresholds
    cadence: rules.Cadence
    consent: str | None
    weight_kg: float | None
    now: datetime
    due: list[rules.Due] = field(default_factory=list)
    symptom_due: list[str] = field(default_factory=list)  # the course's symptom scales due before this dose
    gate: list[str] = field(default_factory=list)
    discharge: list[rules.Criterion] = field(default_factory=list)

    @property
    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.acknowledged_at is None]

    @property
    def minutes_since_dosing(self) -> int | None:
        if self.session.dosing_started_at is None:
            return None
        return int((self.now - self.session.dosing_started_at).total_seconds() // 60)

    def score_values(self, scale: str) -> list[ScaleResponse]:
        return [s for s in self.scores if s.scale == scale]


def _thresholds(settings: Settings, site: Site, protocol: Protocol) -> rules.Thresholds:
    site_cfg = next((s for s in settings.sites if s.code == site.code), None)
    return rules.Thresholds.merged(settings.thresholds.model_dump(),
                                   getattr(site_cfg, "thresholds", None) or None,
                                   json.loads(protocol.thresholds_json or "{}") or None)


def _get_session(db: Session, session_id: int) -> TreatmentSession:
    row = db.get(TreatmentSession, session_id)
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    return row


def _latest_by(rows, key) -> dict:
    out: dict = {}
    for r in rows:
        out[key(r)] = r  # rows come oldest first: the last one wins
    return out


def load_state(db: Session, settings: Settings, session_id: int, *, now: datetime,
               nurse_id: int | None = None) -> MonitorState:
    """Everything the tablet shows for one session, with what is due, the dosing gate and discharge."""
    session = _get_session(db, session_id)
    course = db.get(TreatmentCourse, session.course_id)
    protocol = db.get(Protocol, course.protocol_id)
    patient = db.get(Patient, session.patient_id)
    site = db.get(Site, session.site_id)
    chair = db.get(Chair, session.chair_id)
    zone = ZoneInfo(site.time_zone)
    checklist_rows = list(db.exec(select(ChecklistEntry).where(ChecklistEntry.session_id == session_id)
                                  .order_by(ChecklistEntry.recorded_at, ChecklistEntry.id)))
    all_readings = list(db.exec(select(VitalsReading).where(VitalsReading.session_id == session_id)
                                .order_by(VitalsReading.measured_at, VitalsReading.id)))
    amended = {r.amends_id: r for r in all_readings if r.amends_id}
    readings = [r for r in all_readings if r.id not in amended]
    scores = list(db.exec(select(ScaleResponse).where(ScaleResponse.session_id == session_id)
                          .order_by(ScaleResponse.measured_at, ScaleResponse.id)))
    replaced = {s.amends_id for s in scores if s.amends_id}
    scores = [s for s in scores if s.id not in replaced]
    doses = list(db.exec(select(DoseAdministration).where(DoseAdministration.session_id == session_id)
                         .order_by(DoseAdministration.id)))
    replaced_doses = {d.amends_id for d in doses if d.amends_id}
    dose = next((d for d in reversed(doses) if d.id not in replaced_doses), None)
    events = []
    if doses:
        events = list(db.exec(select(DoseEvent).where(DoseEvent.dose_id.in_([d.id for d in doses]))
                              .order_by(DoseEvent.at)))
    aes = list(db.exec(select(AdverseEvent).where(AdverseEvent.session_id == session_id)
                       .order_by(AdverseEvent.onset_at)))
    alerts = list(db.exec(select(Alert).where(Alert.session_id == session_id).order_by(Alert.raised_at.desc())))
    consents = db.exec(select(Consent).where(Consent.patient_id == patient.id,
                                             Consent.kind == CONSENT_FOR_ROUTE[protocol.route])).all()
    statuses = [consent_status(c.signed_at, c.expires_at, c.revoked_at, now) for c in consents]
    consent = next((s for s in ("current", "expiring", "expired", "revoked") if s in statuses), None)
    weight = db.exec(select(WeightMeasurement.weight_kg).where(WeightMeasurement.session_id == session_id)
                     .order_by(WeightMeasurement.measured_at.desc())).first()
    state = MonitorState(
        session=session, course=course, protocol=protocol, patient=patient, site=site, chair=chair, zone=zone,
        checklist=_latest_by(checklist_rows, lambda c: c.item), readings=readings, amended=amended, scores=scores,
        dose=dose, dose_events=events, adverse_events=aes, alerts=alerts,
        thresholds=_thresholds(settings, site, protocol),
        cadence=rules.Cadence.from_json(json.loads(protocol.cadence_json or "{}"), settings.vitals),
        consent=consent, weight_kg=weight, now=now,
    )
    if session.status in ("dosing", "recovery"):
        scores_at: dict[str, list[datetime]] = {}
        for s in scores:
            scores_at.setdefault(s.scale, []).append(s.measured_at)
        state.due = rules.due_checks(state.cadence, dosing_start=session.dosing_started_at,
                                     dosing_end=session.dosing_ended_at, now=now,
                                     vitals_at=[r.measured_at for r in readings], scores_at=scores_at)
    state.symptom_due = symptom_scales_due(db, state)
    state.gate = gate_problems(db, state, nurse_id=nurse_id)
    state.discharge = discharge_criteria(state)
    return state


def scales_due_before(when: str, *, number: int, planned: int, first_of_week: bool) -> bool:
    """Whether a symptom scale collected `when` (protocols.SCALE_WHEN) is due before session `number`."""
    return (when == "each_session_pre"
            or (when == "first_and_last_session_pre" and number in (1, planned))
            or (when == "weekly_pre" and first_of_week))


def symptom_scales_due(db: Session, state: MonitorState) -> list[str]:
    """The course's symptom scales due before this session's dose and not yet answered for it."""
    wanted = json.loads(state.protocol.scales_json or "{}")
    if not wanted:
        return []
    s = state.session
    week = s.starts_at.astimezone(state.zone).isocalendar()[:2]
    earlier = db.exec(select(TreatmentSession.starts_at).where(
        TreatmentSession.course_id == s.course_id, TreatmentSession.id != s.id,
        TreatmentSession.starts_at < s.starts_at, TreatmentSession.status.in_(
            ("checked_in", "dosing", "recovery", "discharged")))).all()
    first_of_week = not any(t.astimezone(state.zone).isocalendar()[:2] == week for t in earlier)
    since = s.checked_in_at or s.starts_at - timedelta(hours=12)
    answered = {r.scale for r in state.scores} | set(db.exec(select(ScaleResponse.scale).where(
        ScaleResponse.patient_id == s.patient_id, ScaleResponse.measured_at >= since - timedelta(hours=12))))
    return [scale for scale, when in wanted.items()
            if scale in SCALES and scales_due_before(when, number=s.number_in_course,
                                                     planned=state.course.planned_sessions,
                                                     first_of_week=first_of_week)
            and scale not in answered]


def gate_problems(db: Session, state: MonitorState, *, nurse_id: int | None) -> list[str]:
    """Why dosing cannot start now (empty when it can)."""
    today = state.now.astimezone(state.zone).date()
    creds: dict[str, date] = {}
    if nurse_id is not None:
        creds = {k: c.expires_on for k, c in current_credentials(db, nurse_id, today).items()}
        # expired ones too, so the reason can name them
        from clinic.auth.models import Credential

        for c in db.exec(select(Credential).where(Credential.staff_user_id == nurse_id,
                                                  Credential.retired_at.is_(None))):
            creds.setdefault(c.kind, c.expires_on)
    baseline = [r for r in state.readings if r.phase == "baseline"]
    predose_high = any(d.rule == "predose_bp_high" for r in baseline[-1:]
                       for d in rules.evaluate_vitals(_as_rule_reading(r), [], state.thresholds))
    decision = state.checklist.get("bp_gate_decision")
    checklist = {k: v.answer for k, v in state.checklist.items()}
    # The baseline measurements count as done when they are in the record.
    if baseline:
        checklist.setdefault("baseline_vitals", "yes")
    before = state.session.dosing_started_at or state.now
    for scale, item in (("CADSS-6", "baseline_cadss"), ("MOAA/S", "baseline_moaas")):
        if any(sc.measured_at <= before for sc in state.score_values(scale)):
            checklist.setdefault(item, "yes")
    required = list(PRE_DOSE_ITEMS)
    if state.symptom_due:
        required.append("symptom_scale")
        checklist.pop("symptom_scale", None)
    return rules.dosing_gate_problems(
        checklist=checklist, required_items=required,
        consent_status=state.consent, nurse_credentials=creds, required_credentials=REQUIRED_CREDENTIALS,
        today=today, predose_bp_high=predose_high, prescriber_decision=decision.answer if decision else None)


def discharge_criteria(state: MonitorState) -> list[rules.Criterion]:
    s = state.session
    obs_from = s.dosing_started_at if state.cadence.observation_from == "dosing_start" else s.dosing_ended_at
    baseline = next((r for r in state.readings if r.phase == "baseline"), None)
    latest = state.readings[-1] if state.readings else None
    moaas = state.score_values("MOAA/S")
    cadss = state.score_values("CADSS-6")
    baseline_cadss = next((c.total for c in cadss if c.measured_at <= (s.dosing_started_at or state.now)), None)
    after = [c for c in cadss if s.dosing_started_at and c.measured_at > s.dosing_started_at]
    checks = {k: (v.answer == "yes") for k, v in state.checklist.items()}
    return rules.discharge_criteria(
        now=state.now, observation_from=obs_from, min_observation_minutes=state.protocol.min_observation_minutes,
        latest_vitals=_as_rule_reading(latest) if latest else None,
        baseline_vitals=_as_rule_reading(baseline) if baseline else None, t=state.thresholds,
        latest_moaas=moaas[-1].total if moaas else None, baseline_cadss=baseline_cadss,
        latest_cadss=after[-1].total if after else None,
        nausea_controlled=checks.get("nausea_controlled"), escort_present=checks.get("escort_present"),
        instructions_given=checks.get("instructions_given"), observation_anchor=state.cadence.observation_from)


def _as_rule_reading(r: VitalsReading) -> rules.Reading:
    return rules.Reading(id=r.id, measured_at=r.measured_at, phase=r.phase, systolic=r.systolic, diastolic=r.diastolic,
                         heart_rate=r.heart_rate, spo2=r.spo2, respiratory_rate=r.respiratory_rate,
                         temperature_c=r.temperature_c)


# --- helpers for idempotent, audited writes ------------------------------------------------------


def sub_key(client_key: str, part: str) -> str:
    """The key of a row written on behalf of one entry (stable, so a resend writes nothing new)."""
    return hashlib.sha256(f"{client_key}:{part}".encode()).hexdigest()[:48]


def _existing(db: Session, model: type[SQLModel], client_key: str):
    return db.exec(select(model).where(model.client_key == client_key)).first()


def _save(db: Session, model: type[SQLModel], row: SQLModel) -> tuple[SQLModel, bool]:
    """Insert `row`; if another request saved the same client key first, return that one instead."""
    db.add(row)
    try:
        db.flush()
        return row, True
    except IntegrityError:
        db.rollback()
        existing = _existing(db, model, row.client_key)
        if existing is None:
            raise
        return existing, False


def _measured_at(value: datetime | None, now: datetime, *, not_before: datetime | None, name: str) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise InvalidInput("Give the time with its zone.", fields={name: "needs a time zone"})
    if value > now + MEASURED_AT_FUTURE_LIMIT:
        raise InvalidInput("That time is in the future.", fields={name: "cannot be in the future"})
    if value < now - MEASURED_AT_PAST_LIMIT or (not_before and value < not_before - timedelta(minutes=30)):
        raise InvalidInput("That time is too long ago for this session.",
                           fields={name: "must be during this session"})
    return value


def _require_status(session: TreatmentSession, allowed: tuple[str, ...], what: str) -> None:
    if session.status not in allowed:
        raise Conflict(f"{what} is not possible while the session is {session.status.replace('_', ' ')}.")


def _raise_alerts(db: Session, session: TreatmentSession, decisions: list[rules.AlertDecision], cause_table: str,
                  now: datetime, *, recipient_id: int | None = None) -> list[Alert]:
    raised = []
    for d in decisions:
        key = rules.alert_dedupe_key(d.rule, cause_table, d.cause_id)
        if db.exec(select(Alert.id).where(Alert.dedupe_key == key)).first():
            continue
        alert = Alert(site_id=session.site_id, session_id=session.id, patient_id=session.patient_id,
                      recipient_id=recipient_id, kind=d.rule, priority=d.priority, cause_table=cause_table,
                      cause_id=d.cause_id, message=d.message[:500], raised_at=now, dedupe_key=key)
        db.add(alert)
        raised.append(alert)
    return raised


# --- use cases ----------------------------------------------------------------------------------


def _phase_at(session: TreatmentSession, measured: datetime, *, before_discharge: bool = False) -> str:
    """The phase a reading belongs to, by when it was measured (a back-dated reading keeps its phase)."""
    if session.dosing_started_at is None or measured < session.dosing_started_at:
        return "baseline"
    if session.dosing_ended_at is None or measured < session.dosing_ended_at:
        return "dosing"
    return "discharge" if before_discharge else "recovery"


def record_vitals(db: Session, actor: Actor, settings: Settings, session_id: int, data: VitalsIn, *,
                  now: datetime) -> tuple[VitalsReading, list[Alert], bool]:
    """Save a set of vitals (plausibility is a hard stop), raising any threshold alert with it.

    Returns (reading, alerts raised, created); `created` is False when the client key was seen before.
    """
    existing = _existing(db, VitalsReading, data.client_key)
    if existing:
        return existing, [], False
    session = _get_session(db, session_id)
    _require_status(session, ("checked_in", "dosing", "recovery"), "Recording vitals")
    values = {k: getattr(data, k) for k in VITAL_FIELDS}
    if all(v is None for v in values.values()):
        raise InvalidInput("Enter at least one value.", fields={"systolic": "enter at least one value"})
    errors = rules.plausibility_errors(values)
    if errors:
        raise InvalidInput("Please check: " + " ".join(errors.values()), fields=errors)
    measured = _measured_at(data.measured_at, now, not_before=session.checked_in_at, name="measured_at")
    phase = _phase_at(session, measured, before_discharge=data.before_discharge)
    row = VitalsReading(session_id=session.id, patient_id=session.patient_id, phase=phase, measured_at=measured,
                        recorded_at=now, recorded_by_id=actor.user_id, client_key=data.client_key, **values)
    row, created = _save(db, VitalsReading, row)
    if not created:
        return row, [], False
    others = db.exec(select(VitalsReading).where(VitalsReading.session_id == session.id,
                                                 VitalsReading.id != row.id)).all()
    replaced = {r.amends_id for r in others if r.amends_id}
    state_readings = [r for r in others if r.id not in replaced]
    course = db.get(TreatmentCourse, session.course_id)
    protocol = db.get(Protocol, course.protocol_id)
    t = _thresholds(settings, db.get(Site, session.site_id), protocol)
    decisions = rules.evaluate_vitals(_as_rule_reading(row), [_as_rule_reading(r) for r in state_readings], t)
    alerts = _raise_alerts(db, session, decisions, "vitals_reading", now,
                           recipient_id=course.prescriber_id if phase == "baseline" else None)
    audit.record(db, actor, "create", "vitals_reading", row.id, patient_id=session.patient_id,
                 after=audit.snapshot(row))
    db.commit()
    return row, alerts, True


def amend_vitals(db: Session, actor: Actor, settings: Settings, reading_id: int, data: AmendVitalsIn, *,
                 now: datetime) -> VitalsReading:
    """Correct a reading: a new row points to the original with the reason; both stay visible."""
    existing = _existing(db, VitalsReading, data.client_key)
    if existing:
        return existing
    original = db.get(VitalsReading, reading_id)
    if original is None:
        raise NotFound(f"No reading with id {reading_id}.")
    if db.exec(select(VitalsReading.id).where(VitalsReading.amends_id == reading_id)).first():
        raise Conflict("This reading was already corrected; correct the correction instead.")
    values = {k: getattr(data, k) for k in VITAL_FIELDS}
    errors = rules.plausibility_errors(values)
    if errors:
        raise InvalidInput("Please check: " + " ".join(errors.values()), fields=errors)
    row = VitalsReading(session_id=original.session_id, patient_id=original.patient_id, phase=original.phase,
                        measured_at=data.measured_at or original.measured_at, recorded_at=now,
                        recorded_by_id=actor.user_id, client_key=data.client_key, amends_id=original.id,
                        amendment_reason=data.reason, **values)
    row, created = _save(db, VitalsReading, row)
    if created:
        audit.record(db, actor, "amend", "vitals_reading", original.id, patient_id=original.patient_id,
                     before=audit.snapshot(original), after=audit.snapshot(row), detail=data.reason)
        db.commit()
    return row


def record_score(db: Session, actor: Actor, settings: Settings, session_id: int, data: ScoreIn, *,
                 now: datetime) -> tuple[ScaleResponse, list[Alert], bool]:
    """Save a scale (item by item; the total is derived). MOAA/S and PHQ-9 item 9 can raise alerts."""
    existing = _existing(db, ScaleResponse, data.client_key)
    if existing:
        return existing, [], False
    session = _get_session(db, session_id)
    _require_status(session, ("checked_in", "dosing", "recovery"), "Recording a score")
    label, n_items, lo, hi = SCALES[data.scale]
    if len(data.items) != n_items:
        raise InvalidInput(f"{label} has {n_items} item{'s' if n_items != 1 else ''}.",
                           fields={"items": f"answer all {n_items}"})
    bad = [i + 1 for i, v in enumerate(data.items) if v < lo or v > hi]
    if bad:
        raise InvalidInput(f"Each {label} answer is {lo}–{hi}.",
                           fields={"items": f"item {bad[0]} must be {lo}–{hi}"})
    measured = _measured_at(data.measured_at, now, not_before=session.checked_in_at, name="measured_at")
    row = ScaleResponse(patient_id=session.patient_id, course_id=session.course_id, session_id=session.id,
                        scale=data.scale, measured_at=measured, recorded_at=now, recorded_by_id=actor.user_id,
                        source="staff", total=sum(data.items), client_key=data.client_key)
    row, created = _save(db, ScaleResponse, row)
    if not created:
        return row, [], False
    db.add_all([ScaleItemAnswer(response_id=row.id, item_number=i + 1, scale=data.scale, value=v)
                for i, v in enumerate(data.items)])
    course = db.get(TreatmentCourse, session.course_id)
    protocol = db.get(Protocol, course.protocol_id)
    t = _thresholds(settings, db.get(Site, session.site_id), protocol)
    decisions: list[rules.AlertDecision] = []
    recipient = None
    if data.scale == "MOAA/S":
        decisions = rules.evaluate_sedation(row.total, t, cause_id=row.id)
    elif data.scale == "PHQ-9" and data.items[8] > 0:
        recipient = course.prescriber_id
        decisions = [rules.AlertDecision(
            rule="phq9_item9", priority="high", cause_id=row.id, suggested_action="prescriber_called",
            message=f"PHQ-9 item 9 answered {data.items[8]}: thoughts of self-harm. Tell the prescriber now.")]
    alerts = _raise_alerts(db, session, decisions, "scale_response", now, recipient_id=recipient)
    audit.record(db, actor, "create", "scale_response", row.id, patient_id=session.patient_id,
                 after=audit.snapshot(row) | {"items": data.items})
    db.commit()
    return row, alerts, True


def record_checklist(db: Session, actor: Actor, session_id: int, data: ChecklistIn, *, now: datetime,
                     decided_by_id: int | None = None) -> ChecklistEntry:
    existing = _existing(db, ChecklistEntry, data.client_key)
    if existing:
        return existing
    session = _get_session(db, session_id)
    _require_status(session, ("checked_in", "dosing", "recovery"), "The checklist")
    row = ChecklistEntry(session_id=session.id, item=data.item, answer=data.answer, recorded_by_id=actor.user_id,
                         decided_by_id=decided_by_id, recorded_at=now, client_key=data.client_key)
    row, created = _save(db, ChecklistEntry, row)
    if created:
        audit.record(db, actor, "create", "checklist_entry", row.id, patient_id=session.patient_id,
                     after={"item": data.item, "answer": data.answer})
        db.commit()
    return row


def record_weight(db: Session, actor: Actor, session_id: int, data: WeightIn, *, now: datetime) -> WeightMeasurement:
    existing = db.exec(select(WeightMeasurement).where(WeightMeasurement.client_key == data.client_key)).first()
    if existing:
        return existing
    errors = rules.plausibility_errors({"weight_kg": data.weight_kg})
    if errors:
        raise InvalidInput(errors["weight_kg"], fields=errors)
    session = _get_session(db, session_id)
    _require_status(session, ("checked_in",), "Weighing before dosing")
    row = WeightMeasurement(patient_id=session.patient_id, session_id=session.id, weight_kg=data.weight_kg,
                            measured_at=now, recorded_by_id=actor.user_id, client_key=data.client_key)
    db.add(row)
    db.add(ChecklistEntry(session_id=session.id, item="weight_today", answer=f"{data.weight_kg:g} kg",
                          recorded_by_id=actor.user_id, recorded_at=now, client_key=sub_key(data.client_key, "weight")))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return db.exec(select(WeightMeasurement).where(WeightMeasurement.client_key == data.client_key)).one()
    audit.record(db, actor, "create", "weight_measurement", row.id, patient_id=session.patient_id,
                 after={"weight_kg": data.weight_kg})
    db.commit()
    return row


def prescriber_decision(db: Session, actor: Actor, session_id: int, data: DecisionIn, *, now: datetime
                        ) -> ChecklistEntry:
    """The prescriber's decision on a pre-dose blood pressure above the limit, recorded with their name."""
    if "prescriber" not in actor.roles:
        raise InvalidInput("Only a prescriber can decide whether to dose.")
    answer = data.decision + (f": {data.note}" if data.note else "")
    return record_checklist(db, actor, session_id, ChecklistIn(client_key=data.client_key, item="bp_gate_decision",
                                                                answer=answer), now=now, decided_by_id=actor.user_id)


def start_dosing(db: Session, actor: Actor, settings: Settings, session_id: int, data: DoseIn, *,
                 now: datetime) -> DoseAdministration:
    """Start dosing once every pre-dose item is in, consent is current and the nurse's credentials hold."""
    existing = _existing(db, DoseAdministration, data.client_key)
    if existing:
        return existing
    state = load_state(db, settings, session_id, now=now, nurse_id=actor.user_id)
    session, protocol = state.session, state.protocol
    _require_status(session, ("checked_in",), "Starting dosing")
    if state.gate:
        raise Conflict("Dosing cannot start yet: " + "; ".join(state.gate) + ".")
    try:
        plan = rules.dose_plan(route=protocol.route, dose_rule=protocol.dose_rule, amount=data.amount,
                               weight_kg=state.weight_kg, infusion_minutes=protocol.infusion_minutes,
                               dose_min=protocol.dose_min, dose_max=protocol.dose_max,
                               concentration_mg_per_ml=data.concentration_mg_per_ml)
    except rules.DoseError as err:
        raise InvalidInput(str(err), fields={err.field: str(err)}) from err
    started = _measured_at(data.started_at, now, not_before=session.checked_in_at, name="started_at")
    row = DoseAdministration(session_id=session.id, route=protocol.route, weight_kg=state.weight_kg,
                             mg_per_kg=plan.mg_per_kg, dose_mg=plan.dose_mg,
                             concentration_mg_per_ml=data.concentration_mg_per_ml, rate_ml_per_h=plan.rate_ml_per_h,
                             lot_number=data.lot_number, started_at=started, administered_by_id=actor.user_id,
                             recorded_at=now, client_key=data.client_key)
    row, created = _save(db, DoseAdministration, row)
    if not created:
        return row
    session.status, session.dosing_started_at, session.nurse_id = "dosing", started, actor.user_id
    session.row_version += 1
    db.add(session)
    if protocol.route == "intranasal":  # the first device is given now
        db.add(DoseEvent(dose_id=row.id, kind="device", at=started, device_number=1, recorded_by_id=actor.user_id,
                         client_key=sub_key(data.client_key, "device1")))
    audit.record(db, actor, "create", "dose_administration", row.id, patient_id=session.patient_id,
                 after=audit.snapshot(row))
    db.commit()
    return row


def dose_event(db: Session, actor: Actor, session_id: int, data: DoseEventIn, *, now: datetime) -> DoseEvent:
    """Pause, resume or stop the infusion (with a reason), or give the next nasal device."""
    existing = _existing(db, DoseEvent, data.client_key)
    if existing:
        return existing
    session = _get_session(db, session_id)
    _require_status(session, ("dosing",), "Changing the dose")
    dose = db.exec(select(DoseAdministration).where(DoseAdministration.session_id == session_id)
                   .order_by(DoseAdministration.id.desc())).first()
    events = list(db.exec(select(DoseEvent).where(DoseEvent.dose_id == dose.id).order_by(DoseEvent.at)))
    at = _measured_at(data.at, now, not_before=session.dosing_started_at, name="at")
    paused = bool(events) and [e.kind for e in events if e.kind in ("pause", "resume")][-1:] == ["pause"]
    if data.kind in ("pause", "stop") and not (data.reason or "").strip():
        raise InvalidInput("Say why.", fields={"reason": "give a reason"})
    if data.kind == "pause" and paused:
        raise Conflict("The infusion is already paused.")
    if data.kind == "resume" and not paused:
        raise Conflict("The infusion is not paused.")
    number = None
    if data.kind == "device":
        given = [e for e in events if e.kind == "device"]
        devices = int(round(dose.dose_mg / 28)) if dose.route == "intranasal" else 0
        if dose.route != "intranasal" or len(given) >= devices:
            raise Conflict("No further device is due.")
        due = rules.nasal_device_due(given[0].at, len(given))
        if at < due:
            raise Conflict(f"The next device is due {int((due - at).total_seconds() // 60) + 1} min from now "
                           "(5 minutes between devices).")
        number = len(given) + 1
    row = DoseEvent(dose_id=dose.id, kind=data.kind, at=at, reason=data.reason, device_number=number,
                    recorded_by_id=actor.user_id, client_key=data.client_key)
    row, created = _save(db, DoseEvent, row)
    if not created:
        return row
    if data.kind == "stop":
        dose.stopped_at = at
        db.add(dose)
        session.status, session.dosing_ended_at = "recovery", at
        session.row_version += 1
        db.add(session)
    audit.record(db, actor, "create", "dose_event", row.id, patient_id=session.patient_id,
                 after={"kind": data.kind, "reason": data.reason, "at": at.isoformat(), "device": number})
    db.commit()
    return row


def record_adverse_event(db: Session, actor: Actor, session_id: int, data: AdverseEventIn, *, now: datetime,
                         settings: Settings | None = None) -> AdverseEvent:
    """Record an adverse event, flagged for onward reporting when it is serious, severe or of a kind the
    clinic's policy names (`settings.reporting.always_report`; without settings, the shipped default)."""
    from clinic.vitals.reports import is_reportable  # reports builds on this module

    existing = _existing(db, AdverseEvent, data.client_key)
    if existing:
        return existing
    session = _get_session(db, session_id)
    _require_status(session, ("checked_in", "dosing", "recovery", "discharged"), "Recording an adverse event")
    if data.kind == "other" and not data.description:
        raise InvalidInput("Describe the event.", fields={"description": "describe what happened"})
    onset = _measured_at(data.onset_at, now, not_before=session.checked_in_at, name="onset_at")
    serious = data.serious or data.severity == "life_threatening"
    policy = (settings.reporting if settings is not None else ReportingSection()).always_report
    row = AdverseEvent(session_id=session.id, patient_id=session.patient_id, kind=data.kind,
                       description=data.description, severity=data.severity, onset_at=onset,
                       action_taken=data.action_taken, outcome=data.outcome, serious=serious,
                       reportable=is_reportable(kind=data.kind, severity=data.severity, serious=serious,
                                                always_report=policy), recorded_by_id=actor.user_id,
                       recorded_at=now, client_key=data.client_key)
    row, created = _save(db, AdverseEvent, row)
    if created:
        audit.record(db, actor, "create", "adverse_event", row.id, patient_id=session.patient_id,
                     after=audit.snapshot(row))
        db.commit()
    return row


def acknowledge(db: Session, actor: Actor, alert_id: int, data: AcknowledgeIn, *, now: datetime) -> Alert:
    """Acknowledge an open alert with the action taken (a second acknowledgement changes nothing)."""
    alert = db.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"No alert with id {alert_id}.")
    if alert.acknowledged_at is not None:
        return alert
    alert.acknowledged_at, alert.acknowledged_by_id = now, actor.user_id
    alert.action, alert.action_note = data.action, data.note
    db.add(alert)
    audit.record(db, actor, "acknowledge", "alert", alert.id, patient_id=alert.patient_id,
                 before={"acknowledged_at": None},
                 after={"action": data.action, "note": data.note, "acknowledged_at": now.isoformat()})
    db.commit()
    return alert


def open_site_alerts(db: Session, site_id: int) -> list[Alert]:
    return list(db.exec(select(Alert).where(Alert.site_id == site_id, Alert.acknowledged_at.is_(None))
                        .order_by(Alert.priority != "high", Alert.raised_at)))


def discharge(db: Session, actor: Actor, settings: Settings, session_id: int, data: DischargeIn, *,
              now: datetime) -> TreatmentSession:
    """Discharge when every criterion is met; otherwise only with an override reason (flagged).

    A Spravato session also needs every field of its REMS monitoring form (clinic.vitals.reports); an
    override does not replace them, since the form is a regulatory one.
    """
    session = _get_session(db, session_id)
    if session.status == "discharged":
        return session
    _require_status(session, ("recovery",), "Discharge")
    for item, value in (("nausea_controlled", data.nausea_controlled), ("escort_present", data.escort_present),
                        ("instructions_given", data.instructions_given)):
        db.add(ChecklistEntry(session_id=session.id, item=item, answer="yes" if value else "no",
                              recorded_by_id=actor.user_id, recorded_at=now, client_key=sub_key(data.client_key, item)))
    if data.rems_ready_minutes is not None:
        db.add(ChecklistEntry(session_id=session.id, item="rems_ready_minutes", answer=str(data.rems_ready_minutes),
                              recorded_by_id=actor.user_id, recorded_at=now,
                              client_key=sub_key(data.client_key, "rems")))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return _get_session(db, session_id)
    state = load_state(db, settings, session_id, now=now)
    unmet = [c for c in state.discharge if not c.met]
    override = (data.override_reason or "").strip()
    rems: list[str] = []
    if state.protocol.route == "intranasal":
        from clinic.vitals.reports import REMS_LABELS, rems_discharge_problems  # reports builds on this module

        rems = rems_discharge_problems(db, state, now=now)
    problems = []
    if unmet and len(override) < 5:
        problems.append("Not ready for discharge: " + "; ".join(f"{c.label} ({c.evidence})" for c in unmet)
                        + ". To discharge anyway, give the reason for the override.")
    if rems:
        problems.append("The Spravato REMS monitoring form still needs: " + "; ".join(rems)
                        + ". An override does not replace it.")
    if problems:
        db.rollback()
        ready_missing = rems and any(p.startswith(REMS_LABELS["ready_minutes"]) for p in rems)
        fields = {"rems_ready_minutes": "enter the minutes (REMS form)"} if ready_missing else None
        raise Conflict(" ".join(problems), fields=fields)
    session.status, session.discharged_at = "discharged", now
    session.discharge_override_reason = override if unmet else None
    session.row_version += 1
    db.add(session)
    if unmet:
        db.add(Alert(site_id=session.site_id, session_id=session.id, patient_id=session.patient_id,
                     recipient_id=state.course.prescriber_id, kind="discharge_override", priority="medium",
                     cause_table="treatment_session", cause_id=session.id, raised_at=now,
                     dedupe_key=f"discharge_override:treatment_session:{session.id}",
                     message=(f"Discharged before criteria were met ({', '.join(c.label for c in unmet)}): "
                              f"{override}")[:500]))
    audit.record(db, actor, "update", "treatment_session", session.id, patient_id=session.patient_id,
                 before={"status": "recovery"},
                 after={"status": "discharged", "override": override if unmet else None,
                        "unmet": [c.code for c in unmet]})
    db.commit()
    return session



def sweep_overdue(db: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Raise an alert for every check (vitals or score) not entered within the grace after it was due.

    Runs every minute from the scheduler, so alerts exist whether or not a tablet is open. One alert per
    session and due time (dedupe key), so running it again raises nothing new.
    """
    raised: list[Alert] = []
    ids = db.exec(select(TreatmentSession.id).where(TreatmentSession.status.in_(("dosing", "recovery")))).all()
    for session_id in ids:
        state = load_state(db, settings, session_id, now=now)
        for key, decision in rules.overdue_alerts(state.due, session_id):
            if db.exec(select(Alert.id).where(Alert.dedupe_key == key)).first():
                continue
            alert = Alert(site_id=state.site.id, session_id=session_id, patient_id=state.patient.id,
                          kind=decision.rule, priority=decision.priority, cause_table="treatment_session",
                          cause_id=session_id, message=decision.message[:500], raised_at=now, dedupe_key=key)
            db.add(alert)
            try:
                db.flush()
            except IntegrityError:  # another sweeper raised it first
                db.rollback()
                continue
            audit.record(db, audit.SYSTEM, "create", "alert", alert.id, patient_id=state.patient.id,
                         detail=decision.message[:200], at=now)
            raised.append(alert)
        db.commit()
    return raised
