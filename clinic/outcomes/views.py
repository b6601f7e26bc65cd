"""The prescriber's dashboard of one patient: trajectories, course outcomes and per-session safety numbers.

Clinical content (an individual's answers), so only the clinical roles may open it; every view is audited.
"""

from __future__ import annotations

import json

import pandas as pd
from flask import Blueprint, Response, render_template, request

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.outcomes import charts, export, service
from clinic.vocab import COURSE_STATUSES, SCALES, SESSION_STATUSES
from clinic.web import actor, clock, settings

bp = Blueprint("outcomes", __name__)


@bp.get("/patients/<int:patient_id>/outcomes")
@requires("outcomes.patient")
def patient(patient_id: int):
    by = request.args.get("by", "date")
    if by not in charts.BY:
        by = "date"
    db = get_db()
    dash = service.dashboard(db, patient_id)
    audit.record(db, actor(), "view", "patient", patient_id, patient_id=patient_id,
                 detail=f"outcomes dashboard (by {by})")
    db.commit()
    zone = settings().zone
    trajectories = [(scale, SCALES[scale][0], charts.trajectory(dash, scale, by=by, zone=zone).to_json())
                    for scale in dash.scales]
    dose_fig = charts.dose_response(dash)
    return render_template(
        "outcomes/patient.html", d=dash, p=dash.patient, by=by, trajectories=trajectories,
        dose_json=dose_fig.to_json() if dose_fig is not None else None, scales=SCALES,
        course_statuses=COURSE_STATUSES, session_statuses=SESSION_STATUSES,
        response_words=service.response_words, remission_words=service.remission_words,
        course_label={c.course.id: c.label for c in dash.courses}, isna=_isna)


def _isna(value) -> bool:
    return value is None or bool(pd.isna(value))


# --- export (CSV and FHIR R4); every export is audited ------------------------------------------------

_CSV_EXPORTS = {"scores": export.scores_csv, "sessions": export.sessions_csv, "vitals": export.vitals_csv}


def _audited_export(patient_id: int, what: str) -> None:
    db = get_db()
    audit.record(db, actor(), "export", "patient", patient_id, patient_id=patient_id, detail=f"outcomes export: {what}")
    db.commit()


@requires("outcomes.patient")
def export_csv(patient_id: int, table: str):
    p, body = _CSV_EXPORTS[table](get_db(), patient_id)
    _audited_export(patient_id, f"{table}.csv")
    # The file name carries the MRN, never the patient's name.
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{export.safe_mrn(p)}-{table}.csv"'})


for _table in _CSV_EXPORTS:  # one plain rule per table: /patients/<id>/export/scores.csv, sessions.csv, vitals.csv
    bp.add_url_rule(f"/patients/<int:patient_id>/export/{_table}.csv", "export_csv", export_csv,
                    defaults={"table": _table})


@bp.get("/patients/<int:patient_id>/export/fhir.json")
@requires("outcomes.patient")
def export_fhir(patient_id: int):
    p, bundle = export.fhir_bundle(get_db(), patient_id, now=clock())
    _audited_export(patient_id, "fhir.json")
    return Response(json.dumps(bundle, indent=1), mimetype="application/fhir+json",
                    headers={"Content-Disposition": f'attachment; filename="{export.safe_mrn(p)}-fhir.json"'})
