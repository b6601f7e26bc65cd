"""The chairside tablet for real: one IV ketamine session from check-in to discharge in Chromium.

At 1024×768 a nurse checks the patient in from the day board, works the "Before dosing" step by tapping,
starts the infusion, enters a high blood pressure twice (a medium, then a sustained high alert),
acknowledges the high alert with an action, ends the infusion, records the recovery checks and
discharges. Every step is screenshotted into test-artifacts/ (monitor-*.png) and checked for sideways
scrolling, controls cut off at the sides, targets under 44 px, controls on top of one another and stacked
tables without column names; axe-core checks the session page. The same steps are checked at 768×1024.
An entry made with the Wi-Fi down, or after the idle lock, is kept on the tablet and saved once later; a
double tap saves once; plotly draws the chart from local files.

The shared live server locks a session after 3 idle seconds, so each step is quick and a page that lands
on /login signs in again. Sessions other than the walked one are put into their state through the
service layer (what the tablet's forms call), straight into the live server's database. App bugs found
would be marked xfail(strict=True) with the reason; the layout ones only for the problems in
KNOWN_LAYOUT_BUGS (any other problem fails).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from clinic.audit import Actor
from clinic.auth.models import Credential
from clinic.db import session_scope
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import Consent, EligibilityEvaluation, Patient
from clinic.sessions import board
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.vitals import service
from clinic.vitals.models import Alert, ChecklistEntry, DoseAdministration, DoseEvent, VitalsReading
from tests.conftest import make_staff
from tests.e2e.conftest import IDLE_TIMEOUT_SECONDS, LANDSCAPE, PORTRAIT, StaffLogin
from tests.e2e.test_browser import layout_problems, path_of, serious_violations, shot, size_id

pytestmark = pytest.mark.e2e

NURSE_M = StaffLogin("moira.nurse", "Moira Tanaka")  # this module's nurse, with current credentials
PRESCRIBER_M = StaffLogin("dr.monitor", "Dr Felix Amari")
QUEUE = "chairside.queue.v1"  # static/js/monitor.js keeps unsent entries here
QUEUE_EMPTY = f"() => (localStorage.getItem('{QUEUE}') || '[]') === '[]'"
MRNS = (f"CS-MON{i:03d}" for i in itertools.count(1))


# --- the data put into the live server's database -------------------------------------------------


@dataclass(frozen=True)
class Ward:
    engine: object
    settings: object
    zone: ZoneInfo
    nurse_id: int
    prescriber_id: int
    site_id: int
    protocol_id: int

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    @property
    def nurse(self) -> Actor:
        return Actor(self.nurse_id, NURSE_M.username, roles=frozenset({"nurse"}))


@pytest.fixture(scope="module")
def ward(live_server) -> Ward:
    """A nurse with a current licence and ACLS, and a prescriber, at site HBR."""
    app = live_server.app
    engine, settings = app.extensions["clinic.engine"], app.extensions["clinic.settings"]
    with session_scope(engine) as db:
        nurse = make_staff(db, NURSE_M.username, "nurse", full_name=NURSE_M.full_name)
        dr = make_staff(db, PRESCRIBER_M.username, "prescriber", full_name=PRESCRIBER_M.full_name)
        expires = date.today() + timedelta(days=300)
        db.add(Credential(staff_user_id=nurse.id, kind="nursing_licence", number="RN-448120", expires_on=expires))
        db.add(Credential(staff_user_id=nurse.id, kind="acls", number="ACLS-7781", expires_on=expires))
        db.commit()
        site = db.exec(select(Site).where(Site.code == "HBR")).one()
        protocol = db.exec(select(Protocol).where(Protocol.code == "iv-induction")
                           .order_by(Protocol.version.desc())).first()
        return Ward(engine, settings, ZoneInfo(site.time_zone), nurse.id, dr.id, site.id, protocol.id)


def book(ward: Ward, family: str, given: str = "Amal") -> int:
    """A patient (eligible, current ketamine consent) booked for IV induction 1/6 today, starting now."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(ward.zone).date(), datetime.min.time(), ward.zone)
    starts = max(now - timedelta(minutes=2), midnight.astimezone(UTC))
    ends = starts + timedelta(minutes=100)
    with ward.db() as db:
        taken = [s.chair_id for s in db.exec(select(TreatmentSession).where(
            TreatmentSession.site_id == ward.site_id, TreatmentSession.starts_at < ends,
            TreatmentSession.ends_at > starts, TreatmentSession.status.not_in(("cancelled", "no_show"))))]
        chairs = db.exec(select(Chair).where(Chair.site_id == ward.site_id, Chair.active).order_by(Chair.label)).all()
        # A free chair (so the day board shows no two blocks on top of each other), else the least used one:
        # only the first test looks at the board.
        chair = min(chairs, key=lambda c: (taken.count(c.id), c.label))
        patient = Patient(mrn=next(MRNS), given_name=given, family_name=family, date_of_birth=date(1975, 9, 30),
                          sex="female", home_site_id=ward.site_id)
        db.add(patient)
        db.commit()
        db.add(EligibilityEvaluation(patient_id=patient.id, prescriber_id=ward.prescriber_id, evaluated_at=now,
                                     diagnosis="Treatment-resistant depression", decision="eligible",
                                     reasons="Two failed antidepressant trials; no contraindications",
                                     valid_until=(now + timedelta(days=180)).date()))
        db.add(Consent(patient_id=patient.id, kind="ketamine", text_version="KET-2026.1",
                       signed_at=now - timedelta(days=1), expires_at=now + timedelta(days=365)))
        course = TreatmentCourse(patient_id=patient.id, protocol_id=ward.protocol_id, prescriber_id=ward.prescriber_id,
                                 site_id=ward.site_id, earliest_start=starts.date(), planned_sessions=6,
                                 status="active")
        db.add(course)
        db.commit()
        session = TreatmentSession(course_id=course.id, patient_id=patient.id, site_id=ward.site_id,
                                   chair_id=chair.id, number_in_course=1, starts_at=starts, ends_at=ends,
                                   status="booked")
        db.add(session)
        db.commit()
        # The course's symptom scales, answered by the patient in the waiting room before the session.
        for scale, items in (("PHQ-9", [2, 2, 1, 2, 1, 1, 2, 1, 0]), ("GAD-7", [2, 1, 2, 1, 1, 2, 1])):
            response = ScaleResponse(patient_id=patient.id, course_id=course.id, session_id=None, scale=scale,
                                     measured_at=now, recorded_at=now, source="self_report", total=sum(items),
                                     client_key=key())
            db.add(response)
            db.flush()
            db.add_all([ScaleItemAnswer(response_id=response.id, item_number=i + 1, scale=scale, value=v)
                        for i, v in enumerate(items)])
        db.commit()
        return session.id


