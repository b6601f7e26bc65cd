"""The prescriber's patient dashboard: course outcomes on a hand-worked example, the by-date / by-session
toggle, the figures' traces, the per-session safety numbers, role limits and the audit trail."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.outcomes.models import ScaleResponse
from clinic.sessions.models import TreatmentCourse, TreatmentSession
from clinic.vitals.models import AdverseEvent, DoseAdministration, VitalsReading
from tests.conftest import login, make_staff
from tests.integration.conftest import DAY, NY, ready_patient

KEYS = (f"out{i:06d}" for i in itertools.count())


def _at(day_offset: int, hour: int = 10) -> datetime:
    return datetime.combine(DAY + timedelta(days=day_offset), time(hour), NY).astimezone(UTC)


@pytest.fixture
def history(clinic, db):
    """Hand-worked example.

    Course 1 (IV induction, 6 planned, 4 done). PHQ-9: 20 before session 1 (baseline), then 16, 12, 9, 4 at
    sessions 1–4. Response line 10: first reached at session 3 (9 ≤ 10); latest 4 < 5 → remission;
    change (4 − 20) / 20 = −80 %. GAD-7: 12, 8, 7 at sessions 1–3: 7 > 6 → no response; 7 ≥ 5 → not in
    remission.
    Course 2 (booster, 2 planned, 2 done). PHQ-9: 14, 6 at sessions 1–2: 6 ≤ 7 → response; 6 ≥ 5 → not in
    remission.
    Session 1 of course 1: 35 mg at 0.5 mg/kg; systolic 120 before dosing, 135 and 160 after, the 160
    amended to 142 → rise 22 mmHg; CADSS-6 0 before dosing, 9 and 5 after → peak 9; MOAA/S 4, 3 → lowest 3;
    one adverse event.
    """
    patient = ready_patient(db, 1)
    nurse = make_staff(db, "nurse.x", "nurse")
    protocol = clinic["protocols"]["iv-induction"]
    common = {"patient_id": patient.id, "protocol_id": protocol.id, "prescriber_id": clinic["prescriber"].id,
              "site_id": clinic["site"].id}
    c1 = TreatmentCourse(**common, earliest_start=DAY, planned_sessions=6, status="active", ordered_at=_at(-3))
    c2 = TreatmentCourse(**common, kind="booster", earliest_start=DAY + timedelta(days=60), planned_sessions=2,
                         status="active", ordered_at=_at(50))
    db.add_all([c1, c2])
    db.commit()

    def session(course, n, day):
        s = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=clinic["site"].id,
                             chair_id=clinic["chairs"][0].id, number_in_course=n, starts_at=_at(day),
                             ends_at=_at(day) + timedelta(minutes=100), status="discharged",
                             checked_in_at=_at(day), dosing_started_at=_at(day) + timedelta(minutes=15))
        db.add(s)
        db.commit()
        return s

    s1 = [session(c1, n, day) for n, day in ((1, 0), (2, 3), (3, 7), (4, 10))]
    s2 = [session(c2, n, day) for n, day in ((1, 60), (2, 63))]

    def score(scale, total, at, course, sess=None):
        r = ScaleResponse(patient_id=patient.id, course_id=course.id, session_id=sess.id if sess else None,
                          scale=scale, measured_at=at, total=total, client_key=next(KEYS))
        db.add(r)
        db.commit()
        return r

    score("PHQ-9", 20, _at(-2), c1)  # baseline before the first session
    for sess, total in zip(s1, (16, 12, 9, 4), strict=True):
        score("PHQ-9", total, sess.starts_at + timedelta(minutes=5), c1, sess)
    for sess, total in zip(s1, (12, 8, 7), strict=False):
        score("GAD-7", total, sess.starts_at + timedelta(minutes=6), c1, sess)
    for sess, total in zip(s2, (14, 6), strict=True):
        score("PHQ-9", total, sess.starts_at + timedelta(minutes=5), c2, sess)

    first = s1[0]
    t0 = first.starts_at
    score("CADSS-6", 0, t0 + timedelta(minutes=10), c1, first)
    score("CADSS-6", 9, t0 + timedelta(minutes=30), c1, first)
    score("CADSS-6", 5, t0 + timedelta(minutes=50), c1, first)
    score("MOAA/S", 4, t0 + timedelta(minutes=30), c1, first)
    score("MOAA/S", 3, t0 + timedelta(minutes=40), c1, first)
    db.add(DoseAdministration(session_id=first.id, route="iv", weight_kg=70, mg_per_kg=0.5, dose_mg=35,
                              lot_number="L1", started_at=t0 + timedelta(minutes=15), administered_by_id=nurse.id,
                              client_key=next(KEYS)))

    def vitals(minutes, systolic, phase, **extra):
        v = VitalsReading(session_id=first.id, patient_id=patient.id, phase=phase,
                          measured_at=t0 + timedelta(minutes=minutes), recorded_by_id=nurse.id, systolic=systolic,
                          diastolic=80, client_key=next(KEYS), **extra)
        db.add(v)
        db.commit()
        return v

    vitals(5, 120, "baseline")
    vitals(25, 135, "dosing")
    wrong = vitals(40, 160, "dosing")
    vitals(40, 142, "dosing", amends_id=wrong.id, amendment_reason="typed 160 for 142")
    db.add(AdverseEvent(session_id=first.id, patient_id=patient.id, kind="hypertension", severity="mild",
                        onset_at=t0 + timedelta(minutes=40), recorded_by_id=nurse.id, client_key=next(KEYS)))
    db.commit()
    return {"patient": patient, "c1": c1, "c2": c2, "first": first}


def _figures(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-chart data-target="([^"]+)"[^>]*>(.*?)</script>',
                       html, re.S)
    return {target: json.loads(body) for target, body in found}


def _row(html: str, course_id: int, scale: str) -> str:
    match = re.search(rf'<tr data-course="{course_id}" data-scale="{re.escape(scale)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for course {course_id} {scale}"
    return re.sub(r"\s+", " ", match.group(1))


def test_dashboard_shows_hand_worked_outcomes_and_is_audited(client, history, db):
    login(client, "dr.pat")
    pid = history["patient"].id
    assert f'href="/patients/{pid}/outcomes"' in client.get(f"/patients/{pid}").get_data(as_text=True)
    r = client.get(f"/patients/{pid}/outcomes")
    assert r.status_code == 200
    html = r.get_data(as_text=True)

    phq1 = _row(html, history["c1"].id, "PHQ-9")
    assert "4 done of 6 planned" in phq1
    assert "20 → 4" in phq1 and "-80 %" in phq1
    assert ">Response<" in phq1 and ">Remission <" in phq1
    assert '<td data-label="Sessions to response">3</td>' in phq1
    gad1 = _row(html, history["c1"].id, "GAD-7")
    assert ">No response<" in gad1 and ">Not in remission <" in gad1
    phq2 = _row(html, history["c2"].id, "PHQ-9")
    assert "2 done of 2 planned" in phq2 and ">Response<" in phq2 and ">Not in remission <" in phq2

    # Per session: dose, peak CADSS-6 after dosing, lowest MOAA/S, rise over baseline (amended value), AEs.
    row = re.sub(r"\s+", " ", re.search(rf'<tr data-session="{history["first"].id}">(.*?)</tr>', html, re.S)[1])
    assert "35.0 mg · 0.50 mg/kg" in row
    assert '<td data-label="Peak CADSS-6">9</td>' in row and '<td data-label="Lowest MOAA/S">3</td>' in row
    assert "+22 mmHg" in row and "(from 120)" in row
    assert '<td data-label="Adverse events">1</td>' in row

    # The charts are drawn by static JS, not inline scripts.
    assert "js/charts.js" in html and "plotly-cartesian.min.js" in html
    figs = _figures(html)
    phq = next(f for f in figs.values() if f["layout"]["yaxis"]["title"]["text"].startswith("PHQ-9"))
    names = [t["name"] for t in phq["data"]]
    assert "Course 1 · Induction" in names and "Course 2 · Booster" in names
    for label in ("Course 1 · Induction", "Course 2 · Booster"):
        for line in ("baseline", "50 % response line", "remission threshold"):
            assert f"{label}: {line}" in names
    traces = {t["name"]: t for t in phq["data"]}
    c1, c2 = traces["Course 1 · Induction"], traces["Course 2 · Booster"]
    assert c1["y"] == [20, 16, 12, 9, 4] and c2["y"] == [14, 6]
    assert (c1["line"]["dash"], c1["marker"]["symbol"]) != (c2["line"]["dash"], c2["marker"]["symbol"])
    assert traces["Course 1 · Induction: 50 % response line"]["y"] == [10, 10]
    assert traces["Course 2 · Booster: 50 % response line"]["y"] == [7, 7]
    assert traces["Course 1 · Induction: remission threshold"]["y"] == [5, 5]
    assert phq["layout"]["xaxis"]["type"] == "date"
    assert c1["x"][0].startswith(str(DAY - timedelta(days=2)))
    assert [a["text"] for a in phq["layout"]["annotations"]] == ["Course 1 · Induction starts", "Booster"]
    assert len(phq["layout"]["shapes"]) == 2
    dose = figs["dose-chart"]
    assert [t["name"] for t in dose["data"]] == ["Peak CADSS-6 (0–24)", "Systolic rise over baseline (mmHg)"]
    assert dose["data"][0]["x"] == [0.5] and dose["data"][0]["y"] == [9] and dose["data"][1]["y"] == [22]

    events = db.exec(select(AuditEvent).where(AuditEvent.patient_id == pid, AuditEvent.action == "view",
                                              AuditEvent.detail.like("outcomes dashboard%"))).all()
    assert len(events) == 1 and events[0].actor_label == "dr.pat"


def test_toggle_by_session_number(client, history):
    login(client, "dr.pat")
    html = client.get(f"/patients/{history['patient'].id}/outcomes?by=session").get_data(as_text=True)
    assert 'aria-current="page">By session number' in html
    phq = next(f for f in _figures(html).values() if f["layout"]["yaxis"]["title"]["text"].startswith("PHQ-9"))
    traces = {t["name"]: t for t in phq["data"]}
    assert traces["Course 1 · Induction"]["x"] == [0, 1, 2, 3, 4]  # 0 = the baseline before session 1
    assert traces["Course 2 · Booster"]["x"] == [1, 2]
    assert phq["layout"]["xaxis"]["title"]["text"].startswith("session number")
    assert "shapes" not in phq["layout"] or not phq["layout"]["shapes"]
    # An unknown axis falls back to dates.
    html = client.get(f"/patients/{history['patient'].id}/outcomes?by=nonsense").get_data(as_text=True)
    assert 'aria-current="page">By date' in html


def test_manager_cannot_open_an_individuals_answers(client, history, db):
    make_staff(db, "max.manager", "manager")
    login(client, "max.manager")
    pid = history["patient"].id
    assert client.get(f"/patients/{pid}/outcomes").status_code == 403
    assert f"/patients/{pid}/outcomes" not in client.get(f"/patients/{pid}").get_data(as_text=True)
    assert not db.exec(select(AuditEvent).where(AuditEvent.detail.like("outcomes dashboard%"))).all()


def test_nurse_may_open_it_and_unknown_patient_is_404(client, history):
    login(client, "nurse.x")
    assert client.get(f"/patients/{history['patient'].id}/outcomes").status_code == 200
    assert client.get("/patients/999999/outcomes").status_code == 404


def test_a_patient_without_courses_or_scores(client, clinic, db):
    patient = ready_patient(db, 2)
    login(client, "dr.pat")
    r = client.get(f"/patients/{patient.id}/outcomes")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "No courses yet." in html and "No symptom scale scores recorded yet." in html
    assert _figures(html) == {}
