"""Pure rules: consent status, search terms, the role matrix."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from clinic.auth.permissions import PERMISSIONS, allowed, requires
from clinic.patients.rules import consent_status, parse_search

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("signed", "expires", "revoked", "expected"), [
    (NOW - timedelta(days=30), NOW + timedelta(days=300), None, "current"),
    (NOW - timedelta(days=30), None, None, "current"),
    (NOW - timedelta(days=340), NOW + timedelta(days=25), None, "expiring"),
    (NOW - timedelta(days=400), NOW - timedelta(seconds=1), None, "expired"),
    (NOW - timedelta(days=400), NOW, None, "expired"),  # expiring this instant is expired
    (NOW - timedelta(days=30), NOW + timedelta(days=300), NOW - timedelta(days=1), "revoked"),
    (NOW - timedelta(days=30), NOW + timedelta(days=300), NOW + timedelta(days=1), "current"),
    (NOW + timedelta(days=1), None, None, "expired"),  # not yet signed
])
def test_consent_status(signed, expires, revoked, expected):
    assert consent_status(signed, expires, revoked, NOW) == expected


def test_search_terms_split_into_name_mrn_and_birth_date():
    t = parse_search("Quill, Ivy 1984-05-06")
    assert t.words == ("quill", "ivy") and t.dob == date(1984, 5, 6) and t.mrn is None
    assert parse_search("cs-000042").mrn == "CS-000042"
    assert parse_search(None).words == ()


def test_role_matrix():
    assert allowed({"nurse"}, "patients.view")
    assert not allowed({"admin"}, "patients.view")
    assert allowed({"admin"}, "audit.view")
    assert not allowed({"manager"}, "patients.flags")
    assert allowed({"manager", "nurse"}, "patients.flags")  # several roles add up
    assert not allowed({"nurse"}, "no.such.permission")
    assert not allowed(set(), "home.view")


def test_unknown_permission_cannot_be_declared():
    with pytest.raises(KeyError):
        requires("patients.teleport")
    assert "audit.view" in PERMISSIONS