def key() -> str:
    return uuid.uuid4().hex


# What the tablet's forms do, done through the service layer (for the sessions not walked by hand).


def check_in(ward: Ward, sid: int) -> None:
    with ward.db() as db:
        board.check_in(db, ward.nurse, sid, expected_version=None, now=datetime.now(UTC))


def prepare(ward: Ward, sid: int) -> None:
    """Everything the dosing gate asks for: the checklist, weight 70 kg, baseline vitals and scores."""
    now, s = datetime.now(UTC), ward.settings
    with ward.db() as db:
        for item in ("consent_current", "escort_confirmed", "fasting_confirmed"):
            service.record_checklist(db, ward.nurse, sid, service.ChecklistIn(client_key=key(), item=item,
                                                                             answer="yes"), now=now)
        service.record_checklist(db, ward.nurse, sid, service.ChecklistIn(
            client_key=key(), item="interacting_medications", answer="none"), now=now)
        service.record_weight(db, ward.nurse, sid, service.WeightIn(client_key=key(), weight_kg=70), now=now)
        service.record_vitals(db, ward.nurse, s, sid, service.VitalsIn(
            client_key=key(), systolic=128, diastolic=82, heart_rate=72, spo2=98, respiratory_rate=14,
            temperature_c=36.8), now=now)
        service.record_score(db, ward.nurse, s, sid, service.ScoreIn(client_key=key(), scale="CADSS-6",
                                                                     items=[0] * 6), now=now)
        service.record_score(db, ward.nurse, s, sid, service.ScoreIn(client_key=key(), scale="MOAA/S", items=[5]),
                             now=now)


