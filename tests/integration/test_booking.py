"""Booking: the whole series or nothing, the gates before ordering, and the 20-way race for one chair."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta

from sqlmodel import select

from clinic.sessions.models import TreatmentCourse, TreatmentSession
from tests.conftest import csrf_token, login
from tests.integration.conftest import DAY, NY, ready_patient  # noqa: F401


def order(clinic, patient, **extra) -> dict:
    return {"patient_id": patient.id, "protocol_id": clinic["protocols"]["iv-induction"].id,
            "site_id": clinic["site"].id, "earliest_start": DAY.isoformat()} | extra


def headers(client) -> dict:
    return {"X-CSRFToken": csrf_token(client, "/")}


def test_prescriber_gets_a_whole_proposal_and_books_it(client, clinic, db):
    patient = ready_patient(db, 1)
    login(client, "dr.pat")
    r = client.post("/api/v1/courses/proposal", json=order(clinic, patient), headers=headers(client))
    assert r.status_code == 200, r.json
    proposal = r.json
    assert proposal["complete"] and proposal["problems"] == [] and len(proposal["slots"]) == 6
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    r = client.post("/api/v1/courses", json={"order": order(clinic, patient), "slots": slots}, headers=headers(client))
    assert r.status_code == 201, r.json
    sessions = db.exec(select(TreatmentSession).where(TreatmentSession.course_id == r.json["id"])).all()
    assert sorted(s.number_in_course for s in sessions) == [1, 2, 3, 4, 5, 6]


def test_a_course_needs_eligibility_and_consent(client, clinic, db):
    patient = ready_patient(db, 2, eligible=False, consent=False)
    login(client, "dr.pat")
    proposal = client.post("/api/v1/courses/proposal", json=order(clinic, patient), headers=headers(client)).json
    assert "no eligibility evaluation on file" in proposal["problems"]
    assert "no current ketamine consent" in proposal["problems"]
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    r = client.post("/api/v1/courses", json={"order": order(clinic, patient), "slots": slots}, headers=headers(client))
    assert r.status_code == 422 and "cannot be ordered yet" in r.json["message"]
    assert db.exec(select(TreatmentCourse)).all() == []


def test_a_changed_world_refuses_the_whole_series(client, clinic, db):
    first, second = ready_patient(db, 3), ready_patient(db, 4)
    login(client, "dr.pat")
    proposal = client.post("/api/v1/courses/proposal", json=order(clinic, first), headers=headers(client)).json
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    # Meanwhile someone books the chair and time of session 4 for another patient.
    course = TreatmentCourse(patient_id=second.id, protocol_id=clinic["protocols"]["iv-booster"].id,
                             prescriber_id=clinic["prescriber"].id, site_id=clinic["site"].id, earliest_start=DAY)
    db.add(course)
    db.commit()
    taken = {"number": 1, "chair_id": slots[3]["chair_id"], "starts_at": slots[3]["starts_at"]}
    assert client.post(f"/api/v1/courses/{course.id}/sessions", json=taken, headers=headers(client)).status_code == 201
    r = client.post("/api/v1/courses", json={"order": order(clinic, first), "slots": slots}, headers=headers(client))
    assert r.status_code == 409 and "Session 4" in r.json["message"] and "Nothing was booked" in r.json["message"]
    assert db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == first.id)).all() == []


def test_twenty_requests_for_one_chair_and_time_book_exactly_one(app, clinic, db):
    """20 HTTP requests at once, against the app served on a real socket by a threaded server."""
    import json
    import threading
    import urllib.error
    import urllib.request

    from werkzeug.serving import make_server

    from clinic.audit import Actor
    from clinic.auth.schemas import TokenCreate
    from clinic.auth.service import issue_token

    patients = [ready_patient(db, 100 + i) for i in range(20)]
    courses = []
    for p in patients:
        c = TreatmentCourse(patient_id=p.id, protocol_id=clinic["protocols"]["iv-induction"].id,
                            prescriber_id=clinic["prescriber"].id, site_id=clinic["site"].id, earliest_start=DAY)
        db.add(c)
        courses.append(c)
    db.commit()
    prescriber = clinic["prescriber"]
    _, secret = issue_token(db, Actor(prescriber.id, prescriber.username), prescriber.id,
                            TokenCreate(name="race"), now=datetime.now(UTC))
    start = datetime.combine(DAY + timedelta(days=1), time(10), NY).astimezone(UTC).isoformat()
    chair_id = clinic["chairs"][0].id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    barrier = threading.Barrier(20)

    def attempt(i: int):
        body = json.dumps({"number": 1, "chair_id": chair_id, "starts_at": start}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_port}/api/v1/courses/{courses[i].id}/sessions", data=body,
            method="POST", headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        barrier.wait()  # all 20 leave together
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(attempt, range(20)))
    finally:
        server.shutdown()
        thread.join(timeout=5)
    codes = sorted(code for code, _ in results)
    assert codes == [201] + [409] * 19, results
    for code, body in results:
        if code == 409:
            assert "chair" in body["message"].lower() and "booked" in body["message"].lower()
    booked = db.exec(select(TreatmentSession).where(TreatmentSession.chair_id == chair_id)).all()
    assert len(booked) == 1


def test_booking_a_first_course_takes_the_patient_off_the_waitlist(client, clinic, db):
    from clinic.patients.models import WaitlistEntry

    patient = ready_patient(db, 50)
    db.add(WaitlistEntry(patient_id=patient.id, site_id=clinic["site"].id, referred_at=datetime.now(UTC)))
    db.commit()
    login(client, "dr.pat")
    proposal = client.post("/api/v1/courses/proposal", json=order(clinic, patient), headers=headers(client)).json
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    assert client.post("/api/v1/courses", json={"order": order(clinic, patient), "slots": slots},
                       headers=headers(client)).status_code == 201
    entry = db.exec(select(WaitlistEntry)).one()
    assert entry.status == "scheduled" and entry.closed_at is not None


def test_a_booster_keeps_the_minimum_gap_after_the_last_session(client, clinic, db):
    patient = ready_patient(db, 51)
    login(client, "dr.pat")
    proposal = client.post("/api/v1/courses/proposal", json=order(clinic, patient), headers=headers(client)).json
    slots = [{"number": s["number"], "chair_id": s["chair_id"], "starts_at": s["start"]} for s in proposal["slots"]]
    assert client.post("/api/v1/courses", json={"order": order(clinic, patient), "slots": slots},
                       headers=headers(client)).status_code == 201
    last = datetime.fromisoformat(proposal["slots"][-1]["start"]).astimezone(NY).date()
    booster = clinic["protocols"]["iv-booster"]
    r = client.post("/api/v1/courses/proposal", json=order(clinic, patient, protocol_id=booster.id),
                    headers=headers(client))
    first = datetime.fromisoformat(r.json["slots"][0]["start"]).astimezone(NY).date()
    assert (first - last).days >= booster.min_days_between
