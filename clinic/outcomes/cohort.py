"""Clinic outcomes: response, remission, sessions to response, dropout and adverse-event rates by protocol.

Aggregates only (managers may open them): every figure carries the number of courses or sessions and of
distinct patients behind it, and nothing here returns a name, an MRN or an individual answer.

Definitions (period and site chosen by the caller, dates in the clinic's zone, both ends included):
- A course **starts** at its first session that was not cancelled or missed; a course without one starts on
  its `earliest_start`. The courses of a period are those starting in it (at the course's site).
- Response, remission and sessions to response: `scoring.course_outcomes` over every score of those
  courses (also scores after the period ends), rated with `scoring.cohort_rates` (status at the latest
  score). Shown for PHQ-9 and GAD-7 always, and for any other trajectory scale that has data.
- Dropout: courses of the period that were cancelled with fewer discharged sessions than planned.
- Adverse events per 100 sessions: current (not amended) adverse events of the discharged sessions that
  took place in the period (at the site), per 100 of those sessions.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from clinic.errors import InvalidInput
from clinic.outcomes import scoring
from clinic.outcomes.models import ScaleResponse
from clinic.outcomes.service import TRAJECTORY_SCALES
from clinic.sessions.models import Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent
from clinic.vocab import INACTIVE_SESSION_STATUSES

DEFAULT_MONTHS = 6
ALWAYS_SCALES = ("PHQ-9", "GAD-7")
ALL_PROTOCOLS = "All protocols"
MEASURES = {
    "response_rate": "Response rate",
    "remission_rate": "Remission rate",
    "median_sessions_to_response": "Median sessions to response",
    "dropout_rate": "Dropout",
    "adverse_events_per_100_sessions": "Adverse events per 100 sessions",
}
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
CSV_COLUMNS = ("protocol", "scale", "measure", "value", "count", "out_of", "unit", "patients")


@dataclass(frozen=True)
class Filters:
    site_id: int | None  # None: all sites
    since: date
    until: date

    def as_args(self) -> dict[str, str]:
        return {"site": "all" if self.site_id is None else str(self.site_id), "since": self.since.isoformat(),
                "until": self.until.isoformat()}


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def parse_filters(args: Mapping[str, str], *, today: date, site_ids: set[int]) -> Filters:
    """The filters of the query string; InvalidInput (422) naming each bad field.

    site: a site id or "all" (default); since / until: YYYY-MM-DD (default: the 6 months up to today).
    """
    errors: dict[str, str] = {}
    site_raw = (args.get("site") or "all").strip()
    site_id: int | None = None
    if site_raw.lower() != "all":
        try:
            site_id = int(site_raw)
        except ValueError:
            errors["site"] = "use a site's number or 'all'"
        else:
            if site_id not in site_ids:
                errors["site"] = "no such site"

    def day(name: str, default: date) -> date | None:
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            if not ISO_DAY.fullmatch(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = "use a date like 2026-11-23"
            return None

    until = day("until", today)
    since = day("since", months_before(until or today, DEFAULT_MONTHS))
    if since and until and since > until:
        errors["until"] = "must be on or after the start of the period"
    if errors:
        words = "; ".join(f"{name}: {what}" for name, what in errors.items())
        raise InvalidInput(f"Please check the filters ({words}).", fields=errors)
    assert since is not None and until is not None
    return Filters(site_id, since, until)


def site_choices(db: Session) -> list[tuple[int, str]]:
    return [(s.id, s.name) for s in db.exec(select(Site).order_by(Site.name)).all()]


def _bounds(filters: Filters, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period as [start, end) in UTC: from the first day's midnight to the midnight after the last."""
    start = datetime.combine(filters.since, time(0), zone).astimezone(UTC)
    end = datetime.combine(filters.until + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def _current(model):
    amended = select(model.amends_id).where(model.amends_id.is_not(None))
    return model.id.not_in(amended)


def _frame(db: Session, stmt, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in db.exec(stmt).all()], columns=columns)


