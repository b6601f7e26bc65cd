"""Rota pages: the week of a site (who is on shift, head-count per hour), and for managers the weekly
patterns and the exceptions (leave, swaps, extra shifts)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.errors import ClinicError, InvalidInput
from clinic.sessions import rota_service as service
from clinic.sessions.models import Site
from clinic.sessions.rota import WEEKDAY_NAMES, week_start
from clinic.sessions.service import list_sites
from clinic.vocab import SHIFT_EXCEPTION_KINDS
from clinic.web import actor, clock, form_dict, parse, settings

bp = Blueprint("rota", __name__)

ROLE_NAMES = {"nurse": "Nurse", "prescriber": "Prescriber"}
SECTION_NAMES = {"nurse": "Nurses", "prescriber": "Prescribers"}
SOURCE_NAMES = {"extra": "Extra", "swap": "Swap", "manual": "Added by hand"}


def _site_choice() -> tuple[list[Site], Site]:
    """The active sites, and the one asked for (else the person's first site, else the first)."""
    sites = list_sites(get_db())
    if not sites:
        raise InvalidInput("No site is configured.")
    asked = request.values.get("site_id", "")
    by_id = {s.id: s for s in sites}
    if asked.isdigit() and int(asked) in by_id:
        return sites, by_id[int(asked)]
    mine = [s for s in sites if s.id in (current_user.site_ids or ())]
    return sites, (mine or sites)[0]


def _formatters(site: Site) -> dict[str, Any]:
    zone = service.zone_of(site)
    twelve = settings().clinic.time_format == "12h"

    def wall(t: time | str | None) -> str:
        if t is None:
            return ""
        if isinstance(t, str):
            t = time.fromisoformat(t)
        return t.strftime("%I:%M %p").lstrip("0") if twelve else t.strftime("%H:%M")

    def at(dt: datetime | None) -> str:
        return wall(dt.astimezone(zone).time()) if dt is not None else ""

    def day(d: date | datetime) -> str:
        if isinstance(d, datetime):
            d = d.astimezone(zone).date()
        return f"{WEEKDAY_NAMES[d.weekday()][:3]} {d:%d %b %Y}"

    def span(a: datetime, b: datetime) -> str:
        la, lb = a.astimezone(zone), b.astimezone(zone)
        if la.time() == time(0) and lb.time() == time(0):  # whole days
            last = lb.date() - timedelta(days=1)
            return day(la.date()) + ("" if last == la.date() else f" – {day(last)}") + " (whole day" + \
                ("" if last == la.date() else "s") + ")"
        if la.date() == lb.date():
            return f"{day(la.date())} {at(a)}–{at(b)}"
        return f"{day(la.date())} {at(a)} – {day(lb.date())} {at(b)}"

    return {"wall": wall, "at": at, "day": day, "span": span, "zone_name": site.time_zone}


def _common(site: Site, sites: list[Site], **extra) -> dict[str, Any]:
    return {"site": site, "sites": sites, "weekday_names": WEEKDAY_NAMES, "role_names": ROLE_NAMES,
            "section_names": SECTION_NAMES, "source_names": SOURCE_NAMES, **_formatters(site), **extra}


def _today(site: Site) -> date:
    return service.site_today(site, clock())


@bp.get("/rota")
@requires("rota.view")
def index():
    sites, site = _site_choice()
    asked = request.args.get("week")
    try:
        monday = week_start(date.fromisoformat(asked) if asked else _today(site))
    except ValueError as err:
        raise InvalidInput("Use a date like 2026-11-23.", fields={"week": "use a date like 2026-11-23"}) from err
    view = service.week_view(get_db(), site.id, monday)
    return render_template("rota/index.html", **_common(site, sites, view=view, monday=monday, today=_today(site),
                                                        prev_week=monday - timedelta(days=7),
                                                        next_week=monday + timedelta(days=7)))


# --- patterns -----------------------------------------------------------------------------------


def _patterns_page(site: Site, sites: list[Site], *, values: dict | None = None, errors: dict | None = None,
                   status: int = 200):
    db = get_db()
    today = _today(site)
    values = values if values is not None else {"valid_from": today.isoformat(), "weekdays": []}
    return render_template("rota/patterns.html", **_common(
        site, sites, patterns=service.list_patterns(db, site.id, today=today), staff=service.site_staff(db, site.id),
        values=values, errors=errors or {}, today=today)), status


@bp.get("/rota/patterns")
@requires("rota.manage")
def patterns():
    sites, site = _site_choice()
    return _patterns_page(site, sites)


@bp.post("/rota/patterns")
@requires("rota.manage")
def pattern_add():
    sites, site = _site_choice()
    values = form_dict(request.form, lists=("weekdays",))
    values["site_id"] = site.id
    try:
        created = service.add_patterns(get_db(), actor(), parse(service.PatternIn, values), now=clock())
    except ClinicError as err:
        errors = dict(err.fields)
        errors.setdefault("__all__", err.message)
        return _patterns_page(site, sites, values=values, errors=errors, status=err.status)
    days = ", ".join(WEEKDAY_NAMES[p.weekday] for p in created)
    flash(f"Added to the rota: {days}. Shifts from today are updated.", "success")
    return redirect(url_for("rota.patterns", site_id=site.id))


@bp.post("/rota/patterns/end")
@requires("rota.manage")
def pattern_end():
    sites, site = _site_choice()
    values = form_dict(request.form, lists=("pattern_ids",))
    try:
        ids = [int(i) for i in values.pop("pattern_ids")]
        data = parse(service.PatternEnd, {"valid_until": values.get("valid_until")})
        ended = service.end_patterns(get_db(), actor(), ids, data, now=clock())
        days = ", ".join(WEEKDAY_NAMES[p.weekday] for p in ended)
        flash(f"Ended ({days}): the last day is {data.valid_until:%d %b %Y}.", "success")
    except ValueError:
        flash("Pattern not ended: choose a pattern from the list.", "error")
        return _patterns_page(site, sites, status=422)
    except ClinicError as err:
        detail = "; ".join(err.fields.values())
        flash("Pattern not ended: " + err.message + (f" ({detail})" if detail else ""), "error")
        return _patterns_page(site, sites, status=err.status)
    return redirect(url_for("rota.patterns", site_id=site.id))


# --- exceptions ---------------------------------------------------------------------------------


def _exceptions_page(site: Site, sites: list[Site], *, values: dict | None = None, errors: dict | None = None,
                     status: int = 200):
    db = get_db()
    today = _today(site)
    values = values if values is not None else {"kind": "leave", "starts_on": today.isoformat()}
    return render_template("rota/exceptions.html", **_common(
        site, sites, exceptions=service.list_exceptions(db, site.id, now=clock()),
        staff=service.site_staff(db, site.id), kinds=SHIFT_EXCEPTION_KINDS, values=values, errors=errors or {},
        today=today)), status


@bp.get("/rota/exceptions")
@requires("rota.manage")
def exceptions():
    sites, site = _site_choice()
    return _exceptions_page(site, sites)


@bp.post("/rota/exceptions")
@requires("rota.manage")
def exception_add():
    sites, site = _site_choice()
    values = form_dict(request.form)
    values["site_id"] = site.id
    if values.get("kind") != "extra":
        values.pop("role", None)
    if values.get("kind") != "swap":
        values.pop("swapped_with_id", None)
    try:
        row = service.add_exception(get_db(), actor(), parse(service.ExceptionIn, values), now=clock())
    except ClinicError as err:
        errors = dict(err.fields)
        errors.setdefault("__all__", err.message)
        return _exceptions_page(site, sites, values=values, errors=errors, status=err.status)
    flash(f"{SHIFT_EXCEPTION_KINDS[row.kind]} recorded. Shifts from today are updated.", "success")
    return redirect(url_for("rota.exceptions", site_id=site.id))


@bp.post("/rota/exceptions/<int:exception_id>/withdraw")
@requires("rota.manage")
def exception_withdraw(exception_id: int):
    sites, site = _site_choice()
    try:
        service.withdraw_exception(get_db(), actor(), exception_id, now=clock())
        flash("Withdrawn. Shifts from today are updated.", "success")
    except ClinicError as err:
        flash("Not withdrawn: " + err.message, "error")
        return _exceptions_page(site, sites, status=err.status)
    return redirect(url_for("rota.exceptions", site_id=site.id))


@bp.post("/rota/rebuild")
@requires("rota.manage")
def rebuild():
    """Rebuild the site's shifts from today to the horizon (after a data repair, say)."""
    sites, site = _site_choice()
    today = _today(site)
    result = service.regenerate_shifts(get_db(), actor(), site.id, today, service.horizon_end(site, clock()),
                                       clock())
    flash(f"Shifts of {site.name} rebuilt from {today:%d %b %Y} for {service.HORIZON_WEEKS} weeks: "
          f"{result.written} shifts.", "success")
    return redirect(url_for("rota.patterns", site_id=site.id))
