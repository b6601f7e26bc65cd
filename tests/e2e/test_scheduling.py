"""A prescriber orders a course, sees the proposal and confirms it; a nurse sees it on the day board."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

from clinic.auth.models import StaffUser
from clinic.db import session_scope
from clinic.patients.models import Consent, EligibilityEvaluation, Patient
from clinic.sessions.models import Shift, Site, TreatmentSession
from tests.conftest import PASSWORD, make_staff
from tests.e2e.conftest import NURSE, StaffLogin

pytestmark = pytest.mark.e2e
PRESCRIBER = StaffLogin("dr.e2e", "Dr Erin Tolland")
NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def ready_patient(live_server) -> int:
    """A prescriber and nurses on shift for four weeks, and a patient with evaluation and consent."""
    engine = live_server.app.extensions["clinic.engine"]
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        dr = make_staff(db, PRESCRIBER.username, "prescriber", full_name=PRESCRIBER.full_name)
        nurse_id = db.exec(select(StaffUser.id).where(StaffUser.username == NURSE.username)).one()
        site = db.exec(select(Site).where(Site.code == "HBR")).one()
        today = now.astimezone(NY).date()
        for i in range(35):
            d = today + timedelta(days=i)
            s = datetime.combine(d, time(7), NY).astimezone(UTC)
            e = datetime.combine(d, time(20), NY).astimezone(UTC)
            db.add(Shift(staff_user_id=dr.id, site_id=site.id, role="prescriber", starts_at=s, ends_at=e))
            db.add(Shift(staff_user_id=nurse_id, site_id=site.id, role="nurse", starts_at=s, ends_at=e))
        patient = Patient(mrn="CS-E2E001", given_name="Noor", family_name="Haddad-Quinn",
                          date_of_birth=date(1979, 6, 2), sex="female", home_site_id=site.id)
        db.add(patient)
        db.commit()
        db.add(EligibilityEvaluation(patient_id=patient.id, prescriber_id=dr.id, evaluated_at=now,
                                     diagnosis="Treatment-resistant depression", decision="eligible",
                                     reasons="Two failed antidepressant trials; no contraindications",
                                     valid_until=today + timedelta(days=180)))
        db.add(Consent(patient_id=patient.id, kind="ketamine", text_version="KET-2026.1",
                       signed_at=now - timedelta(days=1), expires_at=now + timedelta(days=365)))
        db.commit()
        return patient.id


def sign_in(page: Page, who: StaffLogin, path: str) -> None:
    page.goto(path)
    if urlsplit(page.url).path == "/login":
        page.get_by_label("Username").fill(who.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()


def test_prescriber_orders_a_course_and_the_nurse_sees_it_on_the_day_board(open_tablet, live_server,
                                                                           ready_patient, artifacts):
    page = open_tablet()
    sign_in(page, PRESCRIBER, f"/patients/{ready_patient}")
    page.get_by_role("link", name="Order a course").click()
    value = page.locator("#f-protocol_id option", has_text=re.compile(r"^IV ketamine induction")).get_attribute("value")
    page.get_by_label("Protocol").select_option(value)
    page.get_by_role("button", name="Propose sessions").click()
    proposal = page.locator("#proposal")
    expect(proposal).to_be_visible()
    expect(proposal.locator(".proposal-list li")).to_have_count(6)
    page.screenshot(path=str(artifacts / "order-proposal-1024x768.png"), full_page=True)
    page.get_by_role("button", name="Confirm and book all 6").click()
    expect(page.locator(".notice-success")).to_contain_text("Course booked: 6 sessions")
    expect(page.locator(".timeline-item")).to_have_count(6)

    engine = live_server.app.extensions["clinic.engine"]
    with session_scope(engine) as db:
        first = db.exec(select(TreatmentSession).where(TreatmentSession.patient_id == ready_patient)
                        .order_by(TreatmentSession.starts_at)).first()
        day = first.starts_at.astimezone(NY).date()
    nurse_page = open_tablet()
    sign_in(nurse_page, NURSE, f"/board?day={day.isoformat()}")
    row = nurse_page.locator(".board-row", has_text="Haddad-Quinn, Noor")
    expect(row).to_be_visible()
    expect(row).to_contain_text("IV ketamine induction 1/6")
    expect(row.locator(".status")).to_have_text("Booked")
    expect(nurse_page.locator(".lane .block", has_text="Haddad-Quinn")).to_be_visible()
    nurse_page.screenshot(path=str(artifacts / "day-board-1024x768.png"), full_page=True)
