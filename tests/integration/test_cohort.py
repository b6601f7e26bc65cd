"""Clinic outcomes (/outcomes, /outcomes.csv): rates by protocol on a small hand-made cohort, the filters,
role limits (managers see aggregates, nurses nothing), no names anywhere, and the audit trail."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.outcomes.models import ScaleResponse
from clinic.sessions.models import TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent
from tests.conftest import login, make_staff
from tests.integration.conftest import DAY, NY, ready_patient

KEYS = (f"coh{i:06d}" for i in itertools.count())
PERIOD = "since=2027-01-01&until=2027-03-31"


def _at(day_offset: int, hour: int) -> datetime:
    return datetime.combine(DAY + timedelta(days=day_offset), time(hour), NY).astimezone(UTC)


@pytest.fixture
def cohort(clinic, db):
    """Hand-made cohort, period 2027-01-01 to 2027-03-31 (DAY is 2027-01-11).

    IV induction (3 patients, sessions on days 0, 3, 7):
    - P1 (active, 6 planned, 3 discharged): PHQ-9 20, 8, 4 → response at session 2, remission;
      GAD-7 12, 5 (session 3) → response at session 3 (5 ≤ 6), not in remission (5 is not below 5).
    - P2 (active, 6 planned, 3 discharged): PHQ-9 18, 12, 9 → response at session 3 (9 ≤ 9), no remission;
      GAD-7 10, 8 → no response, no remission.
    - P3 (cancelled after 2 of 6): PHQ-9 22, 20 → no response, no remission. Dropout.
    - P6: course started 2026-12-01 (outside the period; its PHQ-9 20 → 2 must not count), but its
      session 2 on 2027-01-05 is discharged in the period with one adverse event.
    → PHQ-9 response 2 of 3 courses (67 %), remission 1 of 3 (33 %), median sessions to response 2.5;
      GAD-7 response 1 of 2 (50 %), remission 0 of 2, median 3; dropout 1 of 3;
      adverse events: P1 s2, P3 s1, P6 s2 = 3 on 9 discharged sessions (3 + 3 + 2 + 1) → 33.3 per 100.
    IM ketamine (2 patients, sessions on days 1, 4):
    - P4 (completed, 2 planned, 2 discharged): PHQ-9 16, 4 → response at session 2, remission.
    - P5 (active, 4 planned, 1 discharged, 1 cancelled session): PHQ-9 15 only → not judged.
    → PHQ-9 response 1 of 1, remission 1 of 1, median 2; GAD-7 none; dropout 0 of 2; 0 AEs on 3 sessions.
    """
    protocols = clinic["protocols"]
    site, chairs = clinic["site"], clinic["chairs"]
    nurse = make_staff(db, "nurse.c", "nurse")

    def course(n, code, planned, status, sessions, scores, aes=()):
        p = ready_patient(db, n)
        c = TreatmentCourse(patient_id=p.id, protocol_id=protocols[code].id, prescriber_id=clinic["prescriber"].id,
                            site_id=site.id, earliest_start=DAY + timedelta(days=sessions[0][1]),
                            planned_sessions=planned, status=status, ordered_at=_at(-60, 9))
        db.add(c)
        db.commit()
        made = []
        for number, (status_, day) in enumerate(sessions, start=1):
            s = TreatmentSession(course_id=c.id, patient_id=p.id, site_id=site.id, chair_id=chairs[n % len(chairs)].id,
                                 number_in_course=number, starts_at=_at(day, 6 + 2 * n),
                                 ends_at=_at(day, 6 + 2 * n) + timedelta(minutes=100), status=status_)
            db.add(s)
            db.commit()
            made.append(s)
        for scale, totals in scores.items():
            for s, total in zip(made, totals, strict=False):
                if total is None:  # no score at that session
                    continue
                db.add(ScaleResponse(patient_id=p.id, course_id=c.id, session_id=s.id, scale=scale, total=total,
                                     measured_at=s.starts_at + timedelta(minutes=5), client_key=next(KEYS)))
        for index in aes:
            s = made[index]
            db.add(AdverseEvent(session_id=s.id, patient_id=p.id, kind="nausea", severity="mild",
                                onset_at=s.starts_at + timedelta(minutes=30), recorded_by_id=nurse.id,
                                client_key=next(KEYS)))
        db.commit()
        return p

    done = "discharged"
    iv3 = [(done, 0), (done, 3), (done, 7)]
    patients = [
        course(1, "iv-induction", 6, "active", iv3, {"PHQ-9": (20, 8, 4), "GAD-7": (12, None, 5)}, aes=(1,)),
        course(2, "iv-induction", 6, "active", iv3, {"PHQ-9": (18, 12, 9), "GAD-7": (10, 8)}),
        course(3, "iv-induction", 6, "cancelled", iv3[:2], {"PHQ-9": (22, 20)}, aes=(0,)),
        course(4, "im-ketamine", 2, "completed", [(done, 1), (done, 4)], {"PHQ-9": (16, 4)}),
        course(5, "im-ketamine", 4, "active", [(done, 1), ("cancelled", 4)], {"PHQ-9": (15,)}),
        course(6, "iv-induction", 6, "active", [(done, -41), (done, -6)], {"PHQ-9": (20, 2)}, aes=(1,)),
    ]
    return patients


def _rows(html: str) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    out = {}
    for protocol, scale, measure, body in re.findall(
            r'<tr data-protocol="([^"]*)" data-scale="([^"]*)" data-measure="([^"]*)">(.*?)</tr>', html, re.S):
        figure = re.search(r'class="figure">(.*?)</td>', body, re.S)[1].strip()
        behind = re.sub(r"\s+", " ", re.search(r'class="behind">(.*?)</td>', body, re.S)[1]).strip()
        patients = re.search(r'class="patients">(.*?)</td>', body, re.S)[1].strip()
        out[(protocol, scale, measure)] = (figure, behind, patients)
    return out


def test_rates_by_protocol_on_the_hand_made_cohort(client, cohort, db):
    make_staff(db, "max.manager", "manager")
    login(client, "max.manager")
    r = client.get(f"/outcomes?site=all&{PERIOD}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    rows = _rows(html)
    iv, im = "IV ketamine induction", "IM ketamine induction"
    assert rows[(iv, "PHQ-9", "response_rate")] == ("67 %", "2 of 3 courses", "3")
    assert rows[(iv, "PHQ-9", "remission_rate")] == ("33 %", "1 of 3 courses", "3")
    assert rows[(iv, "PHQ-9", "median_sessions_to_response")] == ("2.5", "2 courses", "2")
    assert rows[(iv, "GAD-7", "response_rate")] == ("50 %", "1 of 2 courses", "2")
    assert rows[(iv, "GAD-7", "remission_rate")] == ("0 %", "0 of 2 courses", "2")
    assert rows[(iv, "GAD-7", "median_sessions_to_response")] == ("3.0", "1 courses", "1")
    assert rows[(iv, "", "dropout_rate")] == ("33 %", "1 of 3 courses", "3")
    assert rows[(iv, "", "adverse_events_per_100_sessions")] == ("33.3", "3 of 9 sessions", "4")
    assert rows[(im, "PHQ-9", "response_rate")] == ("100 %", "1 of 1 courses", "1")
    assert rows[(im, "PHQ-9", "remission_rate")] == ("100 %", "1 of 1 courses", "1")
    assert rows[(im, "PHQ-9", "median_sessions_to_response")] == ("2.0", "1 courses", "1")
    assert rows[(im, "GAD-7", "response_rate")] == ("—", "0 of 0 courses", "0")
    assert rows[(im, "", "dropout_rate")] == ("0 %", "0 of 2 courses", "2")
    assert rows[(im, "", "adverse_events_per_100_sessions")] == ("0.0", "0 of 3 sessions", "2")
    assert rows[("All protocols", "PHQ-9", "response_rate")] == ("75 %", "3 of 4 courses", "4")
    # Aggregates only: no patient's name or record number on the page.
    for p in cohort:
        assert p.family_name not in html and p.mrn not in html
    # The page is in the navigation of a manager, and the view is audited.
    assert 'href="/outcomes"' in html
    events = db.exec(select(AuditEvent).where(AuditEvent.entity == "clinic_outcomes")).all()
    assert [(e.action, e.patient_id) for e in events] == [("view", None)]
    assert "2027-01-01 to 2027-03-31" in events[0].detail


def test_csv_is_the_same_table_without_names(client, cohort, db):
    login(client, "dr.pat")
    r = client.get(f"/outcomes.csv?{PERIOD}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    body = r.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == ["protocol", "scale", "measure", "value", "count", "out_of", "unit", "patients"]
    iv_phq = next(x for x in rows if x["protocol"] == "IV ketamine induction" and x["scale"] == "PHQ-9"
                  and x["measure"] == "response_rate")
    assert (iv_phq["value"], iv_phq["count"], iv_phq["out_of"], iv_phq["patients"]) == ("0.6667", "2", "3", "3")
    ae = next(x for x in rows if x["protocol"] == "IV ketamine induction"
              and x["measure"] == "adverse_events_per_100_sessions")
    assert (ae["value"], ae["count"], ae["out_of"], ae["unit"]) == ("33.3333", "3", "9", "sessions")
    html_rows = _rows(client.get(f"/outcomes?{PERIOD}").get_data(as_text=True))
    assert len(rows) == len(html_rows)
    for p in cohort:
        assert p.family_name not in body and p.mrn not in body
    actions = [e.action for e in db.exec(select(AuditEvent).where(AuditEvent.entity == "clinic_outcomes")
                                         .order_by(AuditEvent.id)).all()]
    assert actions == ["export", "view"]


def test_site_filter_and_default_period(client, cohort, clinic, app):
    login(client, "dr.pat")
    site = clinic["site"].id
    assert "IV ketamine induction" in client.get(f"/outcomes?site={site}&{PERIOD}").get_data(as_text=True)
    # Default: the 6 months up to today. Today 2027-08-20 → from 2027-02-20: no course starts then.
    app.extensions["clinic.clock"].now = datetime(2027, 8, 20, 15, tzinfo=UTC)
    login(client, "dr.pat")  # moving the clock ends the idle session
    html = client.get("/outcomes").get_data(as_text=True)
    assert 'value="2027-02-20"' in html and 'value="2027-08-20"' in html
    assert "No courses or sessions in this period." in html
    # Today 2027-06-30 → from 2026-12-30: every course but P6 (started 2026-12-01).
    app.extensions["clinic.clock"].now = datetime(2027, 6, 30, 15, tzinfo=UTC)
    login(client, "dr.pat")
    rows = _rows(client.get("/outcomes").get_data(as_text=True))
    assert rows[("IV ketamine induction", "PHQ-9", "response_rate")][1] == "2 of 3 courses"


def test_nurse_is_refused(client, cohort, db):
    login(client, "nurse.c")
    assert client.get(f"/outcomes?{PERIOD}").status_code == 403
    assert client.get(f"/outcomes.csv?{PERIOD}").status_code == 403
    assert 'href="/outcomes"' not in client.get("/").get_data(as_text=True)
    assert not db.exec(select(AuditEvent).where(AuditEvent.entity == "clinic_outcomes")).all()


@pytest.mark.parametrize(("query", "field"), [
    ("since=2027-13-01", "since"),
    ("since=yesterday", "since"),
    ("until=20270301", "until"),
    ("since=2027-03-01&until=2027-01-01", "until"),
    ("site=999", "site"),
    ("site=north", "site"),
])
def test_bad_filters_are_422_naming_the_field(client, clinic, query, field):
    login(client, "dr.pat")
    r = client.get(f"/outcomes?{query}", headers={"Accept": "application/json"})
    assert r.status_code == 422
    assert field in r.get_json()["fields"]
    page = client.get(f"/outcomes.csv?{query}")
    assert page.status_code == 422 and f"{field}:" in page.get_data(as_text=True)
