"""Protocol pages: the active protocols in plain words, one protocol with its versions, and the forms to
create a protocol or change one (a change makes a new version)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError
from clinic.sessions import protocol_service as service
from clinic.sessions.protocol_rules import COURSE_SCALES, SESSION_SCORES, describe_cadence
from clinic.sessions.protocols import SCALE_WHEN, load_json
from clinic.vocab import DOSE_RULES, ROUTES
from clinic.web import actor, clock, form_dict, parse

bp = Blueprint("protocols", __name__)

PHASE_ROWS = 3
CHECKBOXES = ("baseline_vitals", "discharge_vitals")


def _score_field(scale: str) -> str:
    return "score_" + scale.replace("/", "").lower()


def input_from_form(form) -> dict[str, Any]:
    """The submitted form as `ProtocolIn` values (structured inputs back into lists and dicts)."""
    raw = form_dict(form)
    data: dict[str, Any] = {k: v for k, v in raw.items()
                            if not k.startswith(("phase", "score_", "scale_", "when_")) and k != "at_minutes"}
    for key in CHECKBOXES:
        data[key] = key in form
    phases = []
    for i in range(1, PHASE_ROWS + 1):
        weeks, per_week = raw.get(f"phase{i}_weeks"), raw.get(f"phase{i}_per_week")
        if weeks or per_week:
            phases.append({"weeks": weeks, "per_week": per_week})
    data["phases"] = phases
    data["at_minutes"] = (raw.get("at_minutes") or "").replace(",", " ").split()
    data["scores"] = {s: raw[_score_field(s)] for s in SESSION_SCORES if raw.get(_score_field(s))}
    data["scales"] = {s: raw.get(f"when_{s}") or "each_session_pre" for s in COURSE_SCALES if f"scale_{s}" in form}
    return data


def form_values(flat: dict[str, Any]) -> dict[str, Any]:
    """`ProtocolIn` values as the form's fields (to fill the change form)."""
    values = {k: v for k, v in flat.items() if k not in ("phases", "at_minutes", "scores", "scales", "thresholds")}
    for key in CHECKBOXES:
        values[key] = "on" if flat.get(key) else None
    for i, phase in enumerate(flat.get("phases") or [], start=1):
        values[f"phase{i}_weeks"], values[f"phase{i}_per_week"] = phase["weeks"], phase["per_week"]
    values["at_minutes"] = ", ".join(str(m) for m in flat.get("at_minutes") or [])
    for scale, points in (flat.get("scores") or {}).items():
        values[_score_field(scale)] = ", ".join(str(p) for p in points)
    for scale, when in (flat.get("scales") or {}).items():
        values[f"scale_{scale}"], values[f"when_{scale}"] = "on", when
    return values


def form_errors(fields: dict[str, str]) -> dict[str, str]:
    """Error keys named after the form's inputs (`phases.0.weeks` → `phase1_weeks`, `at_minutes.2` → ...)."""
    out: dict[str, str] = {}
    for key, message in fields.items():
        parts = key.split(".")
        if parts[0] == "phases" and len(parts) == 3 and parts[1].isdigit():
            key = f"phase{int(parts[1]) + 1}_{parts[2]}"
        elif parts[0] in ("at_minutes", "scores", "scales", "phases"):
            key = parts[0]
        out.setdefault(key, message)
    return out


def _form_context(**extra):
    return {"routes": ROUTES, "dose_rules": DOSE_RULES, "course_scales": COURSE_SCALES,
            "session_scores": [(s, _score_field(s)) for s in SESSION_SCORES], "scale_when": SCALE_WHEN,
            "phase_rows": PHASE_ROWS, **extra}


@bp.get("/protocols")
@requires("protocols.view")
def index():
    protocols = service.list_active(get_db())
    return render_template("protocols/index.html", protocols=[(p, service.summary(p)) for p in protocols],
                           routes=ROUTES)


@bp.get("/protocols/<int:protocol_id>")
@requires("protocols.view")
def show(protocol_id: int):
    d = service.detail(get_db(), protocol_id)
    p = d.protocol
    cadence = load_json(p.cadence_json)
    return render_template("protocols/show.html", d=d, p=p, routes=ROUTES, dose_rules=DOSE_RULES,
                           schedule=load_json(p.schedule_json), cadence=cadence,
                           cadence_lines=describe_cadence(cadence), scales=load_json(p.scales_json),
                           thresholds=load_json(p.thresholds_json), scale_when=SCALE_WHEN)


@bp.route("/protocols/new", methods=["GET", "POST"])
@requires("protocols.manage")
def create():
    values: dict[str, Any] = {"route": "iv", "dose_rule": "mg_per_kg", "baseline_vitals": "on",
                              "discharge_vitals": "on", "observation_from": "dosing_end", "pre_minutes": 15,
                              "min_days_between": 1, "max_per_week": 3}
    errors, status = {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            data = parse(service.ProtocolCreate, input_from_form(request.form))
            row = service.create(get_db(), actor(), data, now=clock())
            flash(f"Protocol {row.name} created.", "success")
            return redirect(url_for("protocols.show", protocol_id=row.id))
        except ClinicError as err:
            errors, status = form_errors(err.fields), err.status
            errors.setdefault("__all__", err.message)
    return render_template("protocols/form.html", values=values, errors=errors, protocol=None,
                           **_form_context()), status


@bp.route("/protocols/<int:protocol_id>/change", methods=["GET", "POST"])
@requires("protocols.manage")
def change(protocol_id: int):
    db = get_db()
    protocol = service.get(db, protocol_id)
    errors, status = {}, 200
    if request.method == "POST":
        values = form_dict(request.form)
        try:
            data = parse(service.ProtocolChange, input_from_form(request.form))
            row = service.change(db, actor(), protocol_id, data, now=clock())
            flash(f"{row.name}: version {row.version} is now in use. Courses already ordered keep version "
                  f"{row.version - 1}.", "success")
            return redirect(url_for("protocols.show", protocol_id=row.id))
        except ClinicError as err:
            errors, status = form_errors(err.fields), err.status
            errors.setdefault("__all__", err.message)
    else:
        values = form_values(service.flat_values(protocol)) | {"based_on_version": protocol.version}
    return render_template("protocols/form.html", values=values, errors=errors, protocol=protocol,
                           **_form_context()), status
