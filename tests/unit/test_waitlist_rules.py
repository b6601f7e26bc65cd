"""Waitlist rules without a database: days waited, which status may follow which, the note."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from clinic.patients.waitlist import TRANSITIONS, note_with, status_change_problem, wait_days

NY = ZoneInfo("America/New_York")


def test_days_waited_count_in_the_sites_calendar():
    # 02:30 UTC on 2 March is still 1 March in New York: 1 March is the day of referral.
    referred = datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    assert wait_days(referred, date(2026, 3, 1), NY) == 0
    assert wait_days(referred, date(2026, 3, 2), NY) == 1
    assert wait_days(referred, date(2026, 3, 31), NY) == 30


def test_days_waited_are_whole_days_across_the_spring_clock_change():
    referred = datetime(2026, 3, 7, 17, 0, tzinfo=UTC)  # Saturday noon before the clocks go forward
    assert wait_days(referred, date(2026, 3, 9), NY) == 2


@pytest.mark.parametrize(("current", "new"), [("waiting", "offered"), ("waiting", "scheduled"),
                                              ("offered", "waiting"), ("offered", "scheduled"),
                                              ("scheduled", "waiting")])
def test_allowed_status_changes_need_no_reason(current, new):
    assert status_change_problem(current, new, None) == {}


def test_removing_someone_needs_a_reason():
    assert "reason" in status_change_problem("waiting", "removed", None)
    assert "reason" in status_change_problem("offered", "removed", "  ")
    assert status_change_problem("waiting", "removed", "Moved out of state") == {}


def test_a_removed_entry_stays_removed():
    assert TRANSITIONS["removed"] == ()
    assert "status" in status_change_problem("removed", "waiting", "Referred again")
    assert "already" in status_change_problem("waiting", "waiting", None)["status"]


def test_the_note_keeps_the_newest_lines_when_full():
    assert note_with(None, "Offered 2026-11-23: Tue 14:00") == "Offered 2026-11-23: Tue 14:00"
    assert note_with("Letter received", "Removed: moved away") == "Letter received\nRemoved: moved away"
    long = note_with("x" * 1000, "Removed 2026-11-23: moved away")
    assert len(long) == 1000 and long.endswith("moved away")
