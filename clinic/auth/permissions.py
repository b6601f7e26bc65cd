"""The role matrix: which roles may do what. The only place access rules live.

Every view declares the one permission it needs with `@requires("...")` (or `@public`); a
before-request hook refuses any endpoint that declares neither, so a new route is closed until someone
says who may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

NURSE, PRESCRIBER, MANAGER, ADMIN = "nurse", "prescriber", "manager", "admin"
CLINICAL = frozenset({NURSE, PRESCRIBER})
FLOOR = frozenset({NURSE, PRESCRIBER, MANAGER})
ANY_STAFF = frozenset({NURSE, PRESCRIBER, MANAGER, ADMIN})

PERMISSIONS: dict[str, frozenset[str]] = {
    # working day
    "home.view": ANY_STAFF,
    "account.self": ANY_STAFF,  # own password, own drafts
    "api.docs": ANY_STAFF,
    # patients: demographics are needed at the front desk and by managers handling the waitlist;
    # clinical content (flags, consent detail, scores) is for the clinical roles.
    "patients.list": FLOOR,
    "patients.view": FLOOR,
    "patients.register": FLOOR,
    "patients.edit": FLOOR,
    "patients.flags": CLINICAL,
    "patients.consent": CLINICAL,
    # eligibility before a first course
    "eligibility.view": CLINICAL,
    "eligibility.record": frozenset({PRESCRIBER}),
    # protocols
    "protocols.view": ANY_STAFF,
    "protocols.manage": frozenset({PRESCRIBER, ADMIN}),
    # staff rota
    "rota.view": FLOOR,
    "rota.manage": frozenset({MANAGER}),
    # courses, bookings, the day board and calendars
    "courses.view": FLOOR,
    "courses.order": frozenset({PRESCRIBER}),
    "sessions.book": frozenset({PRESCRIBER, MANAGER}),
    "sessions.change": frozenset({PRESCRIBER, MANAGER}),  # reschedule, cancel, mark no-show
    "sessions.checkin": frozenset({NURSE, MANAGER}),
    "board.view": FLOOR,
    # session monitoring at the chairside
    "monitor.view": CLINICAL,
    "monitor.record": CLINICAL,
    "monitor.decide": frozenset({PRESCRIBER}),  # dose or hold after a high pre-dose blood pressure
    "alerts.view": CLINICAL,
    "alerts.acknowledge": CLINICAL,
    # regulatory reports: the Spravato REMS form, adverse-event reports and marking them sent
    "reports.view": CLINICAL,
    "reports.send": frozenset({PRESCRIBER, NURSE}),
    # outcomes: one patient's dashboard shows their answers, so the clinical roles only (never managers)
    "outcomes.patient": CLINICAL,
    # clinic outcomes: aggregates by protocol and site, never an individual's answers, so managers too
    "outcomes.clinic": frozenset({PRESCRIBER, MANAGER}),
    # waitlist
    "waitlist.view": FLOOR,
    "waitlist.manage": frozenset({MANAGER, PRESCRIBER}),
    # outgoing messages (reminders)
    "outbox.view": frozenset({MANAGER, ADMIN}),
    # staff administration
    "staff.view": frozenset({ADMIN, MANAGER}),
    "staff.manage": frozenset({ADMIN}),
    "tokens.manage": frozenset({ADMIN}),
    "audit.view": frozenset({ADMIN}),
}


def allowed(roles: frozenset[str] | set[str], permission: str) -> bool:
    """Whether someone holding `roles` has `permission` (unknown permissions are refused)."""
    return bool(PERMISSIONS.get(permission, frozenset()) & set(roles))


F = TypeVar("F", bound=Callable)


def requires(permission: str) -> Callable[[F], F]:
    """Declare the permission a view needs; checked before the request reaches it."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}; add it to PERMISSIONS")

    def mark(view: F) -> F:
        view.clinic_permission = permission  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Mark a view that anyone may reach (login page, health check). Never for patient data."""
    view.clinic_public = True  # type: ignore[attr-defined]
    return view


def permission_of(view: Callable | None) -> str | None:
    return getattr(view, "clinic_permission", None)


def is_public(view: Callable | None) -> bool:
    return bool(getattr(view, "clinic_public", False))