def _course_ids(filters: Filters, start: datetime, end: datetime):
    """A select of the ids of the courses starting in the period (a subquery, never a list of ids)."""
    first = (select(TreatmentSession.course_id.label("course_id"),
                    sa.func.min(TreatmentSession.starts_at).label("first_at"))
             .where(TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES))
             .group_by(TreatmentSession.course_id).subquery())
    stmt = (select(TreatmentCourse.id).join(first, first.c.course_id == TreatmentCourse.id, isouter=True)
            .where(sa.or_(sa.and_(first.c.first_at >= start, first.c.first_at < end),
                          sa.and_(first.c.first_at.is_(None), TreatmentCourse.earliest_start >= filters.since,
                                  TreatmentCourse.earliest_start <= filters.until))))
    if filters.site_id is not None:
        stmt = stmt.where(TreatmentCourse.site_id == filters.site_id)
    return stmt


def _protocol_labels(db: Session) -> dict[str, str]:
    """Protocol code → the name of its newest version."""
    rows = db.exec(select(Protocol.code, Protocol.name).order_by(Protocol.code, Protocol.version)).all()
    return {code: name for code, name in rows}


def load_courses(db: Session, filters: Filters, start: datetime, end: datetime) -> pd.DataFrame:
    """The courses of the period: course_id, patient_id, protocol, planned, status, sessions_done."""
    ids = _course_ids(filters, start, end)
    done = (select(TreatmentSession.course_id.label("course_id"), sa.func.count().label("n"))
            .where(TreatmentSession.status == "discharged").group_by(TreatmentSession.course_id).subquery())
    stmt = (select(TreatmentCourse.id, TreatmentCourse.patient_id, Protocol.code, TreatmentCourse.planned_sessions,
                   TreatmentCourse.status, sa.func.coalesce(done.c.n, 0))
            .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
            .join(done, done.c.course_id == TreatmentCourse.id, isouter=True)
            .where(TreatmentCourse.id.in_(ids)))
    return _frame(db, stmt, ["course_id", "patient_id", "protocol", "planned", "status", "sessions_done"])


def load_scores(db: Session, filters: Filters, start: datetime, end: datetime) -> pd.DataFrame:
    """Every current trajectory-scale score of the period's courses (scoring.SCORE_COLUMNS)."""
    course = sa.func.coalesce(ScaleResponse.course_id, TreatmentSession.course_id)
    stmt = (select(ScaleResponse.patient_id, course, ScaleResponse.scale, ScaleResponse.measured_at,
                   ScaleResponse.total, TreatmentSession.number_in_course)
            .join(TreatmentSession, TreatmentSession.id == ScaleResponse.session_id, isouter=True)
            .where(course.in_(_course_ids(filters, start, end)), ScaleResponse.scale.in_(TRAJECTORY_SCALES),
                   _current(ScaleResponse)))
    df = _frame(db, stmt, list(scoring.SCORE_COLUMNS))
    df["measured_at"] = pd.to_datetime(df["measured_at"], utc=True)
    df["total"] = pd.to_numeric(df["total"]).astype("float64")
    df["session_number"] = pd.to_numeric(df["session_number"]).astype("float64")
    df["course_id"] = pd.to_numeric(df["course_id"]).astype("float64")
    return df


def load_sessions(db: Session, filters: Filters, start: datetime, end: datetime) -> pd.DataFrame:
    """The discharged sessions of the period: session_id, patient_id, protocol, adverse_events."""
    aes = (select(AdverseEvent.session_id.label("session_id"), sa.func.count().label("n"))
           .where(_current(AdverseEvent)).group_by(AdverseEvent.session_id).subquery())
    stmt = (select(TreatmentSession.id, TreatmentSession.patient_id, Protocol.code, sa.func.coalesce(aes.c.n, 0))
            .join(TreatmentCourse, TreatmentCourse.id == TreatmentSession.course_id)
            .join(Protocol, Protocol.id == TreatmentCourse.protocol_id)
            .join(aes, aes.c.session_id == TreatmentSession.id, isouter=True)
            .where(TreatmentSession.status == "discharged", TreatmentSession.starts_at >= start,
                   TreatmentSession.starts_at < end))
    if filters.site_id is not None:
        stmt = stmt.where(TreatmentSession.site_id == filters.site_id)
    return _frame(db, stmt, ["session_id", "patient_id", "protocol", "adverse_events"])


def _row(protocol: str, scale: str, measure: str, value: float | None, count: int | None, out_of: int,
         unit: str, patients: int) -> dict[str, Any]:
    return {"protocol": protocol, "scale": scale, "measure": measure, "value": value, "count": count,
            "out_of": out_of, "unit": unit, "patients": patients}


