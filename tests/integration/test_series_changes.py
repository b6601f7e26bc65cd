"""Changing a series: cancel, no-show, reschedule — re-planned with the spacing kept, audited, and
refused with the reason when a rule cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.sessions.models import TreatmentSession
from tests.conftest import csrf_token, login
from tests.integration.conftest import DAY, NY, ready_patient


def book_induction(client, clinic, patient) -> int:
    order = {"patient_id": patient.id, "protocol_id": clinic["protocols"]["iv-induction"].id,
             "site_id": clinic["site"].id, "earliest_start": DAY.isoformat()}
    h = {"X-CSRFToken": csrf_token(client, "/")}
    proposal = client.post("/api/v1/courses/proposal", json=order, headers=h).json
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    r = client.post("/api/v1/courses", json={"order": order, "slots": slots}, headers=h)
    assert r.status_code == 201, r.json
    return r.json["id"]


def active(db, course_id):
    db.expire_all()  # the app changed these rows behind the test's session
    rows = db.exec(select(TreatmentSession).where(TreatmentSession.course_id == course_id)
                   .order_by(TreatmentSession.starts_at)).all()
    return [r for r in rows if r.status not in ("cancelled", "no_show")], rows


def days(rows):
    return [r.starts_at.astimezone(NY).date() for r in rows]


def test_cancelling_one_session_re_plans_the_rest_with_the_spacing_kept(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 1)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    sessions, _ = active(db, course_id)
    third = sessions[2]
    r = client.post(f"/sessions/{third.id}/cancel", data={"scope": "one", "reason": "patient unwell",
                                                           "csrf_token": csrf_token(client, "/")},
                    follow_redirects=True)
    assert "Cancelled." in r.get_data(as_text=True)
    now_active, all_rows = active(db, course_id)
    assert sorted(s.number_in_course for s in now_active) == [1, 2, 3, 4, 5, 6]
    assert len(all_rows) == 7  # the cancelled one stays on record
    ds = days(now_active)
    assert all(1 <= (b - a).days <= 7 for a, b in zip(ds, ds[1:], strict=False))
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "cancel")).first().detail is None
    assert any("re-planned" in (e.detail or "") for e in db.exec(select(AuditEvent)))


def test_cancel_without_a_reason_is_refused_and_changes_nothing(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 2)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    first = active(db, course_id)[0][0]
    r = client.post(f"/sessions/{first.id}/cancel", data={"scope": "one", "reason": "",
                                                           "csrf_token": csrf_token(client, "/")},
                    follow_redirects=True)
    assert "give a reason" in r.get_data(as_text=True)
    assert db.get(TreatmentSession, first.id).status == "booked"


def test_cancelling_the_rest_ends_the_course(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 3)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    sessions, _ = active(db, course_id)
    client.post(f"/sessions/{sessions[3].id}/cancel", data={"scope": "rest", "reason": "moving away",
                                                             "csrf_token": csrf_token(client, "/")})
    still, _ = active(db, course_id)
    assert [s.number_in_course for s in still] == [1, 2, 3]


def test_a_missed_session_shifts_the_remaining_ones(client, clinic, db, app):
    clock = app.extensions["clinic.clock"]
    clock.now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 4)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    first = active(db, course_id)[0][0]
    clock.now = first.starts_at + timedelta(hours=2)
    login(client, "dr.pat")
    r = client.post(f"/sessions/{first.id}/no-show", data={"csrf_token": csrf_token(client, "/")},
                    follow_redirects=True)
    assert "Marked as not attended" in r.get_data(as_text=True)
    assert db.get(TreatmentSession, first.id).status == "no_show"
    now_active, _ = active(db, course_id)
    assert sorted(s.number_in_course for s in now_active) == [1, 2, 3, 4, 5, 6]
    assert all(s.starts_at > clock.now for s in now_active), [(s.number_in_course, s.starts_at, clock.now)
                                                              for s in now_active]


def test_moving_one_session_that_would_break_spacing_is_refused(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 5)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    sessions, _ = active(db, course_id)
    second = sessions[1]
    same_day_as_first = sessions[0].starts_at.astimezone(NY).date()
    r = client.post(f"/sessions/{second.id}/reschedule", data={
        "day": same_day_as_first.isoformat(), "time": "16:00", "scope": "one", "reason": "patient asked",
        "csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    assert "spacing" in r.get_data(as_text=True) and "Nothing was changed" in r.get_data(as_text=True)
    assert db.get(TreatmentSession, second.id).starts_at == second.starts_at


def test_moving_this_and_following_re_plans_after_the_new_time(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 6)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    sessions, _ = active(db, course_id)
    second = sessions[1]
    new_day = second.starts_at.astimezone(NY).date() + timedelta(days=3)
    while new_day.weekday() > 4:
        new_day += timedelta(days=1)
    r = client.post(f"/sessions/{second.id}/reschedule", data={
        "day": new_day.isoformat(), "time": "11:00", "scope": "following", "reason": "holiday",
        "csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    assert "Moved." in r.get_data(as_text=True), r.get_data(as_text=True)
    now_active, _ = active(db, course_id)
    moved = db.get(TreatmentSession, second.id)
    assert moved.starts_at.astimezone(NY).date() == new_day and moved.starts_at.astimezone(NY).time() == time(11)
    later = [s for s in now_active if s.number_in_course > 2]
    assert all(s.starts_at > moved.starts_at for s in later)
    ds = days(sorted(now_active, key=lambda s: s.starts_at))
    assert all(1 <= (b - a).days <= 7 for a, b in zip(ds, ds[1:], strict=False))


def test_nurse_cannot_cancel(client, clinic, db, app):
    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 7)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    first = active(db, course_id)[0][0]
    login(client, "nurse.0")
    r = client.post(f"/sessions/{first.id}/cancel", data={"scope": "one", "reason": "x y z",
                                                           "csrf_token": csrf_token(client, "/")})
    assert r.status_code == 403


def test_a_patient_already_reminded_is_told_of_the_move(client, clinic, db, app):
    from clinic.outbox import OutboxMessage

    app.extensions["clinic.clock"].now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 8)
    patient.email = "pat8@example.org"
    db.add(patient)
    db.commit()
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    sessions, _ = active(db, course_id)
    last = sessions[-1]
    db.add(OutboxMessage(recipient="pat8@example.org", subject="Reminder", body="...", patient_id=patient.id,
                         session_id=last.id, due_at=app.extensions["clinic.clock"].now, status="sent",
                         dedupe_key=f"reminder:{last.id}:day_before"))
    db.commit()
    new_day = last.starts_at.astimezone(NY).date() + timedelta(days=1)
    while new_day.weekday() > 4:
        new_day += timedelta(days=1)
    r = client.post(f"/sessions/{last.id}/reschedule", data={
        "day": new_day.isoformat(), "time": "14:00", "scope": "one", "reason": "patient asked",
        "csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    assert "Moved." in r.get_data(as_text=True)
    notice = db.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"reminder:{last.id}:changed:%"))).one()
    assert notice.subject.startswith("Changed:") and "14:00" in notice.body and notice.status == "pending"


def test_the_no_show_sweep_re_plans_the_rest_of_the_course(client, clinic, db, app, engine, settings):
    from clinic import jobs

    clock = app.extensions["clinic.clock"]
    clock.now = datetime.combine(DAY, time(6), NY).astimezone(UTC)
    patient = ready_patient(db, 9)
    login(client, "dr.pat")
    course_id = book_induction(client, clinic, patient)
    first = active(db, course_id)[0][0]
    marked = jobs.sweep_no_shows(engine, settings, now=first.starts_at + timedelta(hours=1))
    assert marked == [first.id]
    now_active, _ = active(db, course_id)
    assert sorted(s.number_in_course for s in now_active) == [1, 2, 3, 4, 5, 6]
    assert all(s.starts_at > first.starts_at + timedelta(hours=1) for s in now_active)