def start_dosing(ward: Ward, sid: int) -> None:
    with ward.db() as db:
        service.start_dosing(db, ward.nurse, ward.settings, sid, service.DoseIn(
            client_key=key(), amount=0.5, concentration_mg_per_ml=1, lot_number="KET-24113"), now=datetime.now(UTC))


def vitals(ward: Ward, sid: int, systolic: int, diastolic: int, *, minutes_ago: float = 0) -> None:
    now = datetime.now(UTC)
    with ward.db() as db:
        service.record_vitals(db, ward.nurse, ward.settings, sid, service.VitalsIn(
            client_key=key(), systolic=systolic, diastolic=diastolic, heart_rate=80, spo2=97, respiratory_rate=14,
            measured_at=now - timedelta(minutes=minutes_ago)), now=now)


def end_dosing(ward: Ward, sid: int) -> None:
    with ward.db() as db:
        service.dose_event(db, ward.nurse, sid, service.DoseEventIn(client_key=key(), kind="stop",
                                                                    reason="infusion complete"), now=datetime.now(UTC))


def move_back(ward: Ward, sid: int, minutes: int) -> None:
    """As if everything recorded for the session so far had happened `minutes` earlier."""
    d = timedelta(minutes=minutes)
    with ward.db() as db:
        s = db.get(TreatmentSession, sid)
        for name in ("checked_in_at", "dosing_started_at", "dosing_ended_at"):
            if getattr(s, name):
                setattr(s, name, getattr(s, name) - d)
        db.add(s)
        for dose in db.exec(select(DoseAdministration).where(DoseAdministration.session_id == sid)):
            dose.started_at -= d
            dose.stopped_at = dose.stopped_at - d if dose.stopped_at else None
            db.add(dose)
            for ev in db.exec(select(DoseEvent).where(DoseEvent.dose_id == dose.id)):
                ev.at -= d
                db.add(ev)
        for model, column in ((VitalsReading, "measured_at"), (ScaleResponse, "measured_at"),
                              (ChecklistEntry, "recorded_at")):
            for row in db.exec(select(model).where(model.session_id == sid)):
                setattr(row, column, getattr(row, column) - d)
                db.add(row)
        db.commit()


def readings(ward: Ward, sid: int) -> list[tuple[int | None, int | None, int | None]]:
    with ward.db() as db:
        rows = db.exec(select(VitalsReading).where(VitalsReading.session_id == sid).order_by(VitalsReading.id))
        return [(r.systolic, r.diastolic, r.heart_rate) for r in rows]


# --- the tablet ------------------------------------------------------------------------------------


def sign_in_if_locked(page: Page, who: StaffLogin = NURSE_M) -> None:
    """If the idle lock (3 s here) sent the tablet to /login, sign in again; the app goes back."""
    page.wait_for_load_state()
    if path_of(page) != "/login":
        return
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state()


def open_page(page: Page, path: str, who: StaffLogin = NURSE_M) -> None:
    page.goto(path)
    sign_in_if_locked(page, who)
    assert path_of(page) == path.split("?")[0], f"expected {path}, got {page.url}"


def monitor(page: Page, sid: int, step: str | None = None) -> None:
    open_page(page, f"/sessions/{sid}/monitor" + (f"?step={step}" if step else ""))


def save(page: Page, button) -> None:
    """Tap a Save button of an entry form (sent by fetch; the page reloads when it is saved)."""
    with page.expect_navigation():
        button.click()
    sign_in_if_locked(page)  # a locked session sends the tablet to /login; the entry is kept and sent after
    page.wait_for_function(QUEUE_EMPTY)
    page.wait_for_load_state()


def step_link(page: Page, name: str) -> None:
    with page.expect_navigation():
        page.locator("nav.steps").get_by_role("link", name=name, exact=True).click()
    sign_in_if_locked(page)


def fill_vitals(page: Page, systolic: int, diastolic: int, heart_rate: int, spo2: int, rr: int) -> None:
    form = page.locator("form#vitals")
    for name, value in (("systolic", systolic), ("diastolic", diastolic), ("heart_rate", heart_rate),
                        ("spo2", spo2), ("respiratory_rate", rr)):
        form.locator(f"#vitals-{name}").fill(str(value))


