"""Clinic outcomes by protocol for a period and site: aggregates only, so managers may open them too.

/outcomes shows the table, /outcomes.csv downloads the same table; both take ?site=<id|all>&since=&until=
(dates YYYY-MM-DD; default the last 6 months, all sites). Bad filters are a 422 naming the field. Every
view and download is audited (entity "clinic_outcomes").
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from clinic import audit
from clinic.auth.permissions import requires
from clinic.db import get_db
from clinic.outcomes import cohort
from clinic.vocab import SCALES
from clinic.web import actor, settings, today_local

bp = Blueprint("cohort", __name__)


def _report(action: str, what: str) -> tuple[cohort.CohortReport, list[tuple[int, str]]]:
    db = get_db()
    sites = cohort.site_choices(db)
    filters = cohort.parse_filters(request.args, today=today_local(), site_ids={s for s, _ in sites})
    result = cohort.report(db, filters, zone=settings().zone)
    args = filters.as_args()
    audit.record(db, actor(), action, "clinic_outcomes",
                 detail=f"{what}: site {args['site']}, {args['since']} to {args['until']}")
    db.commit()
    return result, sites


@bp.get("/outcomes")
@requires("outcomes.clinic")
def index():
    result, sites = _report("view", "clinic outcomes")
    return render_template("outcomes/cohort.html", r=result, args=result.filters.as_args(), sites=sites,
                           measures=cohort.MEASURES, scales=SCALES, fmt=cohort.format_value)


@bp.get("/outcomes.csv")
@requires("outcomes.clinic")
def csv():
    result, _sites = _report("export", "clinic outcomes CSV")
    args = result.filters.as_args()
    name = f"clinic-outcomes-{args['site']}-{args['since']}-{args['until']}.csv"
    return Response(cohort.to_csv(result.rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
