"""The chairside tablet: one session from check-in to discharge.

Every form works without JavaScript (post, then back to the page with a message or the error next to
the field). With JavaScript (static/js/monitor.js) a form is sent with fetch, kept on the tablet when
the connection drops and sent again later under the same client key, so nothing is lost or doubled.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError, InvalidInput
from clinic.vitals import charts, service
from clinic.vitals.service import (
    AcknowledgeIn,
    AdverseEventIn,
    AmendVitalsIn,
    ChecklistIn,
    DecisionIn,
    DischargeIn,
    DoseEventIn,
    DoseIn,
    ScoreIn,
    VitalsIn,
    WeightIn,
)
from clinic.vocab import (
    ADVERSE_EVENT_KINDS,
    AE_OUTCOMES,
    ALERT_ACTIONS,
    ALERT_PRIORITIES,
    CHECKLIST_ITEMS,
    SCALES,
    SESSION_STATUSES,
    SEVERITIES,
)
from clinic.web import actor, clock, parse, settings, wants_json

bp = Blueprint("monitor", __name__)
STEPS = {"before": "Before dosing", "dosing": "Dosing", "monitoring": "Monitoring", "discharge": "Discharge"}
DEFAULT_STEP = {"booked": "before", "checked_in": "before", "dosing": "dosing", "recovery": "monitoring",
                "discharged": "discharge", "cancelled": "before", "no_show": "before"}
FORM_STEP = {"dose": "before", "decision": "before", "weight": "before", "interacting": "before",
             "checklist": "before", "discharge": "discharge", "dose-event": "dosing", "ae": "monitoring",
             "amend": "monitoring"}
INTERACTING = ("benzodiazepines", "other sedatives", "stimulants", "MAOIs", "opioids")


def new_key() -> str:
    return uuid.uuid4().hex


def _render(session_id: int, *, errors: dict[str, dict[str, str]] | None = None,
            values: dict[str, dict[str, Any]] | None = None, status: int = 200, step: str | None = None):
    db = get_db()
    state = service.load_state(db, settings(), session_id, now=clock(), nurse_id=current_user.id)
    audit.record(db, actor(), "view", "treatment_session", session_id, patient_id=state.patient.id,
                 detail="monitoring")
    db.commit()
    step = step or request.args.get("step") or DEFAULT_STEP[state.session.status]
    if step not in STEPS:
        step = DEFAULT_STEP[state.session.status]
    others = [a for a in service.open_site_alerts(db, state.site.id) if a.session_id != session_id]
    return render_template(
        "monitor/session.html", s=state, step=step, steps=STEPS, errors=errors or {}, values=values or {},
        key=new_key, statuses=SESSION_STATUSES, scales=SCALES, checklist_items=CHECKLIST_ITEMS,
        ae_kinds=ADVERSE_EVENT_KINDS, severities=SEVERITIES, ae_outcomes=AE_OUTCOMES, alert_actions=ALERT_ACTIONS,
        priorities=ALERT_PRIORITIES, interacting=INTERACTING, other_alerts=others,
        chart_json=charts.session_chart(state).to_json() if state.readings or state.scores else None,
    ), status


@bp.get("/sessions/<int:session_id>/monitor")
@requires("monitor.view")
def show(session_id: int):
    return _render(session_id)


@bp.get("/sessions/<int:session_id>/monitor/bar")
@requires("monitor.view")
def bar_fragment(session_id: int):
    """The session header (elapsed minutes, what is due next), refreshed every 30 seconds."""
    state = service.load_state(get_db(), settings(), session_id, now=clock())
    return render_template("monitor/_bar.html", s=state, statuses=SESSION_STATUSES)


@bp.get("/sessions/<int:session_id>/monitor/alerts")
@requires("alerts.view")
def alerts_fragment(session_id: int):
    """The alert banner of a session's page, refreshed every few seconds (this chair and the site's others)."""
    db = get_db()
    state = service.load_state(db, settings(), session_id, now=clock())
    others = [a for a in service.open_site_alerts(db, state.site.id) if a.session_id != session_id]
    return render_template("monitor/_alerts.html", s=state, other_alerts=others, alert_actions=ALERT_ACTIONS,
                           priorities=ALERT_PRIORITIES, key=new_key)


TIME_FIELDS = ("measured_at", "started_at", "onset_at", "at")


def _form() -> dict[str, Any]:
    """The posted form; a time typed on the tablet without a zone is the clinic's local time."""
    data: dict[str, Any] = {}
    for k in request.form:
        if k in ("csrf_token", "form", "step", "session_id"):
            continue
        v = request.form.get(k, "").strip()
        data[k] = v if v != "" else None
        if k in TIME_FIELDS and data[k]:
            try:
                parsed = datetime.fromisoformat(data[k])
            except ValueError:
                continue  # left for validation to name the field
            if parsed.tzinfo is None:
                data[k] = parsed.replace(tzinfo=settings().zone).isoformat()
    return data