def tap_cadss_zeros(page: Page) -> None:
    form = page.locator("form#cadss")
    rows = form.locator(".item-row")
    expect(rows).to_have_count(6)
    for row in rows.all():  # the radio itself is hidden: the nurse taps the segment's visible label
        row.locator("label.seg-opt", has=page.locator("input[value='0']")).locator("span").click()
    expect(form.locator("input[type=radio][value='0']:checked")).to_have_count(6)


def tap_moaas(page: Page, value: int, text: str) -> None:
    form = page.locator("form#moaas")
    form.locator("label.choice", has_text=text).click()
    expect(form.locator(f"input[type=radio][value='{value}']")).to_be_checked()


# Layout problems of the session page that are known app bugs (none at present). Anything found fails.
KNOWN_LAYOUT_BUGS: dict[str, re.Pattern] = {}


class LayoutProblems(AssertionError):
    """Only the known layout bugs of the app (KNOWN_LAYOUT_BUGS) were found."""


class Layout:
    """Screenshots and layout problems of each step, gathered so one run reports them all."""

    def __init__(self, artifacts: Path):
        self.artifacts, self.problems = artifacts, []

    def check(self, page: Page, name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")  # else the sticky session bar lands mid-page in a full-page shot
        shot(page, self.artifacts, f"monitor-{name}")
        if page.locator("#session-chart .main-svg").count():
            page.locator("#session-chart").hover()  # as after a tap on the chart: plotly's hover-only parts show
        where = f"[{name} {size_id(page.viewport_size)}]"
        self.problems += [f"{where} {p}" for p in layout_problems(page)]
        # A table narrower than 800 px is shown one block per row, each value named by its td's data-label.
        unnamed = page.evaluate("""() => [...document.querySelectorAll('table.table:not(.table-fits) td')]
          .filter((td) => getComputedStyle(td).display === 'block' && td.textContent.trim() && !td.dataset.label)
          .map((td) => td.closest('table').className)""")
        for table in sorted(set(unnamed)):
            self.problems.append(f"{where} table.{table.replace(' ', '.')} stacked at this width: "
                                 f"{unnamed.count(table)} values shown without their column's name")

    def assert_clean(self) -> None:
        unknown = [p for p in self.problems if not any(r.search(p) for r in KNOWN_LAYOUT_BUGS.values())]
        assert not unknown, "layout problems:\n" + "\n".join(unknown)
        if self.problems:
            raise LayoutProblems("known layout bugs:\n" + "\n".join(self.problems))


# --- 1. check-in to discharge at 1024×768 ---------------------------------------------------------


def test_an_iv_session_from_check_in_to_discharge_on_a_landscape_tablet(open_tablet, ward, artifacts):
    sid = book(ward, "Farouk-Delacroix")
    page = open_tablet(LANDSCAPE)
    layout = Layout(artifacts)

    # Check-in from the day board, then open the session.
    open_page(page, "/board")
    row = page.locator(".board-row", has_text="Farouk-Delacroix, Amal")
    expect(row.locator(".status")).to_have_text("Booked")
    layout.check(page, "01-board")
    with page.expect_navigation():
        row.get_by_role("button", name="Check in").click()
    sign_in_if_locked(page)
    expect(row.locator(".status")).to_have_text("Checked in")
    with page.expect_navigation():
        row.get_by_role("link", name="Open").click()
    sign_in_if_locked(page)
    expect(page).to_have_url(re.compile(rf"/sessions/{sid}/monitor$"))
    bar = page.locator("header.session-bar")
    expect(bar.locator(".patient")).to_have_text("Farouk-Delacroix, Amal")
    expect(bar).to_contain_text("IV ketamine induction 1/6")
    expect(page.locator("nav.steps [aria-current=step]")).to_have_text("Before dosing")
    gate = page.locator("#dose .notice-warning")
    expect(gate).to_contain_text("Dosing cannot start yet")
    expect(page.get_by_role("button", name="Start dosing")).to_be_disabled()
    layout.check(page, "02-before-dosing")

    # Before dosing, by tapping.
    checklist = page.locator("ul.checklist")
    for label in ("Consent current", "Adult escort confirmed", "Fasting confirmed"):
        save(page, checklist.locator("li", has_text=label).get_by_role("button", name="Confirm"))
        expect(checklist.locator("li.done", has_text=label)).to_be_visible()
    save(page, checklist.get_by_role("button", name="Save answer"))  # none of the five taken
    expect(checklist.locator("li.done", has_text="Interacting medications asked")).to_contain_text("none")
    page.locator("#weight-weight_kg").fill("70")
    save(page, page.get_by_role("button", name="Save weight"))
    expect(page.get_by_text("Weight today: 70 kg")).to_be_visible()
    fill_vitals(page, 128, 82, 72, 98, 14)
    page.locator("#vitals-temperature_c").fill("36.8")
    save(page, page.locator("form#vitals").get_by_role("button", name="Save vitals"))
    tap_cadss_zeros(page)
    save(page, page.get_by_role("button", name="Save CADSS-6"))
    tap_moaas(page, 5, "Responds readily to name")
    save(page, page.get_by_role("button", name="Save MOAA/S"))
    expect(gate).to_have_count(0)
    expect(page.get_by_role("button", name="Start dosing")).to_be_enabled()
    expect(page.locator("#dose .hint").first).to_contain_text("At 70.0 kg: 35.0 mg at the default dose, over 40 min")
    layout.check(page, "03-gate-clear")

    # Start dosing: 0.5 mg/kg at 1 mg/mL.
    page.locator("#dose-amount").fill("0.5")
    page.locator("#dose-conc").fill("1")
    page.locator("#dose-lot").fill("KET-24113")
    save(page, page.get_by_role("button", name="Start dosing"))
    expect(bar.locator(".status")).to_have_text("Dosing")
    expect(page.locator("nav.steps [aria-current=step]")).to_have_text("Dosing")
    facts = page.locator("section[aria-label=Dosing] dl.facts")
    expect(facts).to_contain_text(re.compile(r"Dose\s*35(\.0)? mg \(0\.5 mg/kg × 70(\.0)? kg\)"))
    expect(facts).to_contain_text(re.compile(r"Pump rate\s*52\.5 mL/h \(1(\.0)? mg/mL\)"))
    expect(facts).to_contain_text("KET-24113")
    expect(bar.locator(".elapsed")).to_have_text("0 min since dosing began")
    layout.check(page, "04-dosing")

    # Ten minutes into the infusion (the session's record moved back), 185/112 measured 5 minutes ago
    # ("Measured earlier?"): a medium alert.
    move_back(ward, sid, 10)
    monitor(page, sid, "dosing")
    expect(bar.locator(".elapsed")).to_have_text("10 min since dosing began")
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).astimezone(ward.zone).strftime("%Y-%m-%dT%H:%M")
    fill_vitals(page, 185, 112, 88, 97, 14)
    page.locator("form#vitals summary", has_text="Measured earlier?").click()
    page.locator("#vitals-measured_at").fill(earlier)
    save(page, page.locator("form#vitals").get_by_role("button", name="Save vitals"))
    medium = page.locator("#alerts .alert-medium")
    expect(medium).to_have_count(1)
    expect(medium.locator(".alert-tag")).to_have_text("▲ MEDIUM")
    expect(medium).to_contain_text("Blood pressure 185/112")
    expect(page.locator("#alerts .alert-high")).to_have_count(0)

    # Still high now: the sustained rule raises a high alert.
    fill_vitals(page, 188, 114, 90, 97, 14)
    save(page, page.locator("form#vitals").get_by_role("button", name="Save vitals"))
    high = page.locator("#alerts .alert-high")
    expect(high).to_have_count(1)
    expect(high.locator(".alert-tag")).to_have_text("▲▲ HIGH")
    expect(high).to_contain_text(re.compile(r"Blood pressure still high: 188/114 mmHg now and 185/112 mmHg [56] min"))
    expect(high).to_have_attribute("role", "alert")
    layout.check(page, "05-high-alert")
    with ward.db() as db:
        alert_id = db.exec(select(Alert.id).where(Alert.session_id == sid, Alert.kind == "bp_high_sustained")).one()

    # Acknowledge it with an action: one choice and one tap.
    high.get_by_label("Action taken").select_option(label="Pause or slow the infusion")
    high.get_by_label("Note (optional)").fill("rate halved")
    save(page, high.get_by_role("button", name="Acknowledge"))
    expect(page.locator("#alerts .alert-high")).to_have_count(0)
    expect(page.locator("#alerts .alert-medium")).to_have_count(1)  # still open until acknowledged itself
    with ward.db() as db:
        alert = db.get(Alert, alert_id)
        assert (alert.action, alert.action_note, alert.acknowledged_by_id) == ("pause_or_slow", "rate halved",
                                                                             ward.nurse_id)
    medium = page.locator("#alerts .alert-medium")
    medium.get_by_label("Action taken").select_option(label="Continue and recheck in 5 minutes")
    save(page, medium.get_by_role("button", name="Acknowledge"))
    expect(page.locator("#alerts .alert")).to_have_count(0)

    # End the infusion.
    page.locator("#dose-event-reason").fill("infusion complete")
    save(page, page.locator("form#dose-event").get_by_role("button", name="End infusion"))
    expect(bar.locator(".status")).to_have_text("Recovery")
    with ward.db() as db:
        assert db.get(TreatmentSession, sid).status == "recovery"

    # The 30 minutes of observation have not passed in real time: the session happened 35 minutes earlier.
    move_back(ward, sid, 35)
    monitor(page, sid, "monitoring")
    expect(page.locator("#session-chart .main-svg").first).to_be_visible()
    fill_vitals(page, 126, 80, 74, 98, 14)
    page.get_by_label("These are the vitals before discharge").check()
    save(page, page.locator("form#vitals").get_by_role("button", name="Save vitals"))
    tap_moaas(page, 5, "Responds readily to name")
    save(page, page.get_by_role("button", name="Save MOAA/S"))
    tap_cadss_zeros(page)
    save(page, page.get_by_role("button", name="Save CADSS-6"))
    expect(page.locator("#readings tbody tr").first).to_contain_text("discharge")
    layout.check(page, "06-monitoring")

    # Discharge: the criteria with their evidence, the three confirmations, one tap.
    step_link(page, "Discharge")
    criteria = page.locator("ul.criteria li")
    expect(criteria).to_have_count(7)
    expect(page.locator("ul.criteria li.met")).to_have_count(4)
    expect(criteria.first).to_contain_text(re.compile(r"3\d of 30 minutes since the infusion ended"))
    layout.check(page, "07-discharge")
    form = page.locator("form#discharge")
    for label in ("Nausea controlled", "Adult escort present", "Discharge instructions given"):
        form.get_by_label(label).check()
    save(page, form.get_by_role("button", name="Discharge"))
    expect(bar.locator(".status")).to_have_text("Discharged")
    expect(page.locator(".notice-success", has_text="Discharged at")).to_be_visible()
    expect(page.locator("ul.criteria li.unmet")).to_have_count(0)
    layout.check(page, "08-discharged")
    with ward.db() as db:
        done = db.get(TreatmentSession, sid)
        assert done.status == "discharged" and done.discharge_override_reason is None

    layout.assert_clean()


