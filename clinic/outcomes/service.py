"""The prescriber's dashboard of one patient: scores, course outcomes and per-session safety numbers.

Loads rows with a handful of set-based queries into pandas frames and leaves the judging to the pure
functions of `clinic.outcomes.scoring` (response, remission). Amended entries count in their latest
version only: a row that another row `amends` is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from clinic.errors import NotFound
from clinic.outcomes import scoring
from clinic.outcomes.models import ScaleResponse
from clinic.patients.models import Patient
from clinic.sessions.models import Protocol, TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent, DoseAdministration, VitalsReading
from clinic.vocab import COURSE_KINDS, INACTIVE_SESSION_STATUSES

# Symptom scales followed across courses (the in-session scores CADSS-6 and MOAA/S are per session).
TRAJECTORY_SCALES = ("PHQ-9", "GAD-7", "MADRS", "PCL-5", "HAM-A")
DONE_STATUSES = ("discharged",)
SESSION_COLUMNS = ("session_id", "course_id", "session_number", "starts_at", "status", "dose_mg", "mg_per_kg",
                   "peak_cadss6", "lowest_moaas", "systolic_baseline", "systolic_rise", "adverse_events")


@dataclass
class CourseSummary:
    course: TreatmentCourse
    protocol: Protocol
    number: int  # 1 for the patient's first course, in order of ordering
    sessions_done: int
    sessions_planned: int
    first_at: pd.Timestamp | None  # the first session or score of the course (its start on the time axis)
    outcomes: list[dict] = field(default_factory=list)  # one row of course_outcomes per scale

    @property
    def label(self) -> str:
        return f"Course {self.number} · {COURSE_KINDS.get(self.course.kind, self.course.kind)}"


@dataclass
class Dashboard:
    patient: Patient
    scores: pd.DataFrame  # SCORE_COLUMNS of scoring + response_id, session_id
    scales: list[str]  # trajectory scales the patient has, in TRAJECTORY_SCALES order
    outcomes: pd.DataFrame  # course_outcomes of every scale, concatenated
    courses: list[CourseSummary]
    sessions: pd.DataFrame  # SESSION_COLUMNS, one row per session that was not cancelled or missed


def _current(model):
    """Rows of `model` that no other row amends (the latest version of each entry)."""
    amended = select(model.amends_id).where(model.amends_id.is_not(None))
    return model.id.not_in(amended)


def _frame(db: Session, stmt, columns: list[str]) -> pd.DataFrame:
    rows = db.exec(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def _true(value) -> bool:
    return not pd.isna(value) and bool(value)


def load_scores(db: Session, patient_id: int) -> pd.DataFrame:
    """Every current scale response of the patient, with the session's number within its course."""
    stmt = (
        select(ScaleResponse.id, ScaleResponse.patient_id, ScaleResponse.course_id, ScaleResponse.session_id,
               ScaleResponse.scale, ScaleResponse.measured_at, ScaleResponse.total,
               TreatmentSession.number_in_course, TreatmentSession.course_id)
        .join(TreatmentSession, TreatmentSession.id == ScaleResponse.session_id, isouter=True)
        .where(ScaleResponse.patient_id == patient_id, _current(ScaleResponse))
        .order_by(ScaleResponse.measured_at, ScaleResponse.id)
    )
    df = _frame(db, stmt, ["response_id", "patient_id", "course_id", "session_id", "scale", "measured_at", "total",
                           "session_number", "session_course_id"])
    # A score taken in a session belongs to that session's course even when course_id was left blank.
    df["measured_at"] = _utc(df["measured_at"])
    df["total"] = pd.to_numeric(df["total"]).astype("float64")
    df["session_number"] = pd.to_numeric(df["session_number"]).astype("float64")
    df["course_id"] = pd.to_numeric(df["course_id"].fillna(df["session_course_id"])).astype("float64")
    return df.drop(columns="session_course_id")


def course_outcomes(scores: pd.DataFrame, scales: list[str]) -> pd.DataFrame:
    """`scoring.course_outcomes` of each scale, one frame (columns scoring.OUTCOME_COLUMNS)."""
    frames = [scoring.course_outcomes(scores, scale=s) for s in scales]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return scoring._empty_outcomes(scores)
    return pd.concat(frames, ignore_index=True)


