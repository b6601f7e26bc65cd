"""Pure rules about patients: consent status, and search terms. No database, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class ConsentState:
    kind: str
    status: str  # "current", "expiring", "expired", "revoked"
    text_version: str
    signed_at: datetime
    expires_at: datetime | None
    id: int | None = None


def consent_status(signed_at: datetime, expires_at: datetime | None, revoked_at: datetime | None,
                   now: datetime, *, warn_days: int = 30) -> str:
    """Whether a consent can be relied on at `now`.

    `revoked` and `expired` cannot; `expiring` can, but is due for renewal within `warn_days`.
    """
    if revoked_at is not None and revoked_at <= now:
        return "revoked"
    if signed_at > now:
        return "expired"  # signed in the future: not yet in force
    if expires_at is not None:
        if expires_at <= now:
            return "expired"
        if expires_at - now <= timedelta(days=warn_days):
            return "expiring"
    return "current"


@dataclass(frozen=True)
class SearchTerms:
    mrn: str | None
    dob: date | None
    words: tuple[str, ...]


def parse_search(q: str | None) -> SearchTerms:
    """Split a search box entry into a date of birth, an MRN-like token, and name words."""
    dob = None
    mrn = None
    words: list[str] = []
    for token in (q or "").replace(",", " ").split():
        try:
            dob = date.fromisoformat(token)
            continue
        except ValueError:
            pass
        if any(ch.isdigit() for ch in token):
            mrn = token.upper()
        else:
            words.append(token.lower())
    return SearchTerms(mrn, dob, tuple(words))
