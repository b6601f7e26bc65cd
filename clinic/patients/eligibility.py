"""Eligibility before a first course: a prescriber's evaluation, recorded and audited in one transaction.

The rules (contraindications that an "eligible" decision must address, the flags an evaluation sets,
how answers without a column of their own are kept) are in `clinic.patients.eligibility_rules`.
`clinic.sessions.booking.readiness_problems` reads the newest evaluation (by `evaluated_at`): a course
can be ordered only while it says "eligible" and `valid_until` has not passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.permissions import allowed
from clinic.config import Settings
from clinic.errors import Forbidden, InvalidInput, NotFound
from clinic.patients import eligibility_rules as rules
from clinic.patients.models import EligibilityEvaluation, Patient, PatientFlag
from clinic.vocab import ELIGIBILITY_DECISIONS

FLAG_NOTE = "From the eligibility evaluation of {day}."


class EvaluationIn(BaseModel):
    """A prescriber's eligibility evaluation (the same model for the page and the JSON API)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    diagnosis: str = Field(min_length=1, max_length=500, description="Working diagnosis (e.g. treatment-resistant "
                                                                    "depression)")
    prior_treatments: str | None = Field(default=None, max_length=4000,
                                         description="Treatments tried before (medicines, therapies, ECT/TMS)")
    psychiatric_history: str | None = Field(default=None, max_length=4000)
    psychosis_history: bool = Field(default=False, description="Any psychotic episode, now or in the past")
    psychosis_details: str | None = Field(default=None, max_length=2000)
    substance_use_history: str | None = Field(default=None, max_length=4000)
    substance_screen_score: int | None = Field(default=None, ge=0, le=10, description="DAST-10 score, 0–10")
    medical_history: str | None = Field(default=None, max_length=4000)
    contraindications: list[str] = Field(default_factory=list,
                                         description="Codes from the clinic's contraindication list")
    interacting_medications: list[str] = Field(
        default_factory=list, description="Interacting classes the patient takes (each class not listed was asked "
                                          "about and is not taken): " + ", ".join(rules.INTERACTING_CLASSES))
    other_medications: str | None = Field(default=None, max_length=4000)
    baseline_systolic: int | None = Field(default=None, ge=rules.SYSTOLIC_RANGE[0], le=rules.SYSTOLIC_RANGE[1],
                                          description="mmHg")
    baseline_diastolic: int | None = Field(default=None, ge=rules.DIASTOLIC_RANGE[0], le=rules.DIASTOLIC_RANGE[1],
                                           description="mmHg")
    decision: str = Field(description="eligible, not_eligible or deferred")
    reasons: str = Field(min_length=3, max_length=4000)
    valid_until: date | None = Field(default=None, description="Last day the evaluation is current; "
                                                               "empty: today + the clinic's valid_days")

    @field_validator("decision")
    @classmethod
    def _decision(cls, v: str) -> str:
        if v not in ELIGIBILITY_DECISIONS:
            raise ValueError(f"choose one of: {', '.join(ELIGIBILITY_DECISIONS)}")
        return v

    @field_validator("interacting_medications")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in rules.INTERACTING_CLASSES]
        if unknown:
            raise ValueError(f"unknown medicine class {', '.join(unknown)}; use {', '.join(rules.INTERACTING_CLASSES)}")
        return sorted(set(v))

    @field_validator("contraindications")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    def values(self) -> rules.EvaluationValues:
        return rules.EvaluationValues(
            decision=self.decision, reasons=self.reasons, contraindications=tuple(self.contraindications),
            substance_use_history=self.substance_use_history, substance_screen_score=self.substance_screen_score,
            psychosis_history=self.psychosis_history, baseline_systolic=self.baseline_systolic,
            baseline_diastolic=self.baseline_diastolic, valid_until=self.valid_until)


@dataclass(frozen=True)
class EvaluationView:
    """One evaluation as people read it: the row plus the answers kept in its text sections."""

    row: EligibilityEvaluation
    status: str  # eligible, not_eligible, deferred, or expired
    contraindications: list[tuple[str, str]]  # (code, label)
    psychiatric_history: str | None
    psychosis_details: str | None
    medical_history: str | None
    interacting: dict[str, bool] | None  # None: not asked class by class (older records)
    other_medications: str | None

    @property
    def expired(self) -> bool:
        return self.status == "expired"


@dataclass(frozen=True)
class Recorded:
    evaluation: EligibilityEvaluation
    flags_set: list[PatientFlag]


def catalogue(settings: Settings):
    """The clinic's contraindication list (config.toml `[eligibility] contraindications`)."""
    return settings.eligibility.contraindications