def session_table(db: Session, patient_id: int, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per session (not cancelled or missed): dose, peak CADSS-6 after dosing, lowest MOAA/S,
    the largest systolic rise over the session's baseline and the number of adverse events."""
    sessions = _frame(db, select(TreatmentSession.id, TreatmentSession.course_id, TreatmentSession.number_in_course,
                                 TreatmentSession.starts_at, TreatmentSession.status,
                                 TreatmentSession.dosing_started_at)
                      .where(TreatmentSession.patient_id == patient_id,
                             TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES))
                      .order_by(TreatmentSession.starts_at),
                      ["session_id", "course_id", "session_number", "starts_at", "status", "dosing_started_at"])
    if sessions.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in SESSION_COLUMNS})
    ids = [int(i) for i in sessions["session_id"]]
    sessions["starts_at"] = _utc(sessions["starts_at"])
    doses = _frame(db, select(DoseAdministration.session_id, DoseAdministration.dose_mg, DoseAdministration.mg_per_kg,
                              DoseAdministration.weight_kg, DoseAdministration.started_at)
                   .where(DoseAdministration.session_id.in_(ids), _current(DoseAdministration)),
                   ["session_id", "dose_mg", "mg_per_kg", "weight_kg", "started_at"])
    doses["started_at"] = _utc(doses["started_at"])
    for c in ("dose_mg", "mg_per_kg", "weight_kg"):
        doses[c] = pd.to_numeric(doses[c]).astype("float64")
    # mg/kg as recorded, or worked out from the weight; a session's total is the sum of its doses.
    doses["mg_per_kg"] = doses["mg_per_kg"].fillna(doses["dose_mg"] / doses["weight_kg"])
    dose = doses.groupby("session_id").agg(dose_mg=("dose_mg", "sum"), mg_per_kg=("mg_per_kg", "sum"),
                                           first_dose_at=("started_at", "min"))
    unknown = doses["mg_per_kg"].isna().groupby(doses["session_id"]).sum()
    dose["mg_per_kg"] = dose["mg_per_kg"].where(unknown.reindex(dose.index) == 0)

    df = sessions.set_index("session_id").join(dose)
    df["dosing_at"] = _utc(df["dosing_started_at"]).fillna(df["first_dose_at"])

    s = scores[scores["session_id"].isin(ids)].copy()
    s["dosing_at"] = s["session_id"].map(df["dosing_at"])
    after = s[s["dosing_at"].notna() & (s["measured_at"] >= s["dosing_at"])]
    df["peak_cadss6"] = after[after["scale"] == "CADSS-6"].groupby("session_id")["total"].max()
    df["lowest_moaas"] = after[after["scale"] == "MOAA/S"].groupby("session_id")["total"].min()

    vitals = _frame(db, select(VitalsReading.session_id, VitalsReading.phase, VitalsReading.measured_at,
                               VitalsReading.systolic)
                    .where(VitalsReading.session_id.in_(ids), VitalsReading.systolic.is_not(None),
                           _current(VitalsReading))
                    .order_by(VitalsReading.measured_at),
                    ["session_id", "phase", "measured_at", "systolic"])
    vitals["measured_at"] = _utc(vitals["measured_at"])
    vitals["systolic"] = pd.to_numeric(vitals["systolic"]).astype("float64")
    vitals["dosing_at"] = vitals["session_id"].map(df["dosing_at"])
    is_after = vitals["dosing_at"].notna() & (vitals["measured_at"] >= vitals["dosing_at"])
    before = vitals[~is_after & ((vitals["phase"] == "baseline") | vitals["dosing_at"].notna())]
    # The baseline is the last systolic before dosing began; the rise is the highest after it minus that.
    df["systolic_baseline"] = before.groupby("session_id")["systolic"].last()
    df["systolic_rise"] = vitals[is_after].groupby("session_id")["systolic"].max() - df["systolic_baseline"]

    aes = _frame(db, select(AdverseEvent.session_id, sa.func.count())
                 .where(AdverseEvent.session_id.in_(ids), _current(AdverseEvent))
                 .group_by(AdverseEvent.session_id), ["session_id", "n"])
    df["adverse_events"] = aes.set_index("session_id")["n"].reindex(df.index).fillna(0).astype("int64")
    for c in ("dose_mg", "mg_per_kg", "peak_cadss6", "lowest_moaas", "systolic_baseline", "systolic_rise"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    return df.reset_index()[list(SESSION_COLUMNS)]


def dashboard(db: Session, patient_id: int) -> Dashboard:
    """Everything the patient dashboard shows; NotFound for an unknown patient."""
    patient = db.get(Patient, patient_id)
    if patient is None:
        raise NotFound("No such patient.")
    scores = load_scores(db, patient_id)
    scales = [s for s in TRAJECTORY_SCALES if (scores["scale"] == s).any()]
    outcomes = course_outcomes(scores, scales)
    sessions = session_table(db, patient_id, scores)

    rows = db.exec(select(TreatmentCourse, Protocol).join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
                   .where(TreatmentCourse.patient_id == patient_id)
                   .order_by(TreatmentCourse.ordered_at, TreatmentCourse.id)).all()
    courses = []
    for number, (course, protocol) in enumerate(rows, start=1):
        mine = sessions[sessions["course_id"] == course.id]
        starts = [t for t in (mine["starts_at"].min() if not mine.empty else None,
                              scores.loc[scores["course_id"] == course.id, "measured_at"].min())
                  if t is not None and not pd.isna(t)]
        courses.append(CourseSummary(
            course=course, protocol=protocol, number=number,
            sessions_done=int(mine["status"].isin(DONE_STATUSES).sum()), sessions_planned=course.planned_sessions,
            first_at=min(starts) if starts else None,
            outcomes=outcomes[outcomes["course_id"] == course.id].to_dict("records")))
    return Dashboard(patient=patient, scores=scores, scales=scales, outcomes=outcomes, courses=courses,
                     sessions=sessions)


def response_words(row: dict) -> str:
    """Plain words for a course's response status on one scale (from a course_outcomes row)."""
    latest, any_ = row["responded_latest"], row["responded_any"]
    if pd.isna(any_):
        return "Not judged yet"
    if _true(latest):
        return "Response"
    if _true(any_):
        return "Responded earlier, not at the latest score"
    return "No response"


def remission_words(row: dict) -> str:
    """Plain words for a course's remission status on one scale (from a course_outcomes row)."""
    latest, any_ = row["remitted_latest"], row["remitted_any"]
    if pd.isna(row["remission_below"]):
        return "No remission threshold for this scale"
    if pd.isna(any_):
        return "Not judged yet"
    if _true(latest):
        return "Remission"
    if _true(any_):
        return "Remitted earlier, not at the latest score"
    return "Not in remission"
