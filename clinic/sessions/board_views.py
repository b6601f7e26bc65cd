"""The day board (chairs × time of day) and the week calendar, per site."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError, InvalidInput
from clinic.sessions import board
from clinic.sessions.service import list_sites
from clinic.vitals.service import open_site_alerts
from clinic.vocab import PATIENT_FLAG_KINDS, SESSION_STATUSES
from clinic.web import actor, clock

bp = Blueprint("board", __name__)


def _site_and_day():
    sites = list_sites(get_db())
    if not sites:
        raise InvalidInput("No site is configured.")
    wanted = request.args.get("site", type=int)
    mine = [s for s in sites if s.id in current_user.site_ids]
    site = next((s for s in sites if s.id == wanted), None) or (mine[0] if mine else sites[0])
    zone = ZoneInfo(site.time_zone)
    today = clock().astimezone(zone).date()
    raw = request.args.get("day")
    try:
        day = date.fromisoformat(raw) if raw else today
    except ValueError as exc:
        raise InvalidInput("Use a date like 2026-11-23.", fields={"day": "use a date like 2026-11-23"}) from exc
    return sites, site, zone, day, today


@bp.get("/board")
@requires("board.view")
def day():
    sites, site, zone, day, today = _site_and_day()
    data = board.day_board(get_db(), actor(), site.id, day)
    alerts = open_site_alerts(get_db(), site.id) if current_user.can("alerts.view") else []
    context = {"b": data, "sites": sites, "today": today, "now": clock(), "zone": zone, "statuses": SESSION_STATUSES,
               "flag_kinds": PATIENT_FLAG_KINDS, "timedelta": timedelta, "alerts": alerts}
    if request.args.get("partial"):
        return render_template("board/_day.html", **context)
    return render_template("board/day.html", **context)


@bp.get("/calendar")
@requires("board.view")
def week():
    sites, site, zone, day, today = _site_and_day()
    monday = day - timedelta(days=day.weekday())
    chair_id = request.args.get("chair", type=int)
    site, days, chairs = board.week_calendar(get_db(), actor(), site.id, monday, chair_id=chair_id)
    return render_template("board/week.html", site=site, sites=sites, days=days, chairs=chairs, chair_id=chair_id,
                           monday=monday, today=today, zone=zone, statuses=SESSION_STATUSES, timedelta=timedelta)


@bp.post("/sessions/<int:session_id>/check-in")
@requires("sessions.checkin")
def check_in(session_id: int):
    back = request.form.get("back") or url_for("board.day")
    try:
        board.check_in(get_db(), actor(), session_id, expected_version=request.form.get("row_version", type=int),
                       now=clock())
        flash("Checked in.", "success")
    except ClinicError as err:
        flash(err.message, "error")
    return redirect(back if back.startswith("/") else url_for("board.day"))
