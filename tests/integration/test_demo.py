"""The demo clinic: loaded once per database backend, then checked like a clinic would check its data."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from clinic.audit import AuditEvent
from clinic.auth.models import Credential, StaffRole, StaffUser
from clinic.auth.passwords import verify_password
from clinic.config import WEEKDAYS
from clinic.demo import DEMO_LOGINS, DEMO_PASSWORD, DemoError, count_rows, load_demo
from clinic.outcomes.models import ScaleResponse
from clinic.patients.models import Consent, Patient, WaitlistEntry
from clinic.sessions.models import Chair, Protocol, Shift, Site, TreatmentCourse, TreatmentSession
from clinic.sessions.protocols import seed_protocols
from clinic.vitals.models import Alert, DoseAdministration, VitalsReading
from clinic.vocab import INACTIVE_SESSION_STATUSES
from tests.conftest import wipe

# A Wednesday, 12:40 in New York (EDT, three days after the March change); six months back crosses
# the November change, so the history spans both offsets.
NOW = datetime(2026, 3, 11, 16, 40, tzinfo=UTC)
ZONE = ZoneInfo("America/New_York")
TODAY = NOW.astimezone(ZONE).date()
ACTIVE = sa.not_(TreatmentSession.status.in_(INACTIVE_SESSION_STATUSES))


@pytest.fixture(scope="module")
def demo(engine, settings):
    try:
        yield load_demo(engine, settings, seed=7, now=NOW, reset=True)
    finally:
        wipe(engine)  # other tests share this engine


@pytest.fixture
def read(engine, demo):
    with Session(engine, expire_on_commit=False) as db:
        yield db
        db.rollback()


def _snapshot(db: Session) -> dict:
    patients = db.exec(select(Patient.mrn, Patient.given_name, Patient.family_name, Patient.date_of_birth)
                       .order_by(Patient.mrn)).all()
    sessions = db.exec(select(TreatmentSession.starts_at, TreatmentSession.ends_at, TreatmentSession.status,
                              TreatmentSession.number_in_course)
                       .order_by(TreatmentSession.starts_at, TreatmentSession.id)).all()
    return {"patients": [tuple(p) for p in patients], "sessions": [tuple(s) for s in sessions]}


def test_demo_loads_quickly_with_counts_in_the_documented_ranges(demo, read):
    assert demo.seconds < 30
    assert demo.staff == 12 and count_rows(read, StaffUser) == 12
    assert 55 <= demo.patients <= 65 and count_rows(read, Patient) == demo.patients
    assert count_rows(read, Site) == 2 and count_rows(read, Chair) == 12
    assert {p.code for p in read.exec(select(Protocol))} >= {"iv-induction", "iv-booster", "im-ketamine",
                                                             "esketamine-nasal"}
    assert 250 <= demo.sessions <= 600 and count_rows(read, TreatmentSession) == demo.sessions
    assert demo.courses == count_rows(read, TreatmentCourse) >= 60
    assert demo.vitals == count_rows(read, VitalsReading) > 1500
    assert demo.scale_responses == count_rows(read, ScaleResponse) > 1500
    assert demo.doses == count_rows(read, DoseAdministration)
    waiting = read.exec(select(WaitlistEntry).where(WaitlistEntry.status == "waiting")).all()
    assert 6 <= len(waiting) <= 10
    assert all(timedelta(days=0) < NOW - w.referred_at <= timedelta(days=61) for w in waiting)
    loads = read.exec(select(AuditEvent).where(AuditEvent.entity == "demo")).all()
    assert len(loads) == 1 and loads[0].action == "create" and loads[0].actor_label == "system"
    assert "12 staff" in str(demo) and "patients" in str(demo)


def test_every_demo_login_verifies_with_the_shared_password(demo, read):
    users = {u.username: u for u in read.exec(select(StaffUser))}
    roles = defaultdict(set)
    for r in read.exec(select(StaffRole)):
        roles[r.staff_user_id].add(r.role)
    for username, login_roles, note in DEMO_LOGINS:
        user = users[username]
        assert verify_password(user.password_hash, DEMO_PASSWORD), username
        assert roles[user.id] == set(login_roles) and note
    assert {"admin", "manager", "prescriber", "nurse"} <= set().union(*roles.values())
    assert any(len(r) > 1 for r in roles.values())  # someone holds two roles
    inactive = [u for u in users.values() if not u.active]
    assert len(inactive) == 1 and "DEACTIVATED" in dict((u, n) for u, _r, n in DEMO_LOGINS)[inactive[0].username]


def test_one_nurse_has_an_expired_acls_and_is_never_the_dosing_nurse_after_it(demo, read):
    expired = read.exec(select(Credential, StaffUser).join(StaffUser, StaffUser.id == Credential.staff_user_id)
                        .where(Credential.kind == "acls", Credential.expires_on < TODAY)).all()
    assert [u.username for _c, u in expired] == ["nurse.duarte"]
    cred, nurse = expired[0]
    dosed_after = read.exec(select(TreatmentSession).where(
        TreatmentSession.nurse_id == nurse.id, TreatmentSession.dosing_started_at.is_not(None),
        TreatmentSession.starts_at >= datetime.combine(cred.expires_on, datetime.min.time(), ZONE))).all()
    assert dosed_after == []


def test_no_two_active_sessions_overlap_on_a_chair_or_for_a_patient(demo, read):
    a, b = sa.orm.aliased(TreatmentSession), sa.orm.aliased(TreatmentSession)
    for column in ("chair_id", "patient_id"):
        q = (select(sa.func.count()).select_from(a).join(b, sa.and_(
            getattr(a, column) == getattr(b, column), a.id < b.id,
            a.starts_at < b.ends_at, b.starts_at < a.ends_at))
            .where(a.status.not_in(INACTIVE_SESSION_STATUSES), b.status.not_in(INACTIVE_SESSION_STATUSES)))
        assert read.exec(q).one() == 0, column


def test_every_session_is_within_its_sites_opening_hours_in_the_site_zone(demo, read):
    sites = {s.id: s for s in read.exec(select(Site))}
    for s in read.exec(select(TreatmentSession)):
        site = sites[s.site_id]
        zone = ZoneInfo(site.time_zone)
        start, end = s.starts_at.astimezone(zone), s.ends_at.astimezone(zone)
        assert start.date() == end.date()
        assert start.date().isoformat() not in json.loads(site.closed_days_json)
        spans = json.loads(site.hours_json).get(WEEKDAYS[start.weekday()], [])
        hhmm = (f"{start:%H:%M}", f"{end:%H:%M}")
        assert any(a <= hhmm[0] and hhmm[1] <= b for a, b in spans), (site.code, start, end)


def test_shifts_keep_their_local_start_time_across_daylight_saving(demo, read):
    kim = read.exec(select(StaffUser).where(StaffUser.username == "nurse.kim")).one()
    shifts = read.exec(select(Shift).where(Shift.staff_user_id == kim.id)).all()
    winter = [s for s in shifts if s.starts_at.astimezone(ZONE).utcoffset() == timedelta(hours=-5)]
    summer = [s for s in shifts if s.starts_at.astimezone(ZONE).utcoffset() == timedelta(hours=-4)]
    assert winter and summer
    assert {f"{s.starts_at.astimezone(ZONE):%H:%M}" for s in shifts} == {"07:45"}
    assert {s.starts_at.astimezone(UTC).hour for s in winter} != {s.starts_at.astimezone(UTC).hour for s in summer}
    assert max(s.starts_at for s in shifts) > NOW + timedelta(days=21)
    assert min(s.starts_at for s in shifts) < NOW - timedelta(days=170)


def test_vitals_are_plausible_and_blood_pressure_rises_during_dosing(demo, read):
    readings = read.exec(select(VitalsReading)).all()
    for r in readings:
        assert 85 <= r.systolic <= 200 and 45 <= r.diastolic < r.systolic
        assert 50 <= r.heart_rate <= 120 and 95 <= r.spo2 <= 100 and 12 <= r.respiratory_rate <= 18
        assert (r.temperature_c is not None) == (r.phase == "baseline")
    by_phase = defaultdict(list)
    by_session = defaultdict(lambda: defaultdict(list))
    for r in readings:
        by_phase[r.phase].append(r.systolic)
        by_session[r.session_id][r.phase].append(r.systolic)
    baseline, dosing = statistics.mean(by_phase["baseline"]), statistics.mean(by_phase["dosing"])
    assert dosing > baseline + 5
    rises = [max(p["dosing"] + p["recovery"]) - p["baseline"][0]
             for p in by_session.values() if p["baseline"] and (p["dosing"] or p["recovery"])]
    assert 8 <= statistics.mean(rises) <= 30  # about +16 mmHg in published series
    severe = sum(1 for p in by_session.values() if max(p["dosing"] + p["recovery"], default=0) > 180)
    assert 0 < severe <= 0.05 * len(by_session)
    assert all(max(p["discharge"]) < 140 for p in by_session.values() if p["discharge"])
    # Each severe reading raised an alert that someone acknowledged.
    alerts = read.exec(select(Alert)).all()
    assert alerts and all(a.acknowledged_at and a.action for a in alerts)
    assert len({a.dedupe_key for a in alerts}) == len(alerts)
    assert sum(1 for a in alerts if a.kind == "bp_high") == severe


def test_scale_totals_are_the_sum_of_their_items(demo, read):
    rows = read.exec(sa.text(
        "SELECT r.id, r.scale, r.total, SUM(a.value), COUNT(a.item_number), "
        "SUM(CASE WHEN a.scale = r.scale THEN 0 ELSE 1 END) "
        "FROM scale_response r JOIN scale_item_answer a ON a.response_id = r.id GROUP BY r.id, r.scale, r.total"
    )).all()
    assert len(rows) == demo.scale_responses
    items = {"PHQ-9": 9, "GAD-7": 7, "CADSS-6": 6, "MOAA/S": 1}
    for _id, scale, total, summed, n, mismatched in rows:
        assert total == summed and n == items[scale] and mismatched == 0


def test_in_session_scores_follow_dissociation_and_sedation(demo, read):
    responses = read.exec(select(ScaleResponse).where(ScaleResponse.scale.in_(("CADSS-6", "MOAA/S")))).all()
    by_session = defaultdict(lambda: defaultdict(list))
    for r in sorted(responses, key=lambda r: r.measured_at):
        by_session[r.session_id][r.scale].append(r.total)
    full = [s for s in by_session.values() if len(s["CADSS-6"]) == 3 and len(s["MOAA/S"]) == 3]
    assert len(full) > 200
    for s in full:
        base, peak, discharge = s["CADSS-6"]
        assert base <= 2 and 4 <= peak <= 18 and discharge <= 2
        assert s["MOAA/S"][0] == 5 and 3 <= s["MOAA/S"][1] <= 5 and s["MOAA/S"][2] == 5


def test_phq9_shows_responders_remitters_and_non_responders(demo, read):
    courses = read.exec(select(TreatmentCourse).where(TreatmentCourse.kind == "induction",
                                                      TreatmentCourse.status == "completed")).all()
    assert len(courses) >= 20
    outcomes = []
    for c in courses:
        scores = read.exec(select(ScaleResponse.total).where(ScaleResponse.course_id == c.id,
                                                             ScaleResponse.scale == "PHQ-9")
                           .order_by(ScaleResponse.measured_at)).all()
        assert len(scores) >= 6 and scores[0] >= 10  # moderate to severe at baseline
        outcomes.append((scores[-1] <= scores[0] / 2, scores[-1] < 5))
    responders = sum(r for r, _ in outcomes) / len(outcomes)
    remitters = sum(m for _, m in outcomes) / len(outcomes)
    assert 0.35 <= responders <= 0.75 and 0.15 <= remitters <= 0.45
    item9 = read.exec(sa.text("SELECT COUNT(DISTINCT r.patient_id) FROM scale_item_answer a "
                              "JOIN scale_response r ON r.id = a.response_id "
                              "WHERE a.scale = 'PHQ-9' AND a.item_number = 9 AND a.value > 0")).one()[0]
    assert 1 <= item9 <= 3


def test_completed_inductions_have_one_session_a_day_and_doses_follow_weight(demo, read):
    sessions = read.exec(select(TreatmentSession).join(TreatmentCourse)
                         .where(TreatmentCourse.kind == "induction", TreatmentCourse.status == "completed",
                                ACTIVE)).all()
    by_course = defaultdict(list)
    for s in sessions:
        by_course[s.course_id].append(s)
    for course_sessions in by_course.values():
        days = sorted(s.starts_at.astimezone(ZONE).date() for s in course_sessions)
        assert len(days) == len(set(days)) and (days[-1] - days[0]).days <= 60
        assert all(s.status == "discharged" and s.discharged_at > s.dosing_ended_at for s in course_sessions)
    doses = read.exec(select(DoseAdministration).where(DoseAdministration.route == "iv")).all()
    assert doses and all(abs(d.dose_mg - d.weight_kg * d.mg_per_kg) < 0.1 for d in doses)
    assert all(0.1 <= d.mg_per_kg <= 0.75 and d.lot_number.startswith("KET-24") for d in doses)


def test_a_few_bookings_were_missed_and_rebooked(demo, read):
    past = read.exec(select(TreatmentSession).where(TreatmentSession.starts_at < NOW - timedelta(days=1))).all()
    missed = [s for s in past if s.status in INACTIVE_SESSION_STATUSES]
    assert 0.02 <= len(missed) / len(past) <= 0.10
    assert all(s.cancelled_at and s.cancel_reason for s in missed)


def test_today_has_sessions_at_both_sites_in_several_states(demo, read):
    start = datetime.combine(TODAY, datetime.min.time(), ZONE)
    today = read.exec(select(TreatmentSession).where(TreatmentSession.starts_at >= start,
                                                     TreatmentSession.starts_at < start + timedelta(days=1))).all()
    assert demo.sessions_today == len(today) >= 8
    assert len({s.site_id for s in today}) == 2
    states = {s.status for s in today}
    assert "discharged" in states and "booked" in states
    assert states & {"checked_in", "dosing", "recovery"}
    for s in today:
        assert (s.checked_in_at is not None) == (s.status != "booked")
        assert s.checked_in_at is None or s.checked_in_at <= NOW
    ahead = read.exec(select(TreatmentSession).where(TreatmentSession.starts_at > NOW + timedelta(days=1))).all()
    assert len(ahead) >= 30 and all(s.status == "booked" for s in ahead)
    assert max(s.starts_at for s in ahead) <= NOW + timedelta(days=22)
    # Nothing recorded in the future.
    assert read.exec(select(sa.func.max(VitalsReading.measured_at))).one() <= NOW


def test_one_patient_has_a_lapsed_consent_and_a_booster_booked(demo, read):
    latest: dict[int, Consent] = {}
    for c in read.exec(select(Consent).where(Consent.kind == "ketamine").order_by(Consent.signed_at)):
        latest[c.patient_id] = c
    lapsed = [pid for pid, c in latest.items() if c.expires_at <= NOW]
    assert len(lapsed) == 1
    booked = read.exec(select(TreatmentSession).where(TreatmentSession.patient_id == lapsed[0],
                                                      TreatmentSession.status == "booked")).all()
    assert booked
    for c in latest.values():
        assert c.text_version.startswith("KET-") and c.expires_at - c.signed_at == timedelta(days=365)


def test_seeding_protocols_again_changes_nothing(demo, engine):
    with Session(engine) as db:
        before = {p.code: p.id for p in db.exec(select(Protocol))}
        again = seed_protocols(db)
        db.flush()
        assert {code: p.id for code, p in again.items()} == before
        assert count_rows(db, Protocol) == len(before)
        db.rollback()


def test_loading_again_without_reset_is_refused(demo, engine, settings):
    with pytest.raises(DemoError, match="already"):
        load_demo(engine, settings, seed=7, now=NOW)
    with Session(engine) as db:
        assert count_rows(db, Patient) == demo.patients


def test_same_seed_and_now_give_the_same_clinic(demo, engine, settings, backend):
    if backend != "sqlite":
        pytest.skip("determinism is checked once, on SQLite")
    with Session(engine) as db:
        first = _snapshot(db)
    load_demo(engine, settings, seed=7, now=NOW, reset=True)
    with Session(engine) as db:
        assert _snapshot(db) == first
        assert db.exec(select(sa.func.count()).select_from(AuditEvent)
                       .where(AuditEvent.entity == "demo")).one() == 1
    other = load_demo(engine, settings, seed=8, now=NOW, reset=True)
    with Session(engine) as db:
        assert _snapshot(db)["patients"] != first["patients"]
        assert other.patients == demo.patients
    load_demo(engine, settings, seed=7, now=NOW, reset=True)  # leave the module's demo as it was


def test_history_is_relative_to_now(demo, engine, settings, backend):
    if backend != "sqlite":
        pytest.skip("checked once, on SQLite")
    later = NOW + timedelta(days=100)
    try:
        summary = load_demo(engine, settings, seed=7, now=later, reset=True)
        with Session(engine) as db:
            first = db.exec(select(sa.func.min(TreatmentSession.starts_at))).one()
            last = db.exec(select(sa.func.max(TreatmentSession.starts_at))).one()
        assert later - timedelta(days=183) <= first and last <= later + timedelta(days=22)
        assert summary.sessions > 250
    finally:
        load_demo(engine, settings, seed=7, now=NOW, reset=True)


def test_a_naive_now_is_refused(engine, settings):
    with pytest.raises(ValueError, match="aware"):
        load_demo(engine, settings, now=datetime(2026, 3, 11, 12, 0))


def test_dates_of_birth_are_adults_born_1950_to_2004(demo, read):
    dobs = read.exec(select(Patient.date_of_birth)).all()
    assert all(date(1950, 1, 1) <= d <= date(2004, 12, 31) for d in dobs)
    mrns = read.exec(select(Patient.mrn)).all()
    assert all(m.startswith("CS-") and len(m) == 9 for m in mrns)
    emails = read.exec(select(Patient.email)).all()
    assert all(e.endswith("@example.org") for e in emails)
