"""Eligibility pages: a patient's evaluations, and the form a prescriber records a new one with."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError
from clinic.patients import eligibility
from clinic.patients.eligibility_rules import INTERACTING_CLASSES, default_valid_until
from clinic.patients.service import active_flags
from clinic.vocab import ELIGIBILITY_DECISIONS, PATIENT_FLAG_KINDS
from clinic.web import actor, clock, form_dict, parse, settings, today_local

bp = Blueprint("eligibility", __name__)

LISTS = ("contraindications", "interacting_medications")


def _context(patient_id: int, **extra):
    db = get_db()
    patient = eligibility.get_patient(db, patient_id)
    return {"p": patient, "flags": active_flags(db, [patient_id]).get(patient_id, []), "flag_kinds": PATIENT_FLAG_KINDS,
            "decisions": ELIGIBILITY_DECISIONS, "classes": INTERACTING_CLASSES,
            "catalogue": eligibility.catalogue(settings()), **extra}


@bp.get("/patients/<int:patient_id>/eligibility")
@requires("eligibility.view")
def history(patient_id: int):
    views = eligibility.history(get_db(), actor(), patient_id, settings(), today_local())
    return render_template("eligibility/history.html", evaluations=views, **_context(patient_id))


@bp.route("/patients/<int:patient_id>/eligibility/new", methods=["GET", "POST"])
@requires("eligibility.record")
def record(patient_id: int):
    today = today_local()
    values: dict = {"valid_until": default_valid_until(today, settings().eligibility.valid_days).isoformat(),
                    "contraindications": [], "interacting_medications": []}
    errors, status = {}, 200
    if request.method == "POST":
        values = form_dict(request.form, lists=LISTS)
        try:
            data = parse(eligibility.EvaluationIn, values)
            done = eligibility.record_evaluation(get_db(), actor(), patient_id, data, now=clock(), today=today,
                                                 settings=settings())
            decision = ELIGIBILITY_DECISIONS[done.evaluation.decision].lower()
            message = f"Evaluation saved: {decision}."
            if done.flags_set:
                message += " Flag set: " + ", ".join(PATIENT_FLAG_KINDS[f.kind] for f in done.flags_set) + "."
            flash(message, "success")
            return redirect(url_for("patients.show", patient_id=patient_id) + "#eligibility")
        except ClinicError as err:
            errors, status = dict(err.fields), err.status
            errors.setdefault("__all__", err.message)
    return render_template("eligibility/form.html", values=values, errors=errors,
                           default_days=settings().eligibility.valid_days, **_context(patient_id)), status


@bp.app_context_processor
def _patient_page_helpers():
    """`latest_eligibility(patient_id)` for the eligibility section of the patient page."""

    def latest_eligibility(patient_id: int):
        return eligibility.latest(get_db(), patient_id, settings(), today_local())

    return {"latest_eligibility": latest_eligibility, "eligibility_decisions": ELIGIBILITY_DECISIONS}
