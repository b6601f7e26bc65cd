"""The order page, the day board and the week calendar, as people use them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.sessions.models import TreatmentCourse, TreatmentSession
from tests.conftest import csrf_token, login
from tests.integration.conftest import DAY, NY, ready_patient


def order_via_pages(client, clinic, patient) -> str:
    page = f"/patients/{patient.id}/courses/new"
    form = {"csrf_token": csrf_token(client, page), "protocol_id": clinic["protocols"]["iv-induction"].id,
            "site_id": clinic["site"].id, "earliest_start": DAY.isoformat(), "weekdays": ["0", "2", "4"],
            "window_start": "09:00", "window_end": "12:00", "action": "propose"}
    html = client.post(page, data=form).get_data(as_text=True)
    assert "Confirm and book all 6" in html, html
    slots = re.findall(r'name="slot_number" value="(\d+)"><input type="hidden" name="slot_chair" value="(\d+)">'
                       r'<input type="hidden" name="slot_start" value="([^"]+)"', html)
    assert len(slots) == 6
    book = form | {"action": "book", "slot_number": [s[0] for s in slots], "slot_chair": [s[1] for s in slots],
                   "slot_start": [s[2] for s in slots]}
    r = client.post(page, data=book)
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.headers["Location"]


def test_prescriber_orders_on_the_page_and_preferences_are_kept(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 1)
    login(client, "dr.pat")
    location = order_via_pages(client, clinic, patient)
    course = db.exec(select(TreatmentCourse)).one()
    assert location == f"/courses/{course.id}"
    page = client.get(location).get_data(as_text=True)
    assert page.count("Session ") >= 6 and "0 of 6 sessions done" in page
    for s in db.exec(select(TreatmentSession)).all():
        local = s.starts_at.astimezone(NY)
        assert local.weekday() in (0, 2, 4) and time(9) <= local.time() <= time(12)
    assert "IV ketamine induction" in client.get(f"/patients/{patient.id}").get_data(as_text=True)


def test_order_page_shows_what_is_missing_and_books_nothing(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 2, consent=False)
    login(client, "dr.pat")
    page = f"/patients/{patient.id}/courses/new"
    html = client.post(page, data={"csrf_token": csrf_token(client, page), "protocol_id": "",
                                   "site_id": clinic["site"].id, "earliest_start": "soon",
                                   "action": "propose"}).get_data(as_text=True)
    assert 'id="e-protocol_id"' in html and 'id="e-earliest_start"' in html
    html = client.post(page, data={"csrf_token": csrf_token(client, page),
                                   "protocol_id": clinic["protocols"]["iv-induction"].id, "site_id": clinic["site"].id,
                                   "earliest_start": DAY.isoformat(), "action": "propose"}).get_data(as_text=True)
    assert "cannot be booked yet: no current ketamine consent" in html and "Confirm and book" not in html
    assert db.exec(select(TreatmentCourse)).all() == []


def test_nurse_sees_the_course_on_the_day_board_and_checks_in(client, clinic, db, app):
    clock = app.extensions["clinic.clock"]
    clock.now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 3)
    login(client, "dr.pat")
    order_via_pages(client, clinic, patient)
    first = db.exec(select(TreatmentSession).order_by(TreatmentSession.starts_at)).first()
    clock.now = first.starts_at - timedelta(minutes=10)
    login(client, "nurse.0")
    board = client.get(f"/board?site={clinic['site'].id}").get_data(as_text=True)
    assert "Ient3, Pat" in board and "IV ketamine induction 1/6" in board and "Check in" in board
    partial = client.get(f"/board?site={clinic['site'].id}&day={DAY.isoformat()}&partial=1",
                         headers={"X-Background": "1"}).get_data(as_text=True)
    assert partial.lstrip().startswith('<div id="board"') and "<html" not in partial
    token = csrf_token(client, "/board")
    for _ in range(2):  # a double tap checks in once
        client.post(f"/sessions/{first.id}/check-in", data={"csrf_token": token, "row_version": first.row_version})
    row = db.get(TreatmentSession, first.id)
    assert row.status == "checked_in" and row.checked_in_at == clock.now
    checkins = db.exec(select(AuditEvent).where(AuditEvent.entity == "treatment_session",
                                                AuditEvent.action == "update")).all()
    assert len(checkins) == 1
    clock.now += timedelta(minutes=12)
    board = client.get(f"/board?site={clinic['site'].id}").get_data(as_text=True)
    assert "Checked in" in board and "12 min" in board
    assert db.exec(select(AuditEvent).where(AuditEvent.entity == "day_board")).first() is not None


def test_week_calendar_lists_sessions_by_day_and_filters_by_chair(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 4)
    login(client, "dr.pat")
    order_via_pages(client, clinic, patient)
    sessions = db.exec(select(TreatmentSession).order_by(TreatmentSession.starts_at)).all()
    page = client.get(f"/calendar?site={clinic['site'].id}&day={DAY.isoformat()}").get_data(as_text=True)
    in_week = [s for s in sessions if s.starts_at.astimezone(NY).date() < DAY + timedelta(days=7)]
    assert page.count("Ient4, Pat") == len(in_week) > 0
    other_chair = next(c for c in clinic["chairs"] if c.id != sessions[0].chair_id)
    page = client.get(f"/calendar?site={clinic['site'].id}&day={DAY.isoformat()}&chair={other_chair.id}")
    assert "Ient4, Pat" not in page.get_data(as_text=True) or sessions[0].chair_id == other_chair.id


def test_admin_has_no_day_board(client, clinic, db):
    from tests.conftest import make_staff

    make_staff(db, "only.admin", "admin")
    login(client, "only.admin")
    assert client.get("/board").status_code == 403


def test_a_freed_slot_on_the_board_leads_to_who_could_take_it(client, clinic, db, app):
    from clinic.patients.models import WaitlistEntry

    clock = app.extensions["clinic.clock"]
    clock.now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient, waiting = ready_patient(db, 5), ready_patient(db, 6)
    db.add(WaitlistEntry(patient_id=waiting.id, site_id=clinic["site"].id, referred_at=clock.now - timedelta(days=9)))
    db.commit()
    login(client, "dr.pat")
    order_via_pages(client, clinic, patient)
    first = db.exec(select(TreatmentSession).order_by(TreatmentSession.starts_at)).first()
    client.post(f"/sessions/{first.id}/cancel", data={"scope": "one", "reason": "patient unwell",
                                                       "csrf_token": csrf_token(client, "/")})
    board = client.get(f"/board?site={clinic['site'].id}&day={DAY.isoformat()}").get_data(as_text=True)
    link = re.search(r'href="(/waitlist/candidates\?[^"]+)">Who could take this slot\?', board)
    assert link, board
    page = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Ient6, Pat" in page