def _done(session_id: int, message: str, body: dict | None = None, status: int = 200):
    """The answer to a saved entry: JSON for the tablet's script, else back to the page."""
    if wants_json():
        return jsonify({"ok": True, "message": message, **(body or {})}), status
    flash(message, "success")
    step = request.form.get("step")
    return redirect(url_for("monitor.show", session_id=session_id, step=step) + f"#{request.form.get('form', '')}")


def _failed(session_id: int, err: ClinicError, form_name: str):
    if wants_json():
        return jsonify(err.to_json()), err.status
    fields = dict(err.fields) or {}
    fields.setdefault("__all__", err.message)
    values = {form_name: {k: request.form.get(k) for k in request.form if k != "csrf_token"}}
    step = request.form.get("step") or FORM_STEP.get(form_name.split("-")[0] if form_name.startswith("amend")
                                                      else form_name)
    return _render(session_id, errors={form_name: fields}, values=values, status=err.status, step=step)


def _entry(session_id: int, form_name: str, fn):
    try:
        return fn()
    except ClinicError as err:
        return _failed(session_id, err, form_name)


def _alert_words(alerts) -> str:
    return "" if not alerts else " Alert: " + " ".join(a.message for a in alerts)


@bp.post("/sessions/<int:session_id>/vitals")
@requires("monitor.record")
def vitals(session_id: int):
    def save():
        data = _form()
        data["before_discharge"] = data.get("before_discharge") == "1"
        row, alerts, created = service.record_vitals(get_db(), actor(), settings(), session_id,
                                                     parse(VitalsIn, data), now=clock())
        return _done(session_id, ("Vitals saved." if created else "Already saved.") + _alert_words(alerts),
                     {"id": row.id, "alerts": [a.message for a in alerts]}, 201 if created else 200)
    return _entry(session_id, "vitals", save)


@bp.post("/sessions/<int:session_id>/vitals/<int:reading_id>/amend")
@requires("monitor.record")
def amend(session_id: int, reading_id: int):
    def save():
        row = service.amend_vitals(get_db(), actor(), settings(), reading_id, parse(AmendVitalsIn, _form()),
                                   now=clock())
        return _done(session_id, "Correction saved; the original stays on record.", {"id": row.id}, 201)
    return _entry(session_id, f"amend-{reading_id}", save)


@bp.post("/sessions/<int:session_id>/scores")
@requires("monitor.record")
def scores(session_id: int):
    def save():
        scale = request.form.get("scale", "")
        n = SCALES.get(scale, ("", 0, 0, 0))[1]
        items = []
        for i in range(1, n + 1):
            raw = request.form.get(f"item{i}", "")
            if not raw.strip().lstrip("-").isdigit():
                raise InvalidInput(f"Answer item {i}.", fields={f"item{i}": "choose an answer"})
            items.append(int(raw))
        data = {"client_key": request.form.get("client_key"), "scale": scale, "items": items or [None]}
        if request.form.get("measured_at"):
            data["measured_at"] = request.form["measured_at"]
        row, alerts, created = service.record_score(get_db(), actor(), settings(), session_id, parse(ScoreIn, data),
                                                    now=clock())
        label = SCALES[row.scale][0].split(" (")[0]
        return _done(session_id, (f"{label} saved: {row.total}." if created else "Already saved.")
                     + _alert_words(alerts), {"id": row.id, "total": row.total}, 201 if created else 200)
    return _entry(session_id, request.form.get("form") or "scores", save)


@bp.post("/sessions/<int:session_id>/checklist")
@requires("monitor.record")
def checklist(session_id: int):
    def save():
        row = service.record_checklist(get_db(), actor(), session_id, parse(ChecklistIn, _form()), now=clock())
        return _done(session_id, f"{CHECKLIST_ITEMS[row.item]}: {row.answer}.", {"id": row.id}, 201)
    return _entry(session_id, request.form.get("form") or "checklist", save)


