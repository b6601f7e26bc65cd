"""The administrator's view of the audit trail: filter and page through who did what."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request
from sqlmodel import select

from clinic import audit
from clinic.auth.models import StaffUser
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.patients.models import Patient
from clinic.web import settings

bp = Blueprint("auditlog", __name__)
PAGE = 50


def _day(value: str | None, errors: dict[str, str], name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "use a date like 2026-11-23"
        return None


@bp.get("/admin/audit")
@requires("audit.view")
def index():
    db = get_db()
    args = request.args
    errors: dict[str, str] = {}
    filters: dict = {}
    if args.get("username"):
        user = db.exec(select(StaffUser).where(StaffUser.username == args["username"].strip().lower())).first()
        if user is None:
            errors["username"] = "no such username"
        else:
            filters["actor_id"] = user.id
    if args.get("mrn"):
        patient = db.exec(select(Patient).where(Patient.mrn == args["mrn"].strip().upper())).first()
        if patient is None:
            errors["mrn"] = "no patient with this record number"
        else:
            filters["patient_id"] = patient.id
    if args.get("action"):
        if args["action"] not in audit.ACTIONS:
            errors["action"] = "unknown action"
        else:
            filters["action"] = args["action"]
    if args.get("entity"):
        filters["entity"] = args["entity"].strip()
    zone = settings().zone
    since = _day(args.get("since"), errors, "since")
    until = _day(args.get("until"), errors, "until")
    if since:
        filters["since"] = datetime.combine(since, time(0), zone).astimezone(UTC)
    if until:
        filters["until"] = datetime.combine(until + timedelta(days=1), time(0), zone).astimezone(UTC)
    before_id = args.get("before", type=int)
    events = [] if errors else audit.page(db, before_id=before_id, limit=PAGE + 1, **filters)
    more = len(events) > PAGE
    events = events[:PAGE]
    patients = {p.id: p for p in db.exec(select(Patient).where(
        Patient.id.in_({e.patient_id for e in events if e.patient_id})))} if events else {}
    keep = {k: v for k, v in args.items() if k != "before" and v}
    return render_template("audit/index.html", events=events, more=more, errors=errors, args=args, keep=keep,
                           actions=audit.ACTIONS, patients=patients), 422 if errors else 200