# --- 2. the same page in portrait, and axe-core ---------------------------------------------------


def stages(ward: Ward, sid: int) -> Iterator[str]:
    """Bring a booked session through its states, yielding the step to look at in each."""
    check_in(ward, sid)
    yield "before"
    prepare(ward, sid)
    start_dosing(ward, sid)
    move_back(ward, sid, 10)
    vitals(ward, sid, 185, 112, minutes_ago=5)
    vitals(ward, sid, 188, 114)  # a sustained high blood pressure: an open high alert on the page
    yield "monitoring"
    end_dosing(ward, sid)
    yield "discharge"


def test_the_session_steps_fit_a_portrait_tablet(open_tablet, ward, artifacts):
    sid = book(ward, "Nakashima-Oduya", "Grace")
    page = open_tablet(PORTRAIT)
    layout = Layout(artifacts)
    for step in stages(ward, sid):
        monitor(page, sid, step)
        expect(page.locator("nav.steps [aria-current=step]")).to_have_text(
            {"before": "Before dosing", "monitoring": "Monitoring", "discharge": "Discharge"}[step])
        if step == "monitoring":
            expect(page.locator("#alerts .alert-high")).to_have_count(1)
            expect(page.locator("#session-chart .main-svg").first).to_be_visible()
        layout.check(page, f"portrait-{step}")
        for summary in page.locator("main details > summary").all():  # the folded parts, unfolded
            if summary.is_visible():
                summary.click()
        layout.check(page, f"portrait-{step}-unfolded")
    layout.assert_clean()


