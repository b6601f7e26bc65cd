"""Ordering a course (proposal, then confirmation) and the course page with its changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlmodel import select

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError, InvalidInput, NotFound
from clinic.patients.models import Patient
from clinic.patients.service import active_flags
from clinic.sessions import booking, changes
from clinic.sessions.booking import CourseOrder, SlotIn
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.service import list_sites
from clinic.vocab import COURSE_STATUSES, PATIENT_FLAG_KINDS, SESSION_STATUSES
from clinic.web import actor, clock, parse, settings

bp = Blueprint("courses", __name__)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _granularity() -> int:
    return settings().sessions.slot_granularity_minutes


def _order_values(form) -> dict:
    return {
        "patient_id": form.get("patient_id"),
        "protocol_id": form.get("protocol_id") or None,
        "site_id": form.get("site_id") or None,
        "earliest_start": form.get("earliest_start") or None,
        "weekdays": [int(d) for d in form.getlist("weekdays") if d.isdigit()],
        "window_start": form.get("window_start") or None,
        "window_end": form.get("window_end") or None,
    }


def _chair_labels(site_id: int) -> dict[int, str]:
    return {c.id: c.label for c in get_db().exec(select(Chair).where(Chair.site_id == site_id))}


@bp.route("/patients/<int:patient_id>/courses/new", methods=["GET", "POST"])
@requires("courses.order")
def order(patient_id: int):
    db = get_db()
    patient = db.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {patient_id}.")
    protocols = list(db.exec(select(Protocol).where(Protocol.active).order_by(Protocol.name)))
    sites = list_sites(db)
    values = {"site_id": patient.home_site_id or (sites[0].id if sites else None),
              "earliest_start": clock().astimezone(settings().zone).date().isoformat(), "weekdays": []}
    errors: dict[str, str] = {}
    proposal = None
    status = 200
    if request.method == "GET":
        audit.record(db, actor(), "view", "patient", patient.id, patient_id=patient.id, detail="course order form")
        db.commit()
    if request.method == "POST":
        values = _order_values(request.form) | {"patient_id": patient_id}
        try:
            data = parse(CourseOrder, values)
            if request.form.get("action") == "book":
                slots = [SlotIn(number=int(n), chair_id=int(c), starts_at=datetime.fromisoformat(t))
                         for n, c, t in zip(request.form.getlist("slot_number"), request.form.getlist("slot_chair"),
                                            request.form.getlist("slot_start"), strict=True)]
                course = booking.book_course(db, actor(), data, slots, now=clock(), granularity_minutes=_granularity())
                flash(f"Course booked: {len(slots)} session{'s' if len(slots) != 1 else ''}.", "success")
                return redirect(url_for("courses.show", course_id=course.id))
            proposal = booking.propose(db, data, now=clock(), granularity_minutes=_granularity())
            audit.record(db, actor(), "view", "course_proposal", None, patient_id=patient_id,
                         detail=f"protocol {data.protocol_id} at site {data.site_id}")
            db.commit()
        except ClinicError as err:
            errors, status = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
            if request.form.get("action") == "book":
                try:  # show a fresh proposal beside the refusal
                    proposal = booking.propose(db, parse(CourseOrder, values), now=clock(),
                                               granularity_minutes=_granularity())
                except ClinicError:
                    proposal = None
    site_id = int(values["site_id"]) if values.get("site_id") else None
    zone = ZoneInfo(db.get(Site, site_id).time_zone) if site_id and db.get(Site, site_id) else settings().zone
    flags = active_flags(db, [patient.id]).get(patient.id, [])
    return render_template("courses/order.html", patient=patient, protocols=protocols, sites=sites, values=values,
                           flags=flags, flag_kinds=PATIENT_FLAG_KINDS,
                           errors=errors, proposal=proposal, chairs=_chair_labels(site_id) if site_id else {},
                           zone=zone, weekday_names=WEEKDAY_NAMES), status


@bp.get("/courses/<int:course_id>")
@requires("courses.view")
def show(course_id: int):
    db = get_db()
    course = db.get(TreatmentCourse, course_id)
    if course is None:
        raise NotFound(f"No course with id {course_id}.")
    patient = db.get(Patient, course.patient_id)
    protocol = db.get(Protocol, course.protocol_id)
    site = db.get(Site, course.site_id)
    sessions = list(db.exec(select(TreatmentSession).where(TreatmentSession.course_id == course_id)
                            .order_by(TreatmentSession.starts_at)))
    audit.record(db, actor(), "view", "treatment_course", course.id, patient_id=course.patient_id)
    db.commit()
    return render_template("courses/show.html", course=course, patient=patient, protocol=protocol, site=site,
                           sessions=sessions, chairs=_chair_labels(site.id), statuses=SESSION_STATUSES,
                           course_statuses=COURSE_STATUSES, now=clock(), zone=ZoneInfo(site.time_zone))


def _tell_patient(session_ids: list[int]) -> None:
    """A patient already reminded of a session that moved or was cancelled gets a change notice."""
    from clinic.reminders import notice_of_change

    notice_of_change(get_db(), settings(), session_ids, clock())


def _result_message(result: changes.ChangeResult, done: str) -> None:
    moved = len(result.moved) + len(result.added)
    if result.problem:
        alts = ", ".join(a.start.astimezone(settings().zone).strftime("%a %d %b %H:%M") for a in result.alternatives)
        flash(f"{done} {result.problem} Nothing else was moved; the prescriber must decide."
              + (f" Nearest openings: {alts}." if alts else ""), "warning")
    else:
        flash(done + (f" {moved} session{'s' if moved != 1 else ''} re-planned." if moved else ""), "success")


def _changed_ids(session_id: int, result: changes.ChangeResult, course_id: int) -> list[int]:
    """The cancelled session(s) and the ones the re-plan moved."""
    cancelled = get_db().exec(select(TreatmentSession.id).where(TreatmentSession.course_id == course_id,
                                                                TreatmentSession.status == "cancelled")).all()
    return sorted({session_id, *cancelled, *(r.id for r in result.moved)})


def _course_of(session_id: int) -> int:
    row = get_db().get(TreatmentSession, session_id)
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    return row.course_id


@bp.post("/sessions/<int:session_id>/cancel")
@requires("sessions.change")
def cancel(session_id: int):
    course_id = _course_of(session_id)
    try:
        result = changes.cancel(get_db(), actor(), session_id, request.form.get("reason", ""),
                                scope=request.form.get("scope", "one"), now=clock(), granularity=_granularity())
        _tell_patient(_changed_ids(session_id, result, course_id))
        _result_message(result, "Cancelled.")
    except ClinicError as err:
        flash(err.message if not err.fields else f"{err.message} ({'; '.join(err.fields.values())})", "error")
    return redirect(url_for("courses.show", course_id=course_id))


@bp.post("/sessions/<int:session_id>/no-show")
@requires("sessions.change")
def no_show(session_id: int):
    course_id = _course_of(session_id)
    try:
        result = changes.mark_no_show(get_db(), actor(), session_id, now=clock(), granularity=_granularity())
        _tell_patient([r.id for r in result.moved])
        _result_message(result, "Marked as not attended.")
    except ClinicError as err:
        flash(err.message, "error")
    return redirect(url_for("courses.show", course_id=course_id))


@bp.post("/sessions/<int:session_id>/reschedule")
@requires("sessions.change")
def reschedule(session_id: int):
    db = get_db()
    course_id = _course_of(session_id)
    try:
        site = db.get(Site, db.get(TreatmentCourse, course_id).site_id)
        try:
            day = date.fromisoformat(request.form.get("day", ""))
            at = time.fromisoformat(request.form.get("time", ""))
        except ValueError as exc:
            raise InvalidInput("Give the new day and time.", fields={"day": "a date and a time"}) from exc
        starts_at = datetime.combine(day, at, ZoneInfo(site.time_zone)).astimezone(UTC)
        chair = request.form.get("chair_id", type=int)
        result = changes.reschedule(db, actor(), session_id, starts_at=starts_at, chair_id=chair,
                                    reason=request.form.get("reason", ""), scope=request.form.get("scope", "one"),
                                    now=clock(), granularity=_granularity())
        _tell_patient([r.id for r in result.moved])
        _result_message(result, "Moved.")
    except ClinicError as err:
        flash(err.message if not err.fields else f"{err.message} ({'; '.join(err.fields.values())})", "error")
    return redirect(url_for("courses.show", course_id=course_id))
