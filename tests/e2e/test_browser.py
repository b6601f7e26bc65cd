"""The nurse's tablet, for real: Chromium at 1024×768 and 768×1024 against the live app.

Sign-in, a registration kept across an idle-timeout lock, a registration with a validation error, touch
layout (no sideways scrolling, nothing cut off, targets ≥ 44 px, nothing on top of anything else) and
axe-core's accessibility rules. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN, IDLE_TIMEOUT_SECONDS, LANDSCAPE, NURSE, PORTRAIT, StaffLogin

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
MRN = re.compile(r"CS-\d{6}")
MIN_TARGET = 44  # CSS px; ux.md asks 48, platform guidance is 44 pt / 48 dp


def size_id(viewport: dict[str, int]) -> str:
    return f"{viewport['width']}x{viewport['height']}"


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}-{size_id(page.viewport_size)}.png"), full_page=True)


def sign_in(page: Page, who: StaffLogin, path: str = "/") -> None:
    """Open `path`, signing in on the way if the app asks (first visit or an idle lock)."""
    page.goto(path)
    if path_of(page) == "/login":
        page.get_by_label("Username").fill(who.username)
        page.get_by_label("Password").fill(who.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
    assert path_of(page) == urlsplit(path).path, f"expected {path} after signing in, got {page.url}"


# --- 1. sign-in ----------------------------------------------------------------------------------


def test_sign_in_shows_a_wrong_password_then_lands_on_the_start_page_and_signs_out(tablet, artifacts):
    page = tablet
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))

    page.get_by_label("Username").fill(ADMIN.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("section.login #login-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).not_to_be_empty()
    # The error sits with the form (inside its card, just above the fields), and the username is kept.
    form_box = page.locator("section.login form").bounding_box()
    error_box = error.bounding_box()
    assert 0 <= form_box["y"] - (error_box["y"] + error_box["height"]) <= 40, (error_box, form_box)
    expect(page.get_by_label("Username")).to_have_value(ADMIN.username)
    expect(page.get_by_label("Password")).to_have_value("")
    shot(page, artifacts, "login-wrong-password")

    page.get_by_label("Password").fill(ADMIN.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".who-name")).to_have_text(ADMIN.full_name)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {ADMIN.full_name.split()[0]}")
    shot(page, artifacts, "start-page")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status").filter(has_text="You have signed out.")).to_be_visible()
    expect(page.locator(".who-name")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F"))


# --- 2. an idle-timeout lock keeps what was typed -------------------------------------------------


def test_a_registration_typed_before_an_idle_lock_is_put_back_after_signing_in_again(tablet, artifacts):
    page = tablet
    typed = {
        "#f-given_name": "Tobias",
        "#f-family_name": "Brennan-Idle",
        "#f-preferred_name": "Toby",
        "#f-date_of_birth": "1985-07-23",
        "#f-phone": "+1 617 555 0177",
        "#f-allergies": "Latex; sulfa drugs",
        "#f-weight_kg": "82.4",
    }
    sign_in(page, NURSE, "/patients/new")
    for selector, value in typed.items():
        page.fill(selector, value)
    page.select_option("#f-sex", "male")

    time.sleep(IDLE_TIMEOUT_SECONDS + 0.4)
    page.get_by_role("button", name="Register patient").click()

    expect(page).to_have_url(re.compile(r"/login\?"))
    expect(page.locator("input[name=draft]")).not_to_have_value("")
    expect(page.get_by_role("heading", level=1)).to_have_text("Session locked")
    expect(page.locator(".notice-warning")).to_contain_text("kept")
    expect(page.get_by_label("Username")).to_have_value(NURSE.username)
    shot(page, artifacts, "idle-locked")
    page.get_by_label("Password").fill(NURSE.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(r"/patients/new$"))  # the draft token is taken off the address
    expect(page.locator("#draft-restored")).to_be_visible()
    for selector, value in typed.items():
        expect(page.locator(selector), selector).to_have_value(value)
    expect(page.locator("#f-sex")).to_have_value("male")
    shot(page, artifacts, "idle-draft-restored")

    page.get_by_role("button", name="Register patient").click()
    expect(page).to_have_url(re.compile(r"/patients/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Brennan-Idle, Tobias")
    lead = page.locator(".lead").first
    expect(lead).to_contain_text(MRN)
    mrn = MRN.search(lead.inner_text()).group(0)
    expect(page.locator("#details")).to_contain_text("Latex; sulfa drugs")
    expect(page.locator("#details")).to_contain_text("82.4 kg")

    page.get_by_role("link", name="Patients").click()
    page.get_by_role("searchbox", name="Search patients").fill("Brennan")
    page.get_by_role("button", name="Search").click()
    row = page.locator("a.row-link", has_text="Brennan-Idle, Tobias")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(mrn)


def test_a_kept_registration_survives_reloading_the_locked_sign_in_page(tablet):
    page = tablet
    sign_in(page, NURSE, "/patients/new")
    page.fill("#f-given_name", "Reloaded")
    page.fill("#f-family_name", "After-Lock")
    time.sleep(IDLE_TIMEOUT_SECONDS + 0.4)
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Session locked")
    page.wait_for_load_state("networkidle")

    page.reload()
    expect(page.locator("input[name=draft]")).to_have_count(1, timeout=1_000)
    page.get_by_label("Password").fill(NURSE.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/patients/new$"))
    expect(page.locator("#draft-restored")).to_be_visible()
    expect(page.locator("#f-family_name")).to_have_value("After-Lock")


# --- 3. a validation error keeps the rest of the form ---------------------------------------------


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT], ids=size_id)
def test_registration_shows_errors_beside_their_fields_and_keeps_the_other_values(open_tablet, artifacts,
                                                                                    viewport):
    page = open_tablet(viewport)
    family = f"Castellanos-{size_id(viewport)}"
    kept = {
        "#f-given_name": "Ines",
        "#f-date_of_birth": "1992-11-02",
        "#f-phone": "+1 617 555 0123",
        "#f-address": "40 Pier Road, Salem MA",
        "#f-allergies": "NKDA",
        "#f-weight_kg": "58",
    }
    sign_in(page, NURSE, "/patients/new")
    for selector, value in kept.items():
        page.fill(selector, value)
    page.select_option("#f-sex", "female")
    page.fill("#f-email", "ines.at.example")  # no @
    # family name left empty
    page.get_by_role("button", name="Register patient").click()

    expect(page).to_have_url(re.compile(r"/patients/new$"))
    expect(page.locator(".notice-error[role=alert]")).to_be_visible()
    for name in ("family_name", "email"):
        field = page.locator(f".field:has(#f-{name})")
        message = field.locator(f"#e-{name}")
        expect(message, name).to_be_visible()
        expect(message, name).not_to_be_empty()
        expect(page.locator(f"#f-{name}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#f-{name}")).to_have_attribute("aria-describedby", f"e-{name}")
        box, msg_box = page.locator(f"#f-{name}").bounding_box(), message.bounding_box()
        assert 0 <= msg_box["y"] - (box["y"] + box["height"]) <= 40, f"{name}: message not under its field"
        assert abs(msg_box["x"] - box["x"]) <= 4, f"{name}: message not aligned with its field"
    expect(page.locator(".field.has-error")).to_have_count(2)
    for selector, value in kept.items():
        expect(page.locator(selector), selector).to_have_value(value)
    expect(page.locator("#f-sex")).to_have_value("female")
    expect(page.locator("#f-email")).to_have_value("ines.at.example")
    shot(page, artifacts, "register-errors")

    page.fill("#f-family_name", family)
    page.fill("#f-email", "ines.castellanos@example.org")
    page.get_by_role("button", name="Register patient").click()
    expect(page).to_have_url(re.compile(r"/patients/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{family}, Ines")
    expect(page.locator(".lead").first).to_contain_text(MRN)
    expect(page.locator("#details")).to_contain_text("ines.castellanos@example.org")
    shot(page, artifacts, "register-saved")


# --- 4. tablet layout -----------------------------------------------------------------------------

# Returns a list of problems: horizontal scrolling; interactive elements cut off at the sides, smaller
# than the touch minimum, or lying on top of one another. Links inside running text are exempt from the
# size rule (an inline link with text of its own around it), nothing else is.
LAYOUT_CHECK = """
(minTarget) => {
  const vw = window.innerWidth;
  const problems = [];
  const scrollWidth = document.scrollingElement.scrollWidth;
  if (scrollWidth > vw) problems.push(`scrolls sideways: scrollWidth ${scrollWidth} > innerWidth ${vw}`);
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    else if (el.getAttribute('name')) s += `[name="${el.getAttribute('name')}"]`;
    if (el.classList.length) s += '.' + [...el.classList].join('.');
    const text = el.tagName === 'SELECT' ? '' : (el.innerText || el.getAttribute('aria-label') || '')
      .trim().replace(/\\s+/g, ' ');
    return text ? `${s} "${text.slice(0, 40)}"` : s;
  };
  const px = Math.round;
  const box = (r) => `${px(r.width)}×${px(r.height)} at (${px(r.left)},${px(r.top)})`;
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) return false;  // visually-hidden, collapsed <details>
    // checkVisibility also sees content-visibility: hidden, which is how Chromium hides a closed <details>
    return el.checkVisibility({opacityProperty: true, visibilityProperty: true});
  };
  const inText = (el) => {
    if (el.tagName !== 'A' || getComputedStyle(el).display !== 'inline') return false;
    const own = el.textContent.trim().length;
    return el.parentElement.textContent.trim().length > own;
  };
  const els = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary')].filter(shown);
  const rects = els.map((el) => el.getBoundingClientRect());
  els.forEach((el, i) => {
    const r = rects[i];
    if (r.left < -0.5 || r.right > vw + 0.5) problems.push(`cut off at the side: ${describe(el)} ${box(r)}`);
    let target = r;
    if (el.type === 'checkbox' || el.type === 'radio') {
      const label = el.closest('label') || (el.id && document.querySelector(`label[for="${el.id}"]`));
      if (label) target = label.getBoundingClientRect();  // the label is the touch target
    }
    if (!inText(el) && (target.width < minTarget - 0.5 || target.height < minTarget - 0.5))
      problems.push(`smaller than ${minTarget}×${minTarget}: ${describe(el)} ${box(target)}`);
  });
  for (let i = 0; i < els.length; i++) {
    for (let j = i + 1; j < els.length; j++) {
      if (els[i].contains(els[j]) || els[j].contains(els[i])) continue;
      const a = rects[i], b = rects[j];
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) {
        const what = `${describe(els[i])} ${box(a)} and ${describe(els[j])} ${box(b)}`;
        problems.push(`overlap ${Math.round(w)}×${Math.round(h)}: ${what}`);
      }
    }
  }
  return {problems, checked: els.length};
}
"""


def layout_problems(page: Page) -> list[str]:
    page.evaluate("document.fonts.ready")
    result = page.evaluate(LAYOUT_CHECK, MIN_TARGET)
    assert result["checked"] > 0, f"no interactive elements found on {page.url}"
    return result["problems"]


def test_the_layout_check_catches_what_it_is_meant_to_catch(open_tablet):
    page = open_tablet(LANDSCAPE)
    page.set_content("""<body style="margin:0">
      <p>Read <a href="/x">the policy</a> first.</p>
      <button style="width:120px;height:48px">Fine</button>
      <button style="width:30px;height:30px">Small</button>
      <button style="position:absolute;left:0;top:60px;width:120px;height:48px">On top</button>
      <input style="position:absolute;left:990px;top:200px;width:100px;height:48px" aria-label="Cut">
    </body>""")
    problems = "\n".join(layout_problems(page))
    assert "smaller than 44×44: button \"Small\"" in problems
    assert "overlap" in problems and "\"On top\"" in problems
    assert "cut off at the side: input" in problems
    assert "scrolls sideways" in problems
    assert "the policy" not in problems  # a link inside a sentence is exempt


LAYOUT_PAGES = ["login", "patient-form", "patient-page"]


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT], ids=size_id)
@pytest.mark.parametrize("screen", LAYOUT_PAGES)
def test_tablet_layout_has_no_sideways_scrolling_small_targets_or_overlaps(open_tablet, live_server,
                                                                          artifacts, screen, viewport):
    page = open_tablet(viewport)
    if screen == "login":
        page.goto("/login")
    elif screen == "patient-form":
        sign_in(page, NURSE, "/patients/new")
    else:
        sign_in(page, NURSE, f"/patients/{live_server.sample_patient_id}")
        expect(page.locator("#flags .badge-flag").first).to_be_visible()
    problems = layout_problems(page)
    shot(page, artifacts, f"layout-{screen}")
    if screen == "patient-page":  # and with the forms folded into <details> (record / revoke consent) open
        summaries = page.locator("main details > summary")
        assert summaries.count() > 0
        for summary in summaries.all():
            summary.click()
        expect(page.locator("#c-signed")).to_be_visible()
        problems += [f"(forms unfolded) {p}" for p in layout_problems(page)]
        shot(page, artifacts, f"layout-{screen}-unfolded")
    assert not problems, f"{screen} at {size_id(viewport)}:\n" + "\n".join(problems)


# --- 5. accessibility (axe-core) ------------------------------------------------------------------


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
      const r = await axe.run(document, {resultTypes: ['violations']});
      return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\\s+/g, ' '))
      }));
    }""")
    return [f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in result]


@pytest.mark.parametrize("screen", ["login", "patient-form"])
def test_axe_finds_no_serious_or_critical_accessibility_problems(open_tablet, screen):
    page = open_tablet(LANDSCAPE, bypass_csp=True)  # axe is injected as an inline script
    if screen == "login":
        page.goto("/login")
    else:
        sign_in(page, NURSE, "/patients/new")
    violations = serious_violations(page)
    assert not violations, f"axe on {screen}:\n" + "\n".join(violations)