def as_view(row: EligibilityEvaluation, settings: Settings, today: date) -> EvaluationView:
    labels = {c.code: c.label for c in catalogue(settings)}
    history = rules.parse_sections(row.medical_history, untitled=rules.MEDICAL)
    meds = rules.parse_sections(row.current_medications, untitled=rules.OTHER_MEDICATIONS)
    return EvaluationView(
        row=row,
        status=rules.evaluation_status(row.decision, row.valid_until, today),
        contraindications=[(c, labels.get(c, c.replace("_", " "))) for c in json.loads(row.contraindications_json
                                                                                        or "[]")],
        psychiatric_history=history.get(rules.PSYCHIATRIC),
        psychosis_details=history.get(rules.PSYCHOSIS),
        medical_history=history.get(rules.MEDICAL),
        interacting=rules.interacting_answers(row.current_medications),
        other_medications=meds.get(rules.OTHER_MEDICATIONS),
    )


def get_patient(db: Session, patient_id: int) -> Patient:
    patient = db.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {patient_id}.")
    return patient


def record_evaluation(db: Session, actor: Actor, patient_id: int, data: EvaluationIn, *, now: datetime,
                      today: date, settings: Settings) -> Recorded:
    """Save a prescriber's evaluation; open the flags it calls for. Audited; nothing saved on a problem.

    `today` is the clinic's local date (the default validity counts from it).
    """
    if not allowed(actor.roles, "eligibility.record"):
        raise Forbidden("Only a prescriber can record an eligibility evaluation.")
    get_patient(db, patient_id)
    problems = rules.evaluation_problems(data.values(), catalogue(settings), today=today)
    if problems:
        raise InvalidInput("Please check: " + ", ".join(k.replace("_", " ") for k in problems) + ".",
                           fields=problems)
    row = EligibilityEvaluation(
        patient_id=patient_id, prescriber_id=actor.user_id, evaluated_at=now, diagnosis=data.diagnosis,
        prior_treatments=data.prior_treatments,
        psychosis_history=data.psychosis_history,
        substance_use_history=data.substance_use_history,
        substance_screen_score=data.substance_screen_score,
        medical_history=rules.compose_sections({rules.PSYCHIATRIC: data.psychiatric_history,
                                                rules.PSYCHOSIS: data.psychosis_details,
                                                rules.MEDICAL: data.medical_history}),
        contraindications_json=json.dumps(data.contraindications),
        current_medications=rules.medications_text(data.interacting_medications, data.other_medications),
        baseline_systolic=data.baseline_systolic, baseline_diastolic=data.baseline_diastolic,
        decision=data.decision, reasons=data.reasons,
        valid_until=data.valid_until or rules.default_valid_until(today, settings.eligibility.valid_days),
    )
    db.add(row)
    db.flush()
    audit.record(db, actor, "create", "eligibility_evaluation", row.id, patient_id=patient_id, at=now,
                 after=audit.snapshot(row) | {"interacting_medications": data.interacting_medications})
    open_kinds = db.exec(select(PatientFlag.kind).where(PatientFlag.patient_id == patient_id,
                                                        PatientFlag.cleared_at.is_(None))).all()
    flags = []
    for kind in rules.flags_to_set(data.values(), open_kinds=open_kinds,
                                   substance_flag_score=settings.eligibility.substance_flag_score):
        flag = PatientFlag(patient_id=patient_id, kind=kind, note=FLAG_NOTE.format(day=today.isoformat()),
                           set_at=now, set_by_id=actor.user_id)
        db.add(flag)
        db.flush()
        audit.record(db, actor, "create", "patient_flag", flag.id, patient_id=patient_id, at=now,
                     after=audit.snapshot(flag), detail=f"set by eligibility evaluation {row.id}")
        flags.append(flag)
    db.commit()
    return Recorded(row, flags)


def latest(db: Session, patient_id: int, settings: Settings, today: date) -> EvaluationView | None:
    """The newest evaluation of a patient (the one booking reads), or None. Not audited on its own:
    callers show it within a read that is."""
    row = db.exec(select(EligibilityEvaluation).where(EligibilityEvaluation.patient_id == patient_id)
                  .order_by(EligibilityEvaluation.evaluated_at.desc(), EligibilityEvaluation.id.desc())).first()
    return as_view(row, settings, today) if row else None


def history(db: Session, actor: Actor, patient_id: int, settings: Settings, today: date) -> list[EvaluationView]:
    """Every evaluation of a patient, newest first; the read is audited."""
    get_patient(db, patient_id)
    rows = db.exec(select(EligibilityEvaluation).where(EligibilityEvaluation.patient_id == patient_id)
                   .order_by(EligibilityEvaluation.evaluated_at.desc(), EligibilityEvaluation.id.desc())).all()
    audit.record(db, actor, "view", "patient", patient_id, patient_id=patient_id, detail="eligibility evaluations")
    db.commit()
    return [as_view(r, settings, today) for r in rows]
