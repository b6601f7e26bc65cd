"""Patient pages: the list and search, registration, the patient page, flags and consents."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError
from clinic.patients import service
from clinic.patients.schemas import ConsentIn, ConsentRevoke, FlagClear, FlagIn, PatientIn, PatientQuery, PatientUpdate
from clinic.sessions.service import courses_of, list_sites
from clinic.vocab import CONSENT_KINDS, COURSE_STATUSES, PATIENT_FLAG_KINDS, SEXES
from clinic.web import actor, age_on, clock, form_dict, parse, settings, today_local

bp = Blueprint("patients", __name__)


@bp.get("/")
@requires("home.view")
def home():
    return render_template("home.html", today=today_local())


@bp.get("/patients")
@requires("patients.list")
def index():
    errors = {}
    try:
        query = parse(PatientQuery, form_dict(request.args))
    except ClinicError as err:
        errors, query = err.fields, PatientQuery()
    db = get_db()
    result = service.search(db, actor(), query)
    flags = service.active_flags(db, [p.id for p in result.patients])
    return render_template("patients/index.html", result=result, query=query, flags=flags, errors=errors,
                           today=today_local(), age_on=age_on), 422 if errors else 200


def _form_context(**extra):
    return {"sites": list_sites(get_db()), "sexes": SEXES, **extra}


@bp.route("/patients/new", methods=["GET", "POST"])
@requires("patients.register")
def register():
    values, errors, status = {}, {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            patient = service.register(get_db(), actor(), parse(PatientIn, values), now=clock())
            flash(f"{patient.given_name} {patient.family_name} registered as {patient.mrn}.", "success")
            return redirect(url_for("patients.show", patient_id=patient.id))
        except ClinicError as err:
            errors, status = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
    return render_template("patients/form.html", **_form_context(values=values, errors=errors, patient=None)), status


@bp.get("/patients/<int:patient_id>")
@requires("patients.view")
def show(patient_id: int):
    record = service.view(get_db(), actor(), patient_id, now=clock())
    courses = courses_of(get_db(), patient_id) if current_user.can("courses.view") else []
    return render_template("patients/show.html", r=record, p=record.patient, today=today_local(), age_on=age_on,
                           courses=courses, course_statuses=COURSE_STATUSES,
                           flag_kinds=PATIENT_FLAG_KINDS, consent_kinds=CONSENT_KINDS, sexes=SEXES)


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
@requires("patients.edit")
def edit(patient_id: int):
    db = get_db()
    errors, status = {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            service.update(db, actor(), patient_id, parse(PatientUpdate, values), now=clock())
            flash("Changes saved.", "success")
            return redirect(url_for("patients.show", patient_id=patient_id))
        except ClinicError as err:
            errors, status = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
        patient = db.get(service.Patient, patient_id)
    else:
        patient = service.view(db, actor(), patient_id, now=clock(), what="edit form").patient
        values = patient.model_dump()
    return render_template("patients/form.html", **_form_context(values=values, errors=errors, patient=patient)), status


@bp.post("/patients/<int:patient_id>/flags")
@requires("patients.flags")
def flag_add(patient_id: int):
    try:
        service.add_flag(get_db(), actor(), patient_id, parse(FlagIn, form_dict(request.form)), now=clock())
        flash("Flag set.", "success")
    except ClinicError as err:
        flash("Flag not set: " + err.message, "error")
    return redirect(url_for("patients.show", patient_id=patient_id) + "#flags")


@bp.post("/patients/flags/<int:flag_id>/clear")
@requires("patients.flags")
def flag_clear(flag_id: int):
    patient_id = int(request.form.get("patient_id", 0))
    try:
        data = parse(FlagClear, {"reason": request.form.get("reason", "")})
        service.clear_flag(get_db(), actor(), flag_id, data, now=clock())
        flash("Flag cleared.", "success")
    except ClinicError as err:
        flash("Flag not cleared: " + err.message, "error")
    return redirect(url_for("patients.show", patient_id=patient_id) + "#flags")


@bp.post("/patients/<int:patient_id>/consents")
@requires("patients.consent")
def consent_add(patient_id: int):
    try:
        service.record_consent(get_db(), actor(), patient_id, parse(ConsentIn, form_dict(request.form)),
                               now=clock(), zone=settings().zone)
        flash("Consent recorded.", "success")
    except ClinicError as err:
        flash("Consent not recorded: " + err.message, "error")
    return redirect(url_for("patients.show", patient_id=patient_id) + "#consent")


@bp.post("/patients/consents/<int:consent_id>/revoke")
@requires("patients.consent")
def consent_revoke(consent_id: int):
    patient_id = int(request.form.get("patient_id", 0))
    try:
        data = parse(ConsentRevoke, {"reason": request.form.get("reason", "")})
        service.revoke_consent(get_db(), actor(), consent_id, data.reason, now=clock())
        flash("Consent revoked.", "success")
    except ClinicError as err:
        flash("Consent not revoked: " + err.message, "error")
    return redirect(url_for("patients.show", patient_id=patient_id) + "#consent")