@bp.post("/sessions/<int:session_id>/interacting")
@requires("monitor.record")
def interacting(session_id: int):
    def save():
        taken = [m for m in INTERACTING if request.form.get(m) == "1"]
        answer = "none" if not taken else "taking: " + ", ".join(taken)
        data = ChecklistIn(client_key=request.form.get("client_key", ""), item="interacting_medications",
                           answer=answer + (f" ({request.form['note'].strip()})" if request.form.get("note") else ""))
        service.record_checklist(get_db(), actor(), session_id, data, now=clock())
        return _done(session_id, f"Interacting medications asked: {answer}.", status=201)
    return _entry(session_id, "interacting", save)


@bp.post("/sessions/<int:session_id>/weight")
@requires("monitor.record")
def weight(session_id: int):
    def save():
        row = service.record_weight(get_db(), actor(), session_id, parse(WeightIn, _form()), now=clock())
        return _done(session_id, f"Weight today: {row.weight_kg:g} kg.", {"id": row.id}, 201)
    return _entry(session_id, "weight", save)


@bp.post("/sessions/<int:session_id>/decision")
@requires("monitor.decide")
def decision(session_id: int):
    def save():
        service.prescriber_decision(get_db(), actor(), session_id, parse(DecisionIn, _form()), now=clock())
        return _done(session_id, "Decision recorded.", status=201)
    return _entry(session_id, "decision", save)


@bp.post("/sessions/<int:session_id>/dose")
@requires("monitor.record")
def dose(session_id: int):
    def save():
        row = service.start_dosing(get_db(), actor(), settings(), session_id, parse(DoseIn, _form()), now=clock())
        return _done(session_id, f"Dosing started: {row.dose_mg:g} mg.", {"id": row.id}, 201)
    return _entry(session_id, "dose", save)


@bp.post("/sessions/<int:session_id>/dose-events")
@requires("monitor.record")
def dose_events(session_id: int):
    def save():
        row = service.dose_event(get_db(), actor(), session_id, parse(DoseEventIn, _form()), now=clock())
        words = {"pause": "Infusion paused.", "resume": "Infusion resumed.", "stop": "Dosing ended.",
                 "device": f"Device {row.device_number} given."}
        return _done(session_id, words[row.kind], {"id": row.id}, 201)
    return _entry(session_id, "dose-event", save)


@bp.post("/sessions/<int:session_id>/adverse-events")
@requires("monitor.record")
def adverse_event(session_id: int):
    def save():
        data = _form()
        data["serious"] = data.get("serious") == "1"
        row = service.record_adverse_event(get_db(), actor(), session_id, parse(AdverseEventIn, data), now=clock(),
                                           settings=settings())
        return _done(session_id, f"Adverse event recorded: {ADVERSE_EVENT_KINDS[row.kind]}"
                     + (" (flagged for reporting)." if row.reportable else "."), {"id": row.id}, 201)
    return _entry(session_id, "ae", save)


@bp.post("/alerts/<int:alert_id>/acknowledge")
@requires("alerts.acknowledge")
def acknowledge(alert_id: int):
    session_id = request.form.get("session_id", type=int)
    try:
        alert = service.acknowledge(get_db(), actor(), alert_id, parse(AcknowledgeIn, _form()), now=clock())
    except ClinicError as err:
        if wants_json():
            return jsonify(err.to_json()), err.status
        flash("Not acknowledged: " + "; ".join(err.fields.values() or [err.message]), "error")
        return redirect(url_for("monitor.show", session_id=session_id) if session_id else url_for("board.day"))
    if wants_json():
        return jsonify({"ok": True, "id": alert.id})
    flash(f"Alert acknowledged: {ALERT_ACTIONS[alert.action]}.", "success")
    target = session_id or alert.session_id
    return redirect(url_for("monitor.show", session_id=target) if target else url_for("board.day"))


@bp.post("/sessions/<int:session_id>/discharge")
@requires("monitor.record")
def discharge(session_id: int):
    def save():
        data = _form()
        for k in ("nausea_controlled", "escort_present", "instructions_given"):
            data[k] = data.get(k) == "1"
        row = service.discharge(get_db(), actor(), settings(), session_id, parse(DischargeIn, data), now=clock())
        message = "Discharged." if not row.discharge_override_reason else \
            "Discharged with an override; the prescriber has been told."
        return _done(session_id, message, {"id": row.id})
    return _entry(session_id, "discharge", save)