def rows_for(courses: pd.DataFrame, outcomes: pd.DataFrame, sessions: pd.DataFrame, scales: list[str],
             protocol: str) -> list[dict[str, Any]]:
    """The figures of one group of courses and sessions (pure: frames in, rows out)."""
    rows: list[dict[str, Any]] = []
    for scale in scales:
        mine = outcomes[outcomes["scale"] == scale]
        r = scoring.cohort_rates(mine)
        rows.append(_row(protocol, scale, "response_rate", r["response_rate"], r["responders"],
                         r["response_courses"], "courses", r["response_patients"]))
        rows.append(_row(protocol, scale, "remission_rate", r["remission_rate"], r["remitters"],
                         r["remission_courses"], "courses", r["remission_patients"]))
        rows.append(_row(protocol, scale, "median_sessions_to_response", r["median_sessions_to_response"], None,
                         r["sessions_to_response_courses"], "courses", r["sessions_to_response_patients"]))
    dropped = (courses["status"] == "cancelled") & (courses["sessions_done"] < courses["planned"])
    n = len(courses)
    rows.append(_row(protocol, "", "dropout_rate", int(dropped.sum()) / n if n else None, int(dropped.sum()), n,
                     "courses", int(courses["patient_id"].nunique())))
    n_sessions = len(sessions)
    n_aes = int(sessions["adverse_events"].sum()) if n_sessions else 0
    rows.append(_row(protocol, "", "adverse_events_per_100_sessions",
                     100 * n_aes / n_sessions if n_sessions else None, n_aes, n_sessions, "sessions",
                     int(sessions["patient_id"].nunique())))
    return rows


@dataclass
class CohortReport:
    filters: Filters
    rows: list[dict[str, Any]]  # CSV_COLUMNS; protocol is the protocol's name


def report(db: Session, filters: Filters, *, zone: ZoneInfo) -> CohortReport:
    start, end = _bounds(filters, zone)
    courses = load_courses(db, filters, start, end)
    scores = load_scores(db, filters, start, end)
    sessions = load_sessions(db, filters, start, end)
    for frame, column in ((courses, "sessions_done"), (courses, "planned"), (sessions, "adverse_events")):
        frame[column] = pd.to_numeric(frame[column]).astype("int64")
    scales = [s for s in TRAJECTORY_SCALES if s in ALWAYS_SCALES or (scores["scale"] == s).any()]
    frames = [scoring.course_outcomes(scores, scale=s) for s in scales]
    frames = [f for f in frames if not f.empty]
    outcomes = pd.concat(frames, ignore_index=True) if frames else scoring._empty_outcomes(scores)
    protocol_of = courses.set_index("course_id")["protocol"]
    outcomes["protocol"] = outcomes["course_id"].map(protocol_of)

    labels = _protocol_labels(db)
    codes = sorted(set(courses["protocol"]) | set(sessions["protocol"]), key=lambda c: labels.get(c, c))
    rows: list[dict[str, Any]] = []
    for code in codes:
        rows += rows_for(courses[courses["protocol"] == code], outcomes[outcomes["protocol"] == code],
                         sessions[sessions["protocol"] == code], scales, labels.get(code, code))
    if len(codes) > 1:
        rows += rows_for(courses, outcomes, sessions, scales, ALL_PROTOCOLS)
    return CohortReport(filters, rows)


def format_value(row: Mapping[str, Any]) -> str:
    """A figure as people read it: rates as a percentage, the rest with one decimal; "—" when none."""
    value = row["value"]
    if value is None or pd.isna(value):
        return "—"
    if row["measure"] in ("response_rate", "remission_rate", "dropout_rate"):
        return f"{100 * value:.0f} %"
    return f"{value:.1f}"


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The table as CSV (CSV_COLUMNS; rates as fractions 0–1, blank when no course is behind them)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        value = row["value"]
        writer.writerow([_cell(row["protocol"]), row["scale"], row["measure"],
                         "" if value is None or pd.isna(value) else round(float(value), 4),
                         "" if row["count"] is None else row["count"], row["out_of"], row["unit"], row["patients"]])
    return out.getvalue()