@pytest.mark.parametrize("step", [
    "before",
    "monitoring",
    "discharge",
])
def test_axe_finds_no_serious_or_critical_problems_on_the_session_page(open_tablet, ward, step):
    sid = book(ward, f"Lindqvist-Abara-{step}", "Tove")
    for reached in stages(ward, sid):
        if reached == step:
            break
    page = open_tablet(LANDSCAPE, bypass_csp=True)  # axe is injected as an inline script
    monitor(page, sid, step)
    if step == "monitoring":
        expect(page.locator("#alerts .alert-high")).to_have_count(1)
        expect(page.locator("#session-chart .main-svg").first).to_be_visible()
    violations = serious_violations(page)
    assert not violations, f"axe on the {step} step:\n" + "\n".join(violations)


# --- 3. flaky Wi-Fi and double taps ---------------------------------------------------------------


def test_an_entry_made_offline_is_kept_on_the_tablet_and_saved_once_when_back_online(open_tablet, ward):
    sid = book(ward, "Okonkwo-Ferreira", "Ines")
    check_in(ward, sid)
    prepare(ward, sid)
    start_dosing(ward, sid)
    page = open_tablet(LANDSCAPE)
    monitor(page, sid, "monitoring")
    before = readings(ward, sid)
    notice = page.locator("#offline-queue")
    expect(notice).to_be_hidden()

    page.context.set_offline(True)
    fill_vitals(page, 143, 87, 77, 96, 15)
    page.locator("form#vitals").get_by_role("button", name="Save vitals").click()
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("1 entry is kept on this tablet and will be sent when the connection is back")
    assert readings(ward, sid) == before, "nothing may be saved while the tablet is offline"
    assert len(page.evaluate(f"JSON.parse(localStorage.getItem('{QUEUE}'))")) == 1

    # Back online: Chromium fires `online`, on which monitor.js sends the kept entry (same client key) and
    # reloads the page. (It also retries every 15 s; no need to dispatch the event by hand.)
    with page.expect_navigation():
        page.context.set_offline(False)
    sign_in_if_locked(page)
    page.wait_for_function(QUEUE_EMPTY)
    expect(notice).to_be_hidden()
    assert readings(ward, sid) == [*before, (143, 87, 77)]
    expect(page.locator("#readings tbody tr").first).to_contain_text("143/87")

    # A double tap on Save vitals saves once.
    fill_vitals(page, 151, 91, 82, 97, 14)
    with page.expect_navigation():
        page.locator("form#vitals").get_by_role("button", name="Save vitals").dblclick()
    sign_in_if_locked(page)
    page.wait_for_function(QUEUE_EMPTY)
    assert readings(ward, sid) == [*before, (143, 87, 77), (151, 91, 82)]
    expect(page.locator("#readings tbody tr", has_text="151/91")).to_have_count(1)


