"""Printable regulatory paperwork: the Spravato REMS monitoring form (page and CSV) and adverse-event
reports (page, seriousness criteria, "mark as sent", the list of reports still to send)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError
from clinic.vitals import reports
from clinic.vitals.reports import REMS_LABELS, SeriousnessIn
from clinic.vocab import ADVERSE_EVENT_KINDS, SERIOUSNESS_CRITERIA, SEVERITIES
from clinic.web import actor, clock, fmt_datetime, parse, settings, wants_json

bp = Blueprint("reports", __name__)


@bp.get("/sessions/<int:session_id>/rems")
@requires("reports.view")
def rems(session_id: int):
    view = reports.rems_for_session(get_db(), actor(), settings(), session_id, now=clock(), action="print")
    return render_template("reports/rems.html", v=view, f=view.form, labels=REMS_LABELS)


@bp.get("/sessions/<int:session_id>/rems.csv")
@requires("reports.view")
def rems_csv(session_id: int):
    view = reports.rems_for_session(get_db(), actor(), settings(), session_id, now=clock(), action="export")
    body = reports.rems_csv(view.form, view.state.zone)
    # The file name carries no patient name: it may be saved to a shared folder.
    name = f"spravato-rems-session-{session_id}-{view.form.date.isoformat()}.csv"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/adverse-events/reportable")
@requires("reports.view")
def reportable():
    rows = reports.reportable_unsent(get_db(), actor(), now=clock())
    return render_template("reports/reportable.html", rows=rows, kinds=ADVERSE_EVENT_KINDS, severities=SEVERITIES)


@bp.get("/adverse-events/<int:event_id>/report")
@requires("reports.view")
def ae_report(event_id: int):
    report = reports.report_for_event(get_db(), actor(), settings(), event_id, now=clock(), action="print")
    return render_template("reports/adverse_event.html", r=report, criteria=SERIOUSNESS_CRITERIA)


def _back(event_id: int, message: str, category: str = "success"):
    flash(message, category)
    return redirect(url_for("reports.ae_report", event_id=event_id))


@bp.post("/adverse-events/<int:event_id>/seriousness")
@requires("reports.send")
def seriousness(event_id: int):
    try:
        data = parse(SeriousnessIn, {"criteria": request.form.getlist("criteria")})
        row = reports.set_seriousness(get_db(), actor(), event_id, data, now=clock())
    except ClinicError as err:
        if wants_json():
            return jsonify(err.to_json()), err.status
        return _back(event_id, err.message, "error")
    if wants_json():
        return jsonify({"ok": True, "id": row.id, "serious": row.serious, "reportable": row.reportable})
    return _back(event_id, "Seriousness criteria saved.")


@bp.post("/adverse-events/<int:event_id>/sent")
@requires("reports.send")
def sent(event_id: int):
    row, changed = reports.mark_sent(get_db(), actor(), event_id, now=clock())
    if wants_json():
        return jsonify({"ok": True, "id": row.id, "changed": changed, "reported_at": row.reported_at.isoformat(),
                        "reported_by_id": row.reported_by_id})
    if changed:
        return _back(event_id, "Marked as sent.")
    return _back(event_id, f"Already marked as sent on {fmt_datetime(row.reported_at)}; nothing changed.", "info")
