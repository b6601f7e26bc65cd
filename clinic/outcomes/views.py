"""The prescriber's dashboard of one patient: trajectories, course outcomes and per-session safety numbers.

Clinical content (an individual's answers), so only the clinical roles may open it; every view is audited.
"""

from __future__ import annotations

import pandas as pd
from flask import Blueprint, render_template, request

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.outcomes import charts, service
from clinic.vocab import COURSE_STATUSES, SCALES, SESSION_STATUSES
from clinic.web import actor, settings

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