def test_an_entry_sent_after_the_idle_lock_is_kept_and_saved_once_after_signing_in(open_tablet, ward):
    sid = book(ward, "Brandt-Oyelowo", "Mara")
    check_in(ward, sid)
    prepare(ward, sid)
    start_dosing(ward, sid)
    page = open_tablet(LANDSCAPE)
    monitor(page, sid, "monitoring")
    before = readings(ward, sid)
    fill_vitals(page, 133, 83, 73, 97, 14)
    page.wait_for_timeout(IDLE_TIMEOUT_SECONDS * 1000 + 400)  # the nurse was called away: the session locks
    with page.expect_navigation(url=re.compile(r"/login\?next=")):
        page.locator("form#vitals").get_by_role("button", name="Save vitals").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Session locked")
    assert readings(ward, sid) == before
    assert len(page.evaluate(f"JSON.parse(localStorage.getItem('{QUEUE}'))")) == 1  # kept on the tablet
    sign_in_if_locked(page)  # back to the session page, which sends the kept entry and reloads
    assert path_of(page) == f"/sessions/{sid}/monitor"
    page.wait_for_function(QUEUE_EMPTY)
    expect(page.locator("#readings tbody tr").first).to_contain_text("133/83")
    assert readings(ward, sid) == [*before, (133, 83, 73)]


