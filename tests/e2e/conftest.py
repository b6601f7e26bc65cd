"""Browser fixtures: the app served for real on a local port, and Chromium driven by Playwright.

The tests are skipped when CLINIC_SKIP_BROWSER=1 or /usr/bin/chromium is missing, except under CI=true,
where a missing Chromium fails the run (CI must run the browser tests).

The idle timeout is 3 s so that a test can see the session lock; every other test opens pages with
`sign_in()` (test_browser.py), which signs in again if a slow step let the session lock. Fixture names
avoid pytest-playwright's (`page`, `browser`, `context`, …): that plugin, when installed, would
parametrize and take over tests that request them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from clinic import create_app
from clinic.audit import Actor
from clinic.config import REPO_ROOT, load_settings
from clinic.db import session_scope
from clinic.patients import service as patient_service
from clinic.patients.schemas import ConsentIn, FlagIn, PatientIn
from clinic.vocab import SEXES
from tests.conftest import PASSWORD, make_staff

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
IDLE_TIMEOUT_SECONDS = 3.0
ARTIFACTS = REPO_ROOT / "test-artifacts"
LANDSCAPE = {"width": 1024, "height": 768}
PORTRAIT = {"width": 768, "height": 1024}


@dataclass(frozen=True)
class StaffLogin:
    username: str
    full_name: str
    password: str = PASSWORD


NURSE = StaffLogin("nina.nurse", "Nina Okafor")
ADMIN = StaffLogin("ada.admin", "Ada Lindqvist")


@dataclass
class LiveServer:
    url: str
    app: object
    sample_patient_id: int


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (or, under CI=true, fail) when the browser tests cannot run here."""
    ci = os.environ.get("CI", "").strip().lower() == "true"
    if not CHROMIUM.exists():
        if ci:
            pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests", pytrace=False)
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    if os.environ.get("CLINIC_SKIP_BROWSER") == "1":
        pytest.skip("browser tests skipped (CLINIC_SKIP_BROWSER=1)")


@pytest.fixture(scope="session")
def live_server(browser_available, tmp_path_factory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("e2e")
    settings = load_settings(overrides={
        "clinic.environment": "test",
        "clinic.instance_path": str(tmp / "instance"),
        "database.url": f"sqlite:///{tmp / 'chairside-e2e.db'}",
        "security.idle_timeout_minutes": IDLE_TIMEOUT_SECONDS / 60,
    })
    app = create_app(settings=settings)
    engine = app.extensions["clinic.engine"]
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        nurse = make_staff(db, NURSE.username, "nurse", full_name=NURSE.full_name)
        make_staff(db, ADMIN.username, "admin", full_name=ADMIN.full_name)
        # A patient with enough on the page (a flag, a consent) for the layout and accessibility checks.
        by = Actor(nurse.id, nurse.username, roles=frozenset({"nurse"}))
        patient = patient_service.register(
            db, by,
            PatientIn(given_name="Margaret", family_name="Oyelaran-Whitcombe", preferred_name="Maggie",
                      date_of_birth=date(1961, 3, 14), sex=next(iter(SEXES)), phone="+1 617 555 0142",
                      email="m.oyelaran@example.org", address="12 Harbour Street, Apt 4B, Boston MA",
                      escort_name="Daniel Whitcombe", escort_phone="+1 617 555 0199",
                      allergies="Penicillin (rash)", weight_kg=71.5),
            now=now)
        patient_id = patient.id
        patient_service.add_flag(db, by, patient_id, FlagIn(kind="fall_risk", note="Dizzy after sessions"),
                                 now=now)
        patient_service.record_consent(db, by, patient_id, ConsentIn(kind="ketamine",
                                       text_version="2025-01", signed_on=now.date()), now=now,
                                       zone=settings.zone)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, sample_patient_id=patient_id)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        engine.dispose()


@pytest.fixture(scope="session")
def chromium_browser(browser_available):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def open_tablet(chromium_browser, live_server):
    """A factory of pages, each in its own browser context (own cookies), at a tablet size.

    Uncaught script errors and Content-Security-Policy refusals fail the test that caused them.
    """
    contexts = []
    problems: list[str] = []

    def make(viewport: dict[str, int] = LANDSCAPE, **context_options):
        context = chromium_browser.new_context(viewport=viewport, base_url=live_server.url,
                                               has_touch=True, **context_options)
        context.set_default_timeout(5_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: problems.append(f"script error on {page.url}: {err}"))
        page.on("console", lambda msg: problems.append(f"console on {page.url}: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text else None)
        return page

    yield make
    for context in contexts:
        context.close()
    if problems:
        pytest.fail("problems in the browser:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def tablet(open_tablet):
    """A page at 1024×768 (landscape)."""
    return open_tablet(LANDSCAPE)
