"""The staff rota: managers keep patterns and exceptions, the planner reads the shifts they give."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from clinic.audit import SYSTEM, AuditEvent
from clinic.sessions import rota_service
from clinic.sessions.booking import site_shifts
from clinic.sessions.models import Shift, ShiftException, ShiftPattern, Site
from tests.conftest import csrf_token, login, make_staff

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 26, 14, 0, tzinfo=UTC)  # Monday 10:00 in New York, six days before clocks go back
TODAY = date(2026, 10, 26)
MON, WED = 0, 2


@pytest.fixture
def hbr(db) -> Site:
    return db.exec(select(Site).where(Site.code == "HBR")).one()


@pytest.fixture
def rota(app, client, db, hbr, manager, nurse, prescriber):
    """A manager signed in at Harbourview, with a nurse and a prescriber there; the clock at NOW."""
    app.extensions["clinic.clock"].now = NOW
    login(client, "max.manager")
    return {"site": hbr, "nurse": nurse, "prescriber": prescriber, "token": csrf_token(client, "/rota")}


def add_pattern(client, rota, person, *, weekdays=(MON,), role="nurse", start="08:00", end="18:00", **extra):
    data = {"csrf_token": rota["token"], "site_id": rota["site"].id, "staff_user_id": person.id, "role": role,
            "weekdays": [str(d) for d in weekdays], "start_time": start, "end_time": end,
            "valid_from": TODAY.isoformat()} | extra
    return client.post("/rota/patterns", data=data)


def add_exception(client, rota, person, kind, day, **extra):
    data = {"csrf_token": rota["token"], "site_id": rota["site"].id, "staff_user_id": person.id, "kind": kind,
            "starts_on": day.isoformat(), "note": "as agreed"} | extra
    return client.post("/rota/exceptions", data=data)


def shifts_of(db, person) -> list[Shift]:
    return db.exec(select(Shift).where(Shift.staff_user_id == person.id).order_by(Shift.starts_at)).all()



def test_manager_adds_patterns_and_the_planner_sees_the_shifts(client, db, rota):
    nurse, prescriber, site = rota["nurse"], rota["prescriber"], rota["site"]
    assert add_pattern(client, rota, nurse, weekdays=(MON, WED)).status_code == 302
    assert add_pattern(client, rota, prescriber, role="prescriber", start="09:00", end="17:00").status_code == 302

    shifts = shifts_of(db, nurse)
    assert len(shifts) == 24  # Mondays and Wednesdays for 12 weeks from today
    assert {s.starts_at.astimezone(NY).strftime("%a %H:%M") for s in shifts} == {"Mon 08:00", "Wed 08:00"}
    assert {s.starts_at.hour for s in shifts} == {12, 13}  # EDT before 1 November, EST after
    assert shifts[-1].starts_at.astimezone(NY).date() == date(2027, 1, 13)

    monday = date(2026, 11, 2)  # the first Monday after the clocks went back
    seen = site_shifts(db, site.id, datetime.combine(monday, time(0), NY), datetime.combine(monday, time(23), NY))
    assert sorted((s.role, s.start, s.end, s.staff_id) for s in seen) == [
        ("nurse", datetime(2026, 11, 2, 13, tzinfo=UTC), datetime(2026, 11, 2, 23, tzinfo=UTC), nurse.id),
        ("prescriber", datetime(2026, 11, 2, 14, tzinfo=UTC), datetime(2026, 11, 2, 22, tzinfo=UTC), prescriber.id),
    ]

    page = client.get(f"/rota?site_id={site.id}&week=2026-11-04")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Week of Mon 02 Nov 2026" in html
    assert nurse.full_name in html and prescriber.full_name in html and "08:00" in html and "09:00" in html
    assert "N 1</span> <span>P 1" in html  # 09:00–10:00 on Monday


def test_leave_removes_that_days_shift_and_shows_on_the_week(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    r = add_exception(client, rota, nurse, "leave", date(2026, 11, 9), note="annual leave")
    assert r.status_code == 302, r.get_data(as_text=True)
    days = [s.starts_at.astimezone(NY).date() for s in shifts_of(db, nurse)]
    assert date(2026, 11, 9) not in days and date(2026, 11, 2) in days and date(2026, 11, 16) in days
    html = client.get("/rota?week=2026-11-09").get_data(as_text=True)
    assert "Leave" in html
    listed = client.get("/rota/exceptions").get_data(as_text=True)
    assert "annual leave" in listed and "Mon 09 Nov 2026 (whole day)" in listed


def test_leave_for_the_afternoon_cuts_the_shift(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    assert add_exception(client, rota, nurse, "leave", date(2026, 11, 2), start_time="13:00").status_code == 302
    (cut,) = [s for s in shifts_of(db, nurse) if s.starts_at.astimezone(NY).date() == date(2026, 11, 2)]
    assert cut.starts_at.astimezone(NY).strftime("%H:%M") == "08:00"
    assert cut.ends_at.astimezone(NY).strftime("%H:%M") == "13:00"


def test_a_swap_hands_the_shift_to_another_nurse(client, db, rota):
    nurse = rota["nurse"]
    cover = make_staff(db, "carla.cover", "nurse")
    add_pattern(client, rota, nurse)
    r = add_exception(client, rota, nurse, "swap", date(2026, 11, 2), swapped_with_id=cover.id,
                      note="covering, swapped back next week")
    assert r.status_code == 302, r.get_data(as_text=True)
    (moved,) = shifts_of(db, cover)
    assert moved.source == "swap" and moved.role == "nurse"
    assert moved.starts_at == datetime(2026, 11, 2, 13, tzinfo=UTC)
    assert date(2026, 11, 2) not in [s.starts_at.astimezone(NY).date() for s in shifts_of(db, nurse)]


def test_an_extra_shift_is_added_and_can_be_withdrawn(client, db, rota):
    prescriber = rota["prescriber"]
    r = add_exception(client, rota, prescriber, "extra", date(2026, 10, 31), role="prescriber", start_time="09:00",
                      end_time="13:00", note="Saturday clinic")
    assert r.status_code == 302, r.get_data(as_text=True)
    (extra,) = shifts_of(db, prescriber)
    assert (extra.source, extra.starts_at) == ("extra", datetime(2026, 10, 31, 13, tzinfo=UTC))
    row = db.exec(select(ShiftException)).one()
    r = client.post(f"/rota/exceptions/{row.id}/withdraw", data={"csrf_token": rota["token"]})
    assert r.status_code == 302
    assert shifts_of(db, prescriber) == [] and db.exec(select(ShiftException)).first() is None
    assert db.exec(select(AuditEvent).where(AuditEvent.entity == "shift_exception",
                                            AuditEvent.action == "cancel")).one()


def test_ending_a_pattern_takes_its_later_shifts_off(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    pattern = db.exec(select(ShiftPattern)).one()
    r = client.post("/rota/patterns/end", data={"csrf_token": rota["token"], "pattern_ids": [pattern.id],
                                                "valid_until": "2026-11-09"})
    assert r.status_code == 302
    assert [s.starts_at.astimezone(NY).date() for s in shifts_of(db, nurse)] == [
        date(2026, 10, 26), date(2026, 11, 2), date(2026, 11, 9)]
    r = client.post("/rota/patterns/end", data={"csrf_token": rota["token"], "pattern_ids": [pattern.id],
                                                "valid_until": "2026-01-01"})
    assert r.status_code == 422 and "must be on or after" in r.get_data(as_text=True)


def test_nurse_sees_the_rota_but_cannot_change_it(app, db, hbr, nurse):
    app.extensions["clinic.clock"].now = NOW
    client = app.test_client()
    login(client, "nina.nurse")
    page = client.get("/rota")
    assert page.status_code == 200 and "Weekly patterns" not in page.get_data(as_text=True)
    assert client.get("/rota/patterns").status_code == 403
    assert client.get("/rota/exceptions").status_code == 403
    token = csrf_token(client, "/rota")
    r = client.post("/rota/patterns", data={"csrf_token": token, "site_id": hbr.id, "staff_user_id": nurse.id,
                                            "role": "nurse", "weekdays": ["0"], "start_time": "08:00",
                                            "end_time": "18:00", "valid_from": TODAY.isoformat()})
    assert r.status_code == 403
    assert db.exec(select(ShiftPattern)).first() is None


@pytest.mark.parametrize("change, field", [
    ({"start": "18:00", "end": "08:00"}, "end_time"),
    ({"role": "prescriber"}, "role"),  # a nurse cannot be put on prescriber shifts
    ({"weekdays": ()}, "weekdays"),
    ({"valid_until": "2026-10-01"}, "valid_until"),
    ({"start": "soon"}, "start_time"),
])
def test_bad_pattern_is_refused_naming_the_field_and_nothing_is_saved(client, db, rota, change, field):
    r = add_pattern(client, rota, rota["nurse"], **change)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert f'id="e-{field}"' in html
    assert db.exec(select(ShiftPattern)).first() is None and db.exec(select(Shift)).first() is None
    assert db.exec(select(AuditEvent).where(AuditEvent.entity.in_(["shift_pattern", "rota"]))).first() is None


def test_people_from_elsewhere_or_unknown_are_refused(client, db, rota):
    elsewhere = make_staff(db, "nora.north", "nurse", sites=("NOR",))
    r = add_pattern(client, rota, elsewhere)
    assert r.status_code == 422 and "does not work at Harbourview" in r.get_data(as_text=True)

    class Nobody:
        id = 99999

    r = add_pattern(client, rota, Nobody)
    assert r.status_code == 422 and "unknown person" in r.get_data(as_text=True)
    assert db.exec(select(ShiftPattern)).first() is None


def test_overlapping_pattern_for_the_same_person_and_weekday_is_a_conflict(client, db, rota):
    nurse = rota["nurse"]
    assert add_pattern(client, rota, nurse, weekdays=(MON, WED)).status_code == 302
    r = add_pattern(client, rota, nurse, weekdays=(WED,), start="17:00", end="20:00")
    assert r.status_code == 409
    html = r.get_data(as_text=True)
    assert "already works Wednesdays 08:00–18:00" in html and 'id="e-start_time"' in html
    assert 'value="17:00"' in html  # what was typed is kept
    assert len(db.exec(select(ShiftPattern)).all()) == 2
    assert add_pattern(client, rota, nurse, weekdays=(WED,), start="18:00", end="20:00").status_code == 302


def test_bad_exceptions_are_refused_naming_the_field(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    cases = [
        ({"kind": "swap"}, "swapped_with_id"),
        ({"kind": "extra", "start_time": "09:00", "end_time": "12:00"}, "role"),
        ({"kind": "extra", "role": "nurse"}, "start_time"),
        ({"kind": "leave", "note": ""}, "note"),
        ({"kind": "leave", "ends_on": "2026-11-01", "day": date(2026, 11, 2)}, "ends_on"),
        ({"kind": "leave", "day": date(2026, 10, 1)}, "starts_on"),  # already over
        ({"kind": "swap", "day": date(2026, 11, 3), "swapped_with_id": rota["prescriber"].id}, "starts_on"),
        ({"kind": "sabbatical"}, "kind"),
    ]
    for extra, field in cases:
        extra = dict(extra)
        day = extra.pop("day", date(2026, 11, 2))
        r = add_exception(client, rota, nurse, extra.pop("kind"), day, **extra)
        assert r.status_code == 422, (extra, field)
        assert f'id="e-{field}"' in r.get_data(as_text=True), (extra, field)
    r = add_exception(client, rota, nurse, "swap", date(2026, 11, 2), swapped_with_id=rota["prescriber"].id)
    assert r.status_code == 422 and "does not hold the nurse role" in r.get_data(as_text=True)
    assert db.exec(select(ShiftException)).first() is None


def test_an_extra_shift_on_top_of_a_pattern_shift_is_a_conflict(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    r = add_exception(client, rota, nurse, "extra", date(2026, 11, 2), role="nurse", start_time="17:00",
                      end_time="20:00")
    assert r.status_code == 409 and "on shift twice at once" in r.get_data(as_text=True)
    assert db.exec(select(ShiftException)).first() is None
    assert len(shifts_of(db, nurse)) == 12


def test_changes_are_audited(client, db, rota):
    nurse = rota["nurse"]
    add_pattern(client, rota, nurse)
    add_exception(client, rota, nurse, "leave", date(2026, 11, 2), note="dentist")
    events = db.exec(select(AuditEvent).where(AuditEvent.entity.in_(["shift_pattern", "shift_exception", "rota"]))
                     .order_by(AuditEvent.id)).all()
    assert [(e.entity, e.action) for e in events] == [("shift_pattern", "create"), ("rota", "update"),
                                                      ("shift_exception", "create"), ("rota", "update")]
    assert all(e.actor_label == "max.manager" for e in events)
    assert json.loads(events[0].after_json)["start_time"] == "08:00"
    assert events[2].detail == "dentist"
    assert json.loads(events[1].after_json)["written"] == 12


def test_regenerating_is_idempotent_and_keeps_hand_entered_shifts(db, rota, client):
    nurse, site = rota["nurse"], rota["site"]
    add_pattern(client, rota, nurse)
    manual = Shift(staff_user_id=nurse.id, site_id=site.id, role="nurse", source="manual",
                   starts_at=datetime(2026, 11, 3, 13, tzinfo=UTC), ends_at=datetime(2026, 11, 3, 17, tzinfo=UTC))
    db.add(manual)
    db.commit()
    before = sorted((s.starts_at, s.ends_at, s.source) for s in shifts_of(db, nurse))
    result = rota_service.regenerate_shifts(db, SYSTEM, site.id, TODAY, TODAY + timedelta(weeks=12, days=-1), NOW)
    assert (result.removed, result.written) == (12, 12)
    assert sorted((s.starts_at, s.ends_at, s.source) for s in shifts_of(db, nurse)) == before
    assert rota_service.extend_rota(db, SYSTEM, NOW)[0].written == 12


def test_bad_week_is_refused_and_site_choice_defaults_to_the_persons_site(client, db, rota):
    assert client.get("/rota?week=next").status_code == 422
    nor_manager = make_staff(db, "nor.manager", "manager", sites=("NOR",))
    other = client.application.test_client()
    login(other, nor_manager.username)
    assert "Rota · Northgate" in other.get("/rota").get_data(as_text=True)
    assert "Rota · Harbourview" in other.get(f"/rota?site_id={rota['site'].id}").get_data(as_text=True)


def test_one_person_cannot_be_on_two_sites_rotas_at_once(client, db, rota):
    both = make_staff(db, "bo.both", "nurse", sites=("HBR", "NOR"))
    nor = db.exec(select(Site).where(Site.code == "NOR")).one()
    assert add_pattern(client, rota, both).status_code == 302
    r = add_pattern(client, rota | {"site": nor}, both, start="12:00", end="17:00")
    assert r.status_code == 409 and "at Harbourview" in r.get_data(as_text=True)


def test_nobody_is_given_a_shift_while_on_leave(client, db, rota):
    nurse, cover = rota["nurse"], make_staff(db, "carla.cover", "nurse")
    add_pattern(client, rota, nurse)
    add_exception(client, rota, cover, "leave", date(2026, 11, 2), ends_on="2026-11-06", note="holiday")
    r = add_exception(client, rota, nurse, "swap", date(2026, 11, 2), swapped_with_id=cover.id)
    assert r.status_code == 409 and "is on leave then" in r.get_data(as_text=True)
    r = add_exception(client, rota, cover, "extra", date(2026, 11, 3), role="nurse", start_time="09:00",
                      end_time="12:00")
    assert r.status_code == 409 and 'id="e-staff_user_id"' in r.get_data(as_text=True)
    assert len(db.exec(select(ShiftException)).all()) == 1
