"""Waitlist pages: the list per site, adding a patient, changing an entry's status, and who could take
a freed slot. Clinic managers see names and record numbers, and ready / not ready, but no clinical detail."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError
from clinic.patients import waitlist
from clinic.patients.models import Patient
from clinic.patients.service import active_flags
from clinic.sessions.service import list_sites
from clinic.vocab import PATIENT_FLAG_KINDS, WAITLIST_STATUSES
from clinic.web import actor, clock, form_dict, parse, today_local

bp = Blueprint("waitlist", __name__)


def clinical_detail() -> bool:
    """Whether the signed-in person may see clinical detail (eligibility, flags) on the waitlist."""
    return current_user.can("eligibility.view")


def _common(**extra):
    return {"sites": list_sites(get_db()), "statuses": WAITLIST_STATUSES, "priorities": waitlist.PRIORITY_LABELS,
            "priority_codes": waitlist.PRIORITIES, "flag_kinds": PATIENT_FLAG_KINDS,
            "transitions": waitlist.TRANSITIONS, "detail": clinical_detail(), **extra}


def _default_site_id() -> int | None:
    ids = sorted(current_user.site_ids or [])
    return ids[0] if ids else None


@bp.get("/waitlist")
@requires("waitlist.view")
def index():
    args = form_dict(request.args)
    errors = {}
    try:
        query = parse(waitlist.WaitlistQuery, {k: args.get(k) for k in ("site_id", "status") if args.get(k)})
    except ClinicError as err:
        errors, query = err.fields, waitlist.WaitlistQuery()
    rows = waitlist.entries(get_db(), actor(), query, now=clock(), clinical_detail=clinical_detail())
    slot = {"site_id": query.site_id or _default_site_id(), "day": today_local().isoformat(), "at": ""}
    return render_template("waitlist/index.html", rows=rows, query=query, errors=errors, slot=slot,
                           **_common()), 422 if errors else 200


@bp.get("/waitlist/candidates")
@requires("waitlist.view")
def candidates():
    """Who could take a freed slot: a day and time at a site (in the site's zone)."""
    db = get_db()
    values = form_dict(request.args)
    errors, found, start, status = {}, None, None, 200
    try:
        form = parse(waitlist.SlotForm, values)
        site = waitlist.active_site(db, form.site_id)
        start = datetime.combine(form.day, form.at, ZoneInfo(site.time_zone)).astimezone(UTC)
        found = waitlist.candidates_for_slot(db, form.site_id, start, clock(), protocol_id=form.protocol_id,
                                             clinical_detail=clinical_detail())
        audit.record(db, actor(), "view", "waitlist_candidates", form.site_id,
                     detail=f"slot {start.isoformat()}: {len(found)} candidates")
        db.commit()
    except ClinicError as err:
        errors, status = dict(err.fields), err.status
        errors.setdefault("__all__", err.message)
    return render_template("waitlist/candidates.html", found=found, start=start, slot=values, errors=errors,
                           **_common()), status


@bp.route("/waitlist/add", methods=["GET", "POST"])
@requires("waitlist.manage")
def add():
    db = get_db()
    source = request.form if request.method == "POST" else request.args
    try:
        patient_id = int(source.get("patient_id", ""))
    except ValueError:
        patient_id = 0
    patient = db.get(Patient, patient_id)
    if patient is None:
        flash("Open the patient's page and add them to the waitlist from there.", "error")
        return redirect(url_for("patients.index"))
    values = {"patient_id": patient_id, "site_id": patient.home_site_id or _default_site_id(), "priority": "routine"}
    errors, status = {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            entry = waitlist.add(db, actor(), parse(waitlist.WaitlistAdd, values), now=clock())
            flash(f"{patient.given_name} {patient.family_name} is on the waitlist "
                  f"({waitlist.PRIORITY_LABELS[entry.priority].lower()}).", "success")
            return redirect(url_for("patients.show", patient_id=patient_id) + "#waitlist")
        except ClinicError as err:
            errors, status = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
    return render_template("waitlist/add.html", p=patient, values=values, errors=errors,
                           flags=active_flags(db, [patient_id]).get(patient_id, []) if clinical_detail() else [],
                           **_common()), status


@bp.route("/waitlist/<int:entry_id>/status", methods=["GET", "POST"])
@requires("waitlist.manage")
def status(entry_id: int):
    db = get_db()
    values, errors, code = {}, {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            data = parse(waitlist.StatusChange, {k: values.get(k) for k in ("status", "reason")})
            entry = waitlist.change_status(db, actor(), entry_id, data, now=clock())
            flash(f"Waitlist entry is now {WAITLIST_STATUSES[entry.status].lower()}.", "success")
            back = values.get("next") or ""
            if not back.startswith("/") or back.startswith("//"):
                back = url_for("waitlist.index")
            return redirect(back)
        except ClinicError as err:
            errors, code = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
    entry = waitlist.get(db, entry_id)
    row = next(r for r in waitlist.for_patient(db, entry.patient_id, now=clock()) if r.entry.id == entry_id)
    return render_template("waitlist/status.html", row=row, values=values, errors=errors, **_common()), code


@bp.app_context_processor
def _patient_page_helpers():
    """`waitlist_entries(patient_id)` for the waitlist section of the patient page."""

    def waitlist_entries(patient_id: int):
        return waitlist.for_patient(get_db(), patient_id, now=clock())

    return {"waitlist_entries": waitlist_entries, "waitlist_statuses": WAITLIST_STATUSES,
            "waitlist_priorities": waitlist.PRIORITY_LABELS}