class MeasuredLate(AssertionError):
    """A reading was saved with a measured time later than when it was taken."""


def test_a_reading_kept_offline_is_saved_with_the_time_it_was_taken(open_tablet, ward):
    sid = book(ward, "Haverkamp-Mensah", "Lena")
    check_in(ward, sid)
    prepare(ward, sid)
    start_dosing(ward, sid)
    page = open_tablet(LANDSCAPE)
    monitor(page, sid, "monitoring")
    page.context.set_offline(True)
    fill_vitals(page, 137, 85, 79, 97, 14)
    tapped = datetime.now(UTC)
    page.locator("form#vitals").get_by_role("button", name="Save vitals").click()
    expect(page.locator("#offline-queue")).to_be_visible()
    for _ in range(3):  # the Wi-Fi comes back 3 s later; meanwhile the nurse's session is kept from locking
        page.wait_for_timeout(1_000)
        assert page.request.get("/").ok  # not through the (offline) browser, but with its cookies
    with page.expect_navigation():
        page.context.set_offline(False)
    sign_in_if_locked(page)
    page.wait_for_function(QUEUE_EMPTY)
    with ward.db() as db:
        measured = db.exec(select(VitalsReading.measured_at).where(VitalsReading.session_id == sid,
                                                                   VitalsReading.systolic == 137)).one()
    late = (measured - tapped).total_seconds()
    if abs(late) > 1.5:
        raise MeasuredLate(f"taken at {tapped:%H:%M:%S}, saved as measured at {measured:%H:%M:%S} ({late:.1f} s later)")


# --- 4. the chart -----------------------------------------------------------------------------------


def chart_session(ward: Ward, family: str) -> int:
    sid = book(ward, family, "Ruth")
    check_in(ward, sid)
    prepare(ward, sid)
    start_dosing(ward, sid)
    move_back(ward, sid, 20)
    for minutes_ago, bp in ((15, (132, 84)), (10, (138, 86)), (5, (141, 88))):
        vitals(ward, sid, *bp, minutes_ago=minutes_ago)
    return sid


def test_plotly_draws_the_session_chart_from_local_files(open_tablet, ward):
    sid = chart_session(ward, "Castellano-Ward")
    page = open_tablet(LANDSCAPE)  # fails the test on a script error or a Content-Security-Policy refusal
    monitor(page, sid, "monitoring")
    chart = page.locator("#session-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()
    # Systolic, diastolic, heart rate, SpO2 (4 readings each), CADSS-6 and MOAA/S (the baselines).
    expect(chart.locator(".scatterlayer .trace")).to_have_count(6)
    drawn = page.evaluate("""() => {
      const gd = document.getElementById('session-chart');
      return {names: gd.data.map((t) => t.name), points: gd.data.map((t) => t.x.length),
              xTitle: gd._fullLayout.xaxis.title.text, shapes: gd._fullLayout.shapes.length};
    }""")
    assert drawn["names"] == ["Systolic BP (mmHg)", "Diastolic BP (mmHg)", "Heart rate (bpm)", "SpO₂ (%)",
                              "CADSS-6 (0–24)", "MOAA/S (0–5)"]
    assert drawn["points"] == [4, 4, 4, 4, 1, 1]
    assert drawn["xTitle"] == "minutes since dosing began"
    assert drawn["shapes"] == 2  # the systolic and diastolic limits
    expect(chart.locator(".legend .traces")).to_have_count(6)
    script = page.request.get("/static/vendor/plotly-cartesian.min.js")
    assert script.ok and "max-age" in script.headers.get("cache-control", ""), script.headers  # large: cached


def test_the_chart_offers_no_button_to_upload_it_to_plotly_cloud(open_tablet, ward):
    sid = chart_session(ward, "Achterberg-Sato")
    page = open_tablet(LANDSCAPE)
    monitor(page, sid, "monitoring")
    expect(page.locator("#session-chart .main-svg").first).to_be_visible()
    expect(page.locator("#session-chart .legend .traces").first).to_be_attached()  # the plot is fully drawn
    assert page.locator("#session-chart .modebar-btn").count() == 0  # no toolbar: too small to tap
    assert page.locator("#session-chart .modebar-btn[data-title^='Share chart']").count() == 0

