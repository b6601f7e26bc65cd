"""A synthetic demo clinic: staff, patients, six months of treatment history, today's floor.

Everything here is made up (names from small lists below, 555-01xx phone numbers, example.org mail):
no real person's data. The content is deterministic for a given `seed` and `now` (it is laid out
relative to `now`), so screenshots, tests and walkthroughs can rely on it.

`load_demo()` is what `clinic demo` calls. Every demo account signs in with `DEMO_PASSWORD`;
`DEMO_LOGINS` lists them (username, roles, a note on what the account shows).

What the clinic holds: the sites and chairs of config.toml; the seed protocols; 12 staff (one with two
roles, one deactivated, one nurse whose ACLS has expired, one whose BLS expires within the month) with
credentials, a weekly rota and its shifts (six months back, four weeks ahead); 60 patients (flags,
consents - one lapsed -, eligibility evaluations, weights, a waitlist of 8); six months of courses
(IV and IM induction, esketamine, boosters) whose sessions carry doses, vitals with ketamine's blood
pressure rise, CADSS-6 and MOAA/S, PHQ-9 and GAD-7 (about half respond, a third remit), a few adverse
events and acknowledged alerts; and today's and the next three weeks' bookings, today's sessions in
every state from booked to discharged. Sundays and closed days have nothing on today's board.
"""

from __future__ import annotations

import json
import math
import random
import time as _clock
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, func, select

import clinic.models  # noqa: F401  - every table in the metadata (the reset empties them all)
from clinic import audit
from clinic.auth.models import Credential, StaffRole, StaffSite, StaffUser
from clinic.auth.passwords import hash_password
from clinic.config import WEEKDAYS, Settings
from clinic.db import utcnow
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import (
    Consent,
    EligibilityEvaluation,
    Patient,
    PatientFlag,
    WaitlistEntry,
    WeightMeasurement,
)
from clinic.sessions.models import (
    Chair,
    Protocol,
    Shift,
    ShiftPattern,
    Site,
    TreatmentCourse,
    TreatmentSession,
)
from clinic.sessions.protocols import load_json, score_points, seed_protocols, vitals_check_minutes
from clinic.sessions.service import sync_sites
from clinic.vitals.models import (
    AdverseEvent,
    Alert,
    ChecklistEntry,
    DoseAdministration,
    DoseEvent,
    VitalsReading,
)

DEMO_PASSWORD = "chairside-demo"

HISTORY_DAYS = 182  # completed history reaches this far back
BOOKING_DAYS = 21  # sessions are booked this far ahead
SHIFT_DAYS_AHEAD = 28  # the rota is generated this far ahead


class DemoError(RuntimeError):
    """The demo cannot be loaded into this database as it stands."""


# --- staff ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StaffSpec:
    username: str
    full_name: str
    roles: tuple[str, ...]
    note: str
    sites: tuple[str, ...]
    rota: tuple[tuple[str, str], ...] = ()  # (site code, "mon tue ...") as nurse or prescriber
    active: bool = True


_STAFF: tuple[_StaffSpec, ...] = (
    _StaffSpec("admin", "Avery Quinlan", ("admin",),
               "Administrator: staff accounts, roles, API tokens, audit trail", ("HBR", "NOR")),
    _StaffSpec("manager", "Morgan Ellery", ("manager",),
               "Clinic manager, both sites: schedules, waitlist, capacity, staff list", ("HBR", "NOR")),
    _StaffSpec("dr.okafor", "Dr Adaeze Okafor", ("prescriber",),
               "Psychiatrist; prescriber on site at Harbourview Mon-Thu", ("HBR",),
               rota=(("HBR", "mon tue wed thu"),)),
    _StaffSpec("dr.lindqvist", "Dr Henrik Lindqvist", ("prescriber",),
               "Anaesthesiologist; Harbourview Fri-Sat, Northgate Thu", ("HBR", "NOR"),
               rota=(("HBR", "fri sat"), ("NOR", "thu"))),
    _StaffSpec("np.reyes", "Camila Reyes, PMHNP", ("prescriber",),
               "Psychiatric nurse practitioner; prescriber at Northgate Mon-Wed, Fri", ("NOR",),
               rota=(("NOR", "mon tue wed fri"),)),
    _StaffSpec("nurse.kim", "Jae-won Kim, RN", ("nurse",),
               "Nurse, Harbourview Mon-Thu; BLS renewal due within the month", ("HBR",),
               rota=(("HBR", "mon tue wed thu"),)),
    _StaffSpec("nurse.patel", "Priya Patel, RN", ("nurse",),
               "Nurse, Harbourview Tue-Fri", ("HBR",),
               rota=(("HBR", "tue wed thu fri"),)),
    _StaffSpec("nurse.osei", "Kwame Osei, RN", ("nurse",),
               "Nurse, Northgate Mon-Thu", ("NOR",),
               rota=(("NOR", "mon tue wed thu"),)),
    _StaffSpec("nurse.brennan", "Siobhan Brennan, RN", ("nurse",),
               "Nurse at both sites: Harbourview Mon and Sat, Northgate Tue, Thu, Fri", ("HBR", "NOR"),
               rota=(("HBR", "mon sat"), ("NOR", "tue thu fri"))),
    _StaffSpec("nurse.duarte", "Mateus Duarte, RN", ("nurse",),
               "Nurse, Northgate Mon, Wed-Fri; ACLS EXPIRED: may not give doses until renewed", ("NOR",),
               rota=(("NOR", "mon wed thu fri"),)),
    _StaffSpec("nurse.walsh", "Theresa Walsh, RN", ("nurse", "manager"),
               "Charge nurse and clinic manager (two roles), Harbourview Mon, Wed, Fri, Sat", ("HBR",),
               rota=(("HBR", "mon wed fri sat"),)),
    _StaffSpec("nurse.whitfield", "Dana Whitfield, RN", ("nurse",),
               "Former nurse: account DEACTIVATED, sign-in is refused", ("NOR",),
               rota=(("NOR", "mon wed"),), active=False),
)

DEMO_LOGINS: list[tuple[str, tuple[str, ...], str]] = [(s.username, s.roles, s.note) for s in _STAFF]

_DEACTIVATED_DAYS_AGO = 45
_ACLS_EXPIRED_DAYS_AGO = 12
_BLS_EXPIRING_IN_DAYS = 20

# --- names and words (made up; any likeness to a real person is chance) ------------------------------

_FEMALE = ("Amelia", "Beatrice", "Clara", "Daniela", "Eleanor", "Fatima", "Grace", "Hannah", "Imani",
           "Julia", "Keiko", "Leah", "Maya", "Nadia", "Olivia", "Paloma", "Rosa", "Sofia", "Tessa", "Vera",
           "Wren", "Yara", "Zoe", "Ingrid", "Lucia", "Mirela", "Noor", "Freya", "Helena", "Anika")
_MALE = ("Aaron", "Bruno", "Caleb", "Dmitri", "Elias", "Felix", "Gabriel", "Hugo", "Isaac", "Jonah",
         "Kofi", "Leon", "Marcus", "Nikolai", "Omar", "Pavel", "Quentin", "Rafael", "Samuel", "Tobias",
         "Victor", "Wesley", "Yusuf", "Zane", "Anders", "Diego", "Emeka", "Hiro", "Lars", "Mateo")
_NEUTRAL = ("Alex", "Jordan", "Riley", "Sam", "Casey", "Robin", "Quinn", "Avery")
_FAMILY = ("Abernathy", "Achterberg", "Baptiste", "Bellweather", "Castellano", "Dalgaard", "Ekwueme",
           "Fairbanks", "Galloway", "Haverford", "Ibarra", "Jankowski", "Kettering", "Lachance", "Marchetti",
           "Nakashima", "Oyelaran", "Pemberton", "Quintero", "Rasmussen", "Sandoval", "Thorsby",
           "Umberfield", "Valdivia", "Whitcombe", "Xiong", "Yardley", "Zelinski", "Ashdown", "Brightwater",
           "Crowhurst", "Delacroix", "Esterhuizen", "Fenwick", "Grimaldi", "Holloway", "Ilves", "Jaramillo",
           "Kowalczyk", "Lindholm", "Mwangi", "Northcott", "Okonjo", "Petrakis", "Radcliffe", "Strand",
           "Tanabe", "Underhill", "Vasquez", "Winterbourne")
_STREETS = ("Alder Street", "Beacon Lane", "Cove Road", "Dockside Way", "Elm Terrace", "Ferry Street",
            "Gull Avenue", "Harbour Row", "Juniper Court", "Kestrel Drive", "Lantern Hill", "Mill Pond Road")
_TOWNS = ("Harbourview", "Northgate", "Eastmere", "Saltmarsh", "Westbrook")
_AREA_CODES = ("617", "781", "978", "508")
_RELATIONS = ("partner", "spouse", "sister", "brother", "friend", "mother", "father", "daughter", "son")
_ALLERGIES = ("Penicillin (rash)", "Sulfa drugs (hives)", "Latex", "Codeine (nausea)", "Shellfish")
_DIAGNOSES = (
    "Major depressive disorder, recurrent, severe; treatment-resistant (failed 3 adequate trials)",
    "Major depressive disorder with anxious distress; treatment-resistant",
    "Persistent depressive disorder with current major depressive episode",
    "Post-traumatic stress disorder with comorbid major depression",
    "Bipolar II disorder, current episode depressed; mood stabiliser in place",
)
_PRIOR = ("sertraline", "escitalopram", "fluoxetine", "venlafaxine", "duloxetine", "bupropion",
          "mirtazapine", "aripiprazole augmentation", "lithium augmentation", "CBT (16 sessions)",
          "TMS (30 sessions)", "psychodynamic therapy")
_MEDICATIONS = ("sertraline 100 mg daily", "escitalopram 20 mg daily", "bupropion XL 300 mg daily",
                "venlafaxine XR 150 mg daily", "lamotrigine 200 mg daily", "trazodone 50 mg at night",
                "levothyroxine 75 mcg daily", "atorvastatin 20 mg daily")
_REFERRERS = ("Dr Imogen Farrow (primary care)", "Dr Tomasz Wierzba (community psychiatry)",
              "Dr Ruth Achebe (outpatient psychiatry)", "Self-referral via website",
              "Harbourview Behavioral Health (intake team)")
_CANCEL_REASONS = ("Patient unwell (cold symptoms)", "Escort unavailable", "Work commitment",
                   "Car trouble", "Family emergency", "Snowstorm: patient could not travel")


# --- the summary ----------------------------------------------------------------------------------


@dataclass
class DemoSummary:
    seed: int
    now: datetime
    staff: int = 0
    patients: int = 0
    courses: int = 0
    sessions: int = 0
    sessions_today: int = 0
    vitals: int = 0
    scale_responses: int = 0
    doses: int = 0
    adverse_events: int = 0
    alerts: int = 0
    shifts: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}

    def __str__(self) -> str:
        return (
            f"Demo clinic loaded in {self.seconds:.1f} s (seed {self.seed}, relative to "
            f"{self.now:%Y-%m-%d %H:%M} UTC):\n"
            f"  {self.staff} staff, {self.patients} patients, {self.courses} treatment courses\n"
            f"  {self.sessions} sessions ({self.sessions_today} today), {self.doses} doses, "
            f"{self.vitals} vitals readings, {self.scale_responses} scale responses\n"
            f"  {self.adverse_events} adverse events, {self.alerts} alerts (acknowledged), "
            f"{self.shifts} rota shifts"
        )


# --- entry point ----------------------------------------------------------------------------------


def load_demo(engine: Engine, settings: Settings, *, seed: int = 7, now: datetime | None = None,
              reset: bool = False) -> DemoSummary:
    """Load the synthetic demo clinic into the database behind `engine`.

    With `reset`, every table is emptied first (all data is lost). Without it, a database that already
    holds patients (or demo usernames) is refused with `DemoError`. The history is laid out relative to
    `now` (default: the current instant); the same `seed` and `now` give the same clinic.
    """
    started = _clock.perf_counter()
    now = (now or utcnow())
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC).replace(microsecond=0)
    if reset:
        empty_database(engine)
    with Session(engine, expire_on_commit=False) as db:
        if not reset:
            _refuse_if_loaded(db)
        sync_sites(db, settings)  # commits
        builder = _Builder(db, settings, seed=seed, now=now)
        summary = builder.build()
        summary.seconds = round(_clock.perf_counter() - started, 2)
        audit.record(db, audit.SYSTEM, "create", "demo", None, after=summary.as_dict(),
                     detail=f"synthetic demo clinic loaded (seed {seed})")
        db.commit()
    return summary


def _refuse_if_loaded(db: Session) -> None:
    if db.exec(select(Patient.id).limit(1)).first() is not None:
        raise DemoError("The database already has patients; the demo loads only into an empty clinic "
                        "(a reset empties it first, losing all data)")
    names = [s.username for s in _STAFF]
    taken = sorted(db.exec(select(StaffUser.username).where(StaffUser.username.in_(names))))
    if taken:
        raise DemoError(f"Demo staff accounts already exist: {', '.join(taken)}")


_SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
)


def empty_database(engine: Engine) -> None:
    """Delete every row of every table (the schema and the Alembic revision stay)."""
    tables = list(reversed(SQLModel.metadata.sorted_tables))
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        names = [quote(t.name) for t in tables]
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
            return
        # The audit trail is append-only by trigger: lift the triggers for the wipe, then put them back.
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
        for name in names:
            conn.exec_driver_sql(f"DELETE FROM {name}")
        if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
            conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        for ddl in _SQLITE_AUDIT_TRIGGERS:
            conn.exec_driver_sql(ddl)


# --- calendars and the chair allocator -------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class _Calendar:
    """One site's opening hours and chairs, in the site's own zone."""

    def __init__(self, site: Site, hours: dict[str, list[list[str]]], closed: list[date], chairs: list[int]):
        self.site_id = site.id
        self.code = site.code
        self.zone = ZoneInfo(site.time_zone)
        self.hours = {day: [(_minutes(a), _minutes(b)) for a, b in spans] for day, spans in hours.items()}
        self.closed = set(closed)
        self.chairs = chairs

    def spans(self, d: date) -> list[tuple[int, int]]:
        if d in self.closed:
            return []
        return self.hours.get(WEEKDAYS[d.weekday()], [])

    def is_open(self, d: date) -> bool:
        return bool(self.spans(d))

    def at(self, d: date, minute: int) -> datetime:
        """Site-local wall time on `d` as aware UTC (zoneinfo gets DST right)."""
        return datetime.combine(d, time(minute // 60, minute % 60), tzinfo=self.zone).astimezone(UTC)


class _Allocator:
    """Tracks chair occupancy so no two sessions overlap on a chair, and one session a day per patient.

    Starts are staggered: a start time already used at the site (or next to one) costs extra, so the
    floor is level-loaded rather than everyone arriving at opening time.
    """

    def __init__(self, slot: int):
        self.slot = slot
        self.busy: dict[tuple[int, date], list[tuple[int, int]]] = defaultdict(list)
        self.patient_days: dict[int, set[date]] = defaultdict(set)
        self.starts: dict[tuple[str, date, int], int] = defaultdict(int)

    def place(self, cal: _Calendar, d: date, patient: int, length: int, preferred: int
              ) -> tuple[int, int] | None:
        """Book a chair on `d` for `length` minutes near `preferred` (site-local minutes): (chair, start)."""
        if d in self.patient_days[patient]:
            return None
        candidates = [m for (o, c) in cal.spans(d) for m in range(o, c - length + 1, self.slot)]
        if not candidates:
            return None

        def cost(m: int) -> tuple[int, int]:
            crowd = self.starts[(cal.code, d, m)]
            near = self.starts[(cal.code, d, m - self.slot)] + self.starts[(cal.code, d, m + self.slot)]
            return abs(m - preferred) + 45 * crowd + 15 * near, m

        for m in sorted(candidates, key=cost):
            for chair in sorted(cal.chairs, key=lambda c: (len(self.busy[(c, d)]), c)):
                if all(m + length <= s or m >= e for s, e in self.busy[(chair, d)]):
                    self.busy[(chair, d)].append((m, m + length))
                    self.patient_days[patient].add(d)
                    self.starts[(cal.code, d, m)] += 1
                    return chair, m
        return None


# --- plans ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Patient:
    index: int
    cohort: str
    site: str
    sex: str
    given: str = ""
    family: str = ""
    id: int | None = None
    # physiology and response (drawn once per patient)
    weight: float = 75.0
    sys: int = 122
    dia: int = 78
    hr: int = 74
    bp_sens: float = 1.0
    diss_sens: float = 1.0
    pref_minute: int = 600
    outcome: str = "respond"  # remit | respond | slight | flat | maintained
    phq_base: int = 18
    gad_base: int = 14
    phq_final: int = 8
    gad_final: int = 6
    item9_sessions: int = 0  # PHQ-9 item 9 answered > 0 in the first N sessions
    mgkg: float = 0.5
    titrate: bool = False
    nasal_dose: int = 56
    flags: list[tuple[str, str]] = field(default_factory=list)
    courses: list[_Course] = field(default_factory=list)
    prescriber: str = "dr.okafor"
    evaluation: str | None = None  # waitlist only: "deferred" or "eligible" when already evaluated
    referred: datetime | None = None
    evaluated: datetime | None = None
    mrn: str = ""


@dataclass(eq=False)
class _Course:
    patient: _Patient
    protocol: Protocol
    kind: str
    site: str
    planned: int
    stop_after: int | None = None
    visits: list[_Visit] = field(default_factory=list)
    status: str = "planned"
    ordered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    id: int | None = None


@dataclass(eq=False)
class _Visit:
    course: _Course
    number: int
    day: date
    chair_id: int
    start: datetime
    end: datetime
    ghost: str | None = None  # "cancelled" | "no_show" for a missed booking
    status: str = "booked"
    checked_in: datetime | None = None
    dose_start: datetime | None = None
    dose_end: datetime | None = None
    discharged: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    created_at: datetime | None = None
    nurse: int | None = None
    prescriber: int | None = None
    rebooked: _Visit | None = None  # for a missed booking: the session that replaced it
    id: int | None = None


_STATUS_VERSION = {"booked": 1, "checked_in": 2, "dosing": 3, "recovery": 4, "discharged": 5,
                   "cancelled": 2, "no_show": 2}

# Cohorts, in the order their sessions are placed (the ones on today's board first).
_COHORTS = (
    # name, count, protocol code, site rule
    ("iv_active_today", 6, "iv-induction"),
    ("nasal_active_today", 3, "esketamine-nasal"),
    ("im_active_today", 1, "im-ketamine"),
    ("iv_active", 3, "iv-induction"),
    ("nasal_active", 1, "esketamine-nasal"),
    ("iv_new", 2, "iv-induction"),
    ("maintenance", 3, "iv-booster"),
    ("iv_done", 26, "iv-induction"),
    ("iv_stopped", 1, "iv-induction"),
    ("im_done", 2, "im-ketamine"),
    ("nasal_done", 2, "esketamine-nasal"),
    ("waitlist", 8, None),
    ("not_eligible", 2, None),
)
_TODAY_SITES = {"iv_active_today": ("HBR", "NOR", "HBR", "NOR", "HBR", "NOR"),
                "nasal_active_today": ("HBR", "HBR", "HBR"), "im_active_today": ("NOR",)}


# --- the builder ----------------------------------------------------------------------------------


class _Builder:
    def __init__(self, db: Session, settings: Settings, *, seed: int, now: datetime):
        self.db = db
        self.settings = settings
        self.rng = random.Random(seed)
        self.keys = random.Random(seed * 7919 + 17)  # client keys: their own stream
        self.seed = seed
        self.now = now
        self.zone = settings.zone
        self.today = now.astimezone(self.zone).date()
        self.window_start = self.today - timedelta(days=HISTORY_DAYS)
        self.horizon = self.today + timedelta(days=BOOKING_DAYS)
        self.alloc = _Allocator(settings.sessions.slot_granularity_minutes)
        self.summary = DemoSummary(seed=seed, now=now)

    # -- helpers --

    def key(self) -> str:
        return uuid.UUID(int=self.keys.getrandbits(128), version=4).hex

    def insert(self, model: type[SQLModel], rows: list[dict[str, Any]], *, ids: bool = True) -> list[int]:
        """Bulk INSERT; with `ids`, the new primary keys in the order of `rows`."""
        if not rows:
            return []
        if ids:
            stmt = sa.insert(model).returning(model.id, sort_by_parameter_order=True)
            return list(self.db.scalars(stmt, rows))
        self.db.execute(sa.insert(model), rows)
        return []

    def stamp(self, d: date, cal: _Calendar | None = None, lo: int = 9 * 60, hi: int = 16 * 60) -> datetime:
        """A working-hours instant on `d` (site or clinic zone), never after now."""
        minute = self.rng.randrange(lo, hi)
        zone = cal.zone if cal else self.zone
        at = datetime.combine(d, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)
        return min(at, self.now - timedelta(minutes=self.rng.randint(20, 90)))

    def before_now(self, at: datetime) -> datetime:
        return min(at, self.now)

    # -- the whole build --

    def build(self) -> DemoSummary:
        self.load_places()
        self.protocols = seed_protocols(self.db)
        self.make_staff()
        self.plan_patients()
        self.place_sessions()
        self.settle_sessions()
        self.write_patients()
        self.write_courses_and_sessions()
        self.write_clinical_records()
        self.db.flush()
        return self.summary

    # -- places --

    def load_places(self) -> None:
        sites = {s.code: s for s in self.db.exec(select(Site))}
        self.cal: dict[str, _Calendar] = {}
        for sc in self.settings.sites:
            site = sites[sc.code]
            chairs = list(self.db.exec(select(Chair.id).where(Chair.site_id == site.id, Chair.active)
                                       .order_by(Chair.label)))
            self.cal[sc.code] = _Calendar(site, sc.hours, list(sc.closed_days), chairs)
        self.site_codes = [sc.code for sc in self.settings.sites]

    # -- staff, rota, credentials --

    def make_staff(self) -> None:
        rng = self.rng
        pw = hash_password(DEMO_PASSWORD)  # once: argon2 is slow on purpose
        joined = self.now - timedelta(days=420)
        left = self.now - timedelta(days=_DEACTIVATED_DAYS_AGO)
        rows = [{
            "username": s.username, "full_name": s.full_name,
            "email": f"{s.username}@staff.example.org", "password_hash": pw, "pin_hash": None,
            "active": s.active, "created_at": joined, "password_changed_at": joined,
            "deactivated_at": None if s.active else left,
        } for s in _STAFF]
        ids = self.insert(StaffUser, rows)
        self.staff = {s.username: i for s, i in zip(_STAFF, ids, strict=True)}
        self.insert(StaffRole, [{"staff_user_id": self.staff[s.username], "role": r}
                                for s in _STAFF for r in s.roles], ids=False)
        self.insert(StaffSite, [{"staff_user_id": self.staff[s.username], "site_id": self.cal[c].site_id}
                                for s in _STAFF for c in s.sites if c in self.cal], ids=False)
        self.summary.staff = len(rows)

        # Credentials: licences and life-support certificates, with expiry dates relative to today.
        manager = self.staff["manager"]
        creds = []

        def cred(user: str, kind: str, number: str, issuer: str, days: int) -> None:
            recorded = self.now - timedelta(days=rng.randint(60, 400))
            creds.append({
                "staff_user_id": self.staff[user], "kind": kind, "number": number, "issued_by": issuer,
                "expires_on": self.today + timedelta(days=days), "verified_by_id": manager,
                "verified_at": recorded, "recorded_at": recorded, "retired_at": None,
            })

        for s in _STAFF:
            n = rng.randint(100000, 999999)
            if "nurse" in s.roles:
                cred(s.username, "nursing_licence", f"RN{n}", "Board of Registration in Nursing",
                     rng.randint(200, 700))
                acls = -_ACLS_EXPIRED_DAYS_AGO if s.username == "nurse.duarte" else rng.randint(90, 600)
                bls = _BLS_EXPIRING_IN_DAYS if s.username == "nurse.kim" else rng.randint(90, 600)
                cred(s.username, "acls", f"ACLS-{n + 17}", "Resuscitation training centre", acls)
                cred(s.username, "bls", f"BLS-{n + 29}", "Resuscitation training centre", bls)
            if "prescriber" in s.roles:
                prefix = "NP" if s.username.startswith("np.") else "MD"
                board = "Board of Registration in " + ("Nursing" if prefix == "NP" else "Medicine")
                cred(s.username, "prescriber_licence", f"{prefix}{n}", board, rng.randint(300, 900))
                cred(s.username, "controlled_substance_registration", f"CSR-{n + 5}",
                     "State controlled-substance registry", rng.randint(150, 800))
                cred(s.username, "bls", f"BLS-{n + 29}", "Resuscitation training centre", rng.randint(90, 600))
                if s.username == "dr.lindqvist":
                    cred(s.username, "acls", f"ACLS-{n + 17}", "Resuscitation training centre", 400)
        self.insert(Credential, creds, ids=False)

        # Weekly rota and the concrete shifts it generates (site-local times, stored in UTC).
        valid_from = self.window_start - timedelta(days=30)
        patterns, self.on_shift = [], defaultdict(lambda: {"nurse": [], "prescriber": []})
        shifts = []
        day0, last = self.window_start, self.today + timedelta(days=SHIFT_DAYS_AHEAD)
        for s in _STAFF:
            role = "prescriber" if "prescriber" in s.roles else "nurse"
            until = None if s.active else (self.today - timedelta(days=_DEACTIVATED_DAYS_AGO))
            for code, days in s.rota:
                cal = self.cal[code]
                for day in days.split():
                    spans = cal.hours.get(day)
                    if not spans:
                        continue
                    pad = 15 if role == "nurse" else 0
                    start, end = spans[0][0] - pad, spans[-1][1] + pad
                    patterns.append({
                        "staff_user_id": self.staff[s.username], "site_id": cal.site_id, "role": role,
                        "weekday": WEEKDAYS.index(day), "start_time": _hhmm(start), "end_time": _hhmm(end),
                        "valid_from": valid_from, "valid_until": until,
                    })
            d = day0
            while d <= last:
                if until is None or d <= until:
                    for code, days in s.rota:
                        cal = self.cal[code]
                        day = WEEKDAYS[d.weekday()]
                        if day in days.split() and cal.is_open(d):
                            pad = 15 if role == "nurse" else 0
                            spans = cal.spans(d)
                            shifts.append({
                                "staff_user_id": self.staff[s.username], "site_id": cal.site_id, "role": role,
                                "starts_at": cal.at(d, spans[0][0] - pad), "ends_at": cal.at(d, spans[-1][1] + pad),
                                "source": "pattern",
                            })
                            may_dose = not (s.username == "nurse.duarte" and d >= self.today
                                            - timedelta(days=_ACLS_EXPIRED_DAYS_AGO))
                            if role == "prescriber" or may_dose:
                                self.on_shift[(code, d)][role].append(self.staff[s.username])
                d += timedelta(days=1)
        self.insert(ShiftPattern, patterns, ids=False)
        self.insert(Shift, shifts, ids=False)
        self.summary.shifts = len(shifts)
        self.site_prescriber = {"HBR": "dr.okafor", "NOR": "np.reyes"}

    # -- patients and what happens to them --

    def plan_patients(self) -> None:
        rng = self.rng
        patients: list[_Patient] = []
        for cohort, count, _code in _COHORTS:
            for i in range(count):
                if cohort in _TODAY_SITES:
                    site = _TODAY_SITES[cohort][i]
                elif cohort.startswith("nasal"):
                    site = "HBR"  # the REMS-certified site
                else:
                    site = "HBR" if rng.random() < 0.6 else "NOR"
                sex = rng.choices(("female", "male", "other"), weights=(55, 42, 3))[0]
                patients.append(_Patient(index=len(patients), cohort=cohort, site=site, sex=sex))
        self.patients = patients
        treated = [p for p in patients if p.cohort not in ("waitlist", "not_eligible")]
        # Outcomes over the treated: ~55 % respond (>= 50 % PHQ-9 drop), ~30 % remit (< 5).
        n = len([p for p in treated if p.cohort != "maintenance"])
        remit, respond = round(n * 0.30), round(n * 0.26)
        outcomes = ["remit"] * remit + ["respond"] * respond
        outcomes += ["slight" if i % 2 else "flat" for i in range(n - len(outcomes))]
        rng.shuffle(outcomes)
        it = iter(outcomes)
        used_names: set[tuple[str, str]] = set()
        for p in patients:
            while True:
                pool = _FEMALE if p.sex == "female" else _MALE if p.sex == "male" else _NEUTRAL
                given, family = rng.choice(pool), rng.choice(_FAMILY)
                if (given, family) not in used_names:
                    used_names.add((given, family))
                    p.given, p.family = given, family
                    break
            base_w = 72 if p.sex == "female" else 86 if p.sex == "male" else 78
            p.weight = round(min(140.0, max(48.0, rng.gauss(base_w, 13))), 1)
            p.sys = int(min(136, max(104, rng.gauss(122, 8))))
            p.dia = int(min(86, max(64, rng.gauss(77, 5))))
            p.hr = int(min(92, max(56, rng.gauss(73, 8))))
            p.bp_sens = rng.uniform(0.6, 1.5)
            p.diss_sens = rng.uniform(0.6, 1.35)
            p.pref_minute = rng.choice((8 * 60 + 30, 9 * 60 + 15, 10 * 60, 11 * 60, 12 * 60 + 30,
                                        13 * 60 + 30, 14 * 60 + 30, 15 * 60 + 15))
            p.phq_base = rng.randint(14, 24)
            p.gad_base = rng.randint(9, 19)
            p.prescriber = self.site_prescriber[p.site]
            p.mgkg = rng.choice((0.5, 0.5, 0.5, 0.5, 0.5, 0.4))
            p.nasal_dose = rng.choice((56, 84))
            if p in treated:
                p.outcome = "maintained" if p.cohort == "maintenance" else next(it)
                ratio = {"remit": None, "respond": rng.uniform(0.3, 0.48), "slight": rng.uniform(0.62, 0.85),
                         "flat": rng.uniform(0.88, 1.05), "maintained": None}[p.outcome]
                if p.outcome == "remit":
                    p.phq_final = rng.randint(1, 4)
                elif p.outcome == "maintained":
                    p.phq_base, p.phq_final = rng.randint(6, 11), rng.randint(3, 8)
                else:
                    p.phq_final = min(27, round(p.phq_base * ratio))
                g_ratio = (p.phq_final / p.phq_base) * rng.uniform(0.85, 1.15)
                p.gad_final = max(0, min(21, round(p.gad_base * g_ratio)))
                p.titrate = p.outcome in ("slight", "flat") and rng.random() < 0.5
        # A few patients with flags, hypertension and self-harm thoughts early on.
        iv_done = [p for p in patients if p.cohort == "iv_done"]
        for p in iv_done[:3]:
            p.flags.append(("substance_use", rng.choice((
                "Alcohol use disorder, in sustained remission (3 years); AUDIT-C 1",
                "Past cannabis use disorder, abstinent 2 years",
                "Past opioid misuse after surgery (2019), no use since; PDMP checked"))))
        for p in iv_done[3:5]:
            p.flags.append(("hypertension", "Essential hypertension, controlled on amlodipine 5 mg"))
            p.sys, p.dia = rng.randint(130, 136), rng.randint(82, 86)
        item9 = [p for p in iv_done if p.outcome != "remit" and not p.flags][:2]
        for n_sessions, p in zip((2, 1), item9, strict=False):
            p.item9_sessions = n_sessions
        wait = [p for p in patients if p.cohort == "waitlist"]
        wait[0].flags.append(("hypertension", "BP 158/96 at evaluation; on lisinopril, titration underway"))
        wait[1].flags.append(("substance_use", "DAST-10 score 4: regular cannabis use; agreed to reduce"))
        wait[0].evaluation = wait[1].evaluation = "deferred"
        wait[3].evaluation = wait[4].evaluation = "eligible"  # evaluated, consented, waiting for a chair
        wait[2].flags.append(("psychosis_history", "Referral letter mentions a brief psychotic episode "
                                                   "in 2016; needs review at evaluation"))
        bad = [p for p in patients if p.cohort == "not_eligible"]
        bad[0].flags.append(("psychosis_history", "Schizoaffective disorder, bipolar type"))
        bad[1].flags.append(("substance_use", "Active stimulant misuse (methamphetamine), DAST-10 score 7"))

    # -- placing sessions into chairs --

    def place_sessions(self) -> None:
        rng = self.rng
        # Today's board: spread each site's anchored sessions over its opening hours.
        today_pref: dict[str, list[int]] = {}
        for code, cal in self.cal.items():
            spans = cal.spans(self.today) or [(9 * 60, 17 * 60)]
            lo, hi = spans[0][0], spans[-1][1] - 100
            n = sum(1 for p in self.patients if p.cohort.endswith("_today") and p.site == code)
            step = max(15, ((hi - lo) // max(1, n)) // 15 * 15)
            slots = [lo + 15 + i * step for i in range(n)]
            rng.shuffle(slots)
            today_pref[code] = slots
        for p in self.patients:
            c = p.cohort
            if c in ("waitlist", "not_eligible"):
                continue
            if c.endswith("_today"):
                code = {"iv": "iv-induction", "nasal": "esketamine-nasal", "im": "im-ketamine"}[c.split("_")[0]]
                course = self.course(p, code, "induction")
                k = rng.randint(1, min(8, course.planned - 2))
                self.place_course(course, anchor=self.today, k=k, pref_today=today_pref[p.site].pop())
            elif c in ("iv_active", "nasal_active"):
                code = "iv-induction" if c == "iv_active" else "esketamine-nasal"
                course = self.course(p, code, "induction")
                anchor = self.today + timedelta(days=rng.choice((-1, 1, 2)))
                self.place_course(course, anchor=anchor, k=rng.randint(1, 3))
            elif c == "iv_new":
                course = self.course(p, "iv-induction", "induction")
                self.place_course(course, anchor=self.today + timedelta(days=rng.randint(2, 12)), k=0)
            elif c == "maintenance":
                last = self.today - timedelta(days=20 if p.index % 3 == 0 else rng.randint(5, 24))
                self.boosters(p, last_past=last)
            elif c in ("iv_done", "im_done", "nasal_done", "iv_stopped"):
                code = {"iv": "iv-induction", "im": "im-ketamine", "nasal": "esketamine-nasal"}[c.split("_")[0]]
                course = self.course(p, code, "induction")
                if c == "iv_stopped":
                    course.stop_after = 3
                latest = HISTORY_DAYS - 10 - (60 if code == "esketamine-nasal" else 0)
                start = self.window_start + timedelta(days=rng.randint(5, latest - 25))
                self.place_course(course, anchor=start, k=0)
                if c == "iv_done" and p.outcome in ("remit", "respond") and rng.random() < 0.75:
                    done = [v.day for v in course.visits if not v.ghost]
                    if done:
                        self.boosters(p, after=max(done))

    def course(self, p: _Patient, code: str, kind: str) -> _Course:
        proto = self.protocols[code]
        c = _Course(patient=p, protocol=proto, kind=kind, site=p.site, planned=proto.induction_sessions)
        p.courses.append(c)
        return c

    def offsets(self, proto: Protocol) -> list[int]:
        """Day offsets of a course's sessions from its first, following the protocol's schedule."""
        schedule = load_json(proto.schedule_json)
        if schedule.get("phases"):
            out, week = [], 0
            second = self.rng.choice((3, 3, 4))
            for phase in schedule["phases"]:
                for _ in range(phase["weeks"]):
                    out += [7 * week] if phase["per_week"] == 1 else [7 * week, 7 * week + second]
                    week += 1
            return out[: proto.induction_sessions]
        target = schedule.get("target_per_week", proto.max_per_week)
        gaps = (2, 2, 3) if target >= 3 else (3, 4, 3)
        out = [0]
        for _ in range(proto.induction_sessions - 1):
            out.append(out[-1] + self.rng.choice(gaps))
        return out

    def place_course(self, course: _Course, *, anchor: date, k: int, pref_today: int | None = None) -> None:
        """Book a course's sessions so that session `k` (0-based) falls on `anchor` (or the next open day).

        Sessions before `k` are placed backwards in time, those after it forwards; each keeps at least
        a day between sessions and the protocol's sessions-per-week; none is booked before the history
        window or beyond the booking horizon.
        """
        proto, p, cal = course.protocol, course.patient, self.cal[course.site]
        offs = self.offsets(proto)
        n = course.stop_after or len(offs)
        k = min(k, n - 1)
        targets = [anchor + timedelta(days=o - offs[k]) for o in offs[:n]]
        length = proto.pre_minutes + proto.infusion_minutes + proto.post_minutes
        gap = max(2, proto.min_days_between)
        placed: dict[int, date] = {}
        order = [k] + list(range(k - 1, -1, -1)) + list(range(k + 1, n))
        for i in order:
            direction = -1 if i < k else 1
            for step in range(8):
                d = targets[i] + timedelta(days=direction * step)
                if d > self.horizon or d < self.window_start:
                    break
                if not self.spacing_ok(placed, i, d, gap, proto.max_per_week):
                    continue
                pref = pref_today if (pref_today is not None and d == self.today) else p.pref_minute
                got = self.alloc.place(cal, d, p.index, length, pref)
                if got:
                    placed[i] = d
                    self.add_visit(course, i + 1, d, got, length)
                    break
        course.visits.sort(key=lambda v: v.start)

    @staticmethod
    def spacing_ok(placed: dict[int, date], i: int, d: date, gap: int, per_week: int) -> bool:
        for j, other in placed.items():
            if (j < i and (d - other).days < gap) or (j > i and (other - d).days < gap):
                return False
        days = sorted([*placed.values(), d])
        return all(sum(1 for x in days if w <= x < w + timedelta(days=7)) <= per_week
                   for w in (d - timedelta(days=s) for s in range(7)))

    def boosters(self, p: _Patient, *, after: date | None = None, last_past: date | None = None) -> None:
        """Single-session booster courses every 3-6 weeks, up to one booked in the future."""
        rng, proto = self.rng, self.protocols["iv-booster"]
        lo, hi = proto.min_days_between + 7, proto.max_days_between
        dates: list[date] = []
        if last_past is not None:  # a long-standing maintenance patient: back to the window start
            d = last_past
            while d >= self.window_start + timedelta(days=3):
                dates.insert(0, d)
                d -= timedelta(days=rng.randint(lo, hi - 8))
            nxt = last_past + timedelta(days=rng.randint(lo, hi - 8))
            dates.append(max(nxt, self.today + timedelta(days=4)))
        else:
            d = after + timedelta(days=rng.randint(lo, hi))
            while True:
                dates.append(d)
                if d > self.today:
                    break
                d += timedelta(days=rng.randint(lo, hi))
        cal = self.cal[p.site]
        length = proto.pre_minutes + proto.infusion_minutes + proto.post_minutes
        for target in dates:
            for step in range(7):
                d = target + timedelta(days=step)
                if d > self.horizon:
                    break
                got = self.alloc.place(cal, d, p.index, length, p.pref_minute)
                if got:
                    course = self.course(p, "iv-booster", "booster")
                    self.add_visit(course, 1, d, got, length)
                    break

    def add_visit(self, course: _Course, number: int, d: date, got: tuple[int, int], length: int,
                  ghost: str | None = None) -> _Visit:
        cal = self.cal[course.site]
        chair, minute = got
        start = cal.at(d, minute)
        v = _Visit(course=course, number=number, day=d, chair_id=chair, start=start,
                   end=start + timedelta(minutes=length), ghost=ghost)
        course.visits.append(v)
        return v

    # -- what happened (relative to now) --

    def settle_sessions(self) -> None:
        """Missed bookings, the clinical timeline of each session and its status at `now`."""
        rng = self.rng
        for p in self.patients:
            for course in p.courses:
                proto, cal = course.protocol, self.cal[course.site]
                length = proto.pre_minutes + proto.infusion_minutes + proto.post_minutes
                real = list(course.visits)
                # ~5 % of past bookings were missed (cancelled or no-show) and rebooked a day or two later.
                for idx, v in enumerate(real):
                    if v.day >= self.today or rng.random() > 0.055:
                        continue
                    prev = real[idx - 1].day if idx else self.window_start
                    for back in (1, 2, 3):
                        g = v.day - timedelta(days=back)
                        if g <= prev or g < self.window_start:
                            break
                        got = self.alloc.place(cal, g, p.index, length, p.pref_minute)
                        if got:
                            kind = "no_show" if rng.random() < 0.4 else "cancelled"
                            ghost = self.add_visit(course, v.number, g, got, length, ghost=kind)
                            ghost.status = kind
                            if kind == "no_show":
                                ghost.cancelled_at = ghost.start + timedelta(
                                    minutes=self.settings.sessions.no_show_grace_minutes)
                                ghost.cancel_reason = "Did not attend"
                            else:
                                ghost.cancelled_at = ghost.start - timedelta(hours=rng.randint(3, 60))
                                ghost.cancel_reason = rng.choice(_CANCEL_REASONS)
                            ghost.rebooked = v
                            break
                course.visits.sort(key=lambda v: v.start)
                first = course.visits[0].start if course.visits else None
                if first is not None:
                    lead = rng.randint(3, 9) if course.kind != "booster" else rng.randint(7, 18)
                    course.ordered_at = self.stamp((first - timedelta(days=lead)).astimezone(cal.zone).date(), cal)
                    course.ordered_at = min(course.ordered_at, first - timedelta(hours=2))
                for v in course.visits:
                    v.created_at = course.ordered_at + timedelta(minutes=rng.randint(2, 30))
                for v in course.visits:
                    if v.ghost:
                        # A cancellation comes after the booking and before the slot; the rebooking after it.
                        floor = v.created_at + timedelta(minutes=30)
                        if v.cancelled_at < floor:
                            v.cancelled_at = floor + (v.start - floor) / 2
                        v.rebooked.created_at = v.cancelled_at + timedelta(minutes=rng.randint(5, 60))
                        continue
                    self.timeline(v)
                self.course_status(course)

    def timeline(self, v: _Visit) -> None:
        rng, proto = self.rng, v.course.protocol
        cadence = load_json(proto.cadence_json)
        arrive = v.start + timedelta(minutes=rng.randint(-6, 5))
        dose_start = arrive + timedelta(minutes=proto.pre_minutes + rng.randint(-3, 4))
        dose_end = dose_start + timedelta(minutes=proto.infusion_minutes + (rng.randint(0, 3)
                                                                             if proto.route == "iv" else 0))
        anchor = dose_start if cadence.get("observation_from") == "dosing_start" else dose_end
        earliest = anchor + timedelta(minutes=proto.min_observation_minutes + rng.randint(0, 4))
        target = dose_end + timedelta(minutes=proto.post_minutes - rng.randint(0, 10))
        discharged = min(max(earliest, target), max(earliest, v.end))
        v.checked_in, v.dose_start, v.dose_end, v.discharged = arrive, dose_start, dose_end, discharged
        now = self.now
        if arrive > now:
            v.status = "booked"
        elif dose_start > now:
            v.status = "checked_in"
        elif dose_end > now:
            v.status = "dosing"
        elif discharged > now:
            v.status = "recovery"
        else:
            v.status = "discharged"
        if v.status != "booked" or v.day <= self.today:
            site_staff = self.on_shift.get((v.course.site, v.day)) or {"nurse": [], "prescriber": []}
            nurses = site_staff["nurse"] or [self.staff["nurse.brennan"]]
            v.nurse = nurses[rng.randrange(len(nurses))]
            pres = site_staff["prescriber"]
            v.prescriber = pres[0] if pres else self.staff[v.course.patient.prescriber]

    def course_status(self, course: _Course) -> None:
        real = [v for v in course.visits if not v.ghost]
        if not real:
            course.status = "cancelled"
            course.end_reason = "No session could be booked"
            return
        done = [v for v in real if v.status == "discharged"]
        started = [v for v in real if v.status != "booked"]
        if course.stop_after:
            course.status = "cancelled"
            course.ended_at = real[-1].discharged + timedelta(days=2)
            course.end_reason = ("Stopped after 3 sessions at the patient's request: dissociation felt "
                                 "distressing; referred back for other options")
        elif len(done) == len(real) and len(real) >= course.planned:
            course.status = "completed"
            course.ended_at = real[-1].discharged
        elif started:
            course.status = "active"
        else:
            course.status = "planned"

    # -- writing rows --

    def write_patients(self) -> None:
        rng = self.rng
        for p in self.patients:
            first = min((v.start for c in p.courses for v in c.visits), default=None)
            if p.cohort == "maintenance":
                p.referred = self.now - timedelta(days=rng.randint(420, 440))
                p.evaluated = p.referred + timedelta(days=rng.randint(7, 14))
            elif first is not None:
                ordered = min(c.ordered_at for c in p.courses if c.ordered_at)
                p.evaluated = ordered - timedelta(days=rng.randint(1, 8), minutes=rng.randint(0, 300))
                p.referred = p.evaluated - timedelta(days=rng.randint(7, 45))
            elif p.cohort == "waitlist":
                ago = rng.randint(1, 60)
                p.referred = self.stamp(self.today - timedelta(days=ago))
                if p.evaluation:
                    p.evaluated = max(p.referred + timedelta(minutes=30),
                                      self.stamp(self.today - timedelta(days=rng.randint(0, ago - 1))))
            else:
                p.referred = self.stamp(self.today - timedelta(days=rng.randint(30, 120)))
                p.evaluated = p.referred + timedelta(days=rng.randint(5, 15))
        order = sorted(self.patients, key=lambda p: (p.referred, p.index))
        mrn = rng.randint(1000, 1400)
        rows = []
        for p in order:
            mrn += rng.randint(1, 9)
            p.mrn = f"CS-{mrn:06d}"
            escort_given = rng.choice(_FEMALE + _MALE)
            escort_family = p.family if rng.random() < 0.5 else rng.choice(_FAMILY)
            allergies = "NKDA" if rng.random() < 0.85 else rng.choice(_ALLERGIES)
            rows.append({
                "mrn": p.mrn, "given_name": p.given, "family_name": p.family, "preferred_name": None,
                "date_of_birth": date(1950, 1, 1) + timedelta(days=rng.randint(0, (date(2004, 12, 31)
                                                                                   - date(1950, 1, 1)).days)),
                "sex": p.sex, "phone": self.phone(),
                "email": f"{p.given}.{p.family}{rng.randint(1, 99)}@example.org".lower(),
                "address": f"{rng.randint(2, 240)} {rng.choice(_STREETS)}, {rng.choice(_TOWNS)}",
                "escort_name": f"{escort_given} {escort_family} ({rng.choice(_RELATIONS)})",
                "escort_phone": self.phone(), "allergies": allergies,
                "home_site_id": self.cal[p.site].site_id, "created_at": p.referred,
                "created_by_id": self.staff["manager"], "updated_at": p.referred, "row_version": 1,
            })
        for p, i in zip(order, self.insert(Patient, rows), strict=True):
            p.id = i
        self.summary.patients = len(rows)
        self.write_patient_records()

    def phone(self) -> str:
        return f"({self.rng.choice(_AREA_CODES)}) 555-01{self.rng.randint(0, 99):02d}"

    def write_patient_records(self) -> None:
        rng = self.rng
        flags, consents, evals, waits, weights = [], [], [], [], []
        for p in self.patients:
            cal = self.cal[p.site]
            prescriber = self.staff[p.prescriber]
            nurse = self.staff["nurse.kim" if p.site == "HBR" else "nurse.osei"]
            for kind, note in p.flags:
                flags.append({"patient_id": p.id, "kind": kind, "note": note,
                              "set_at": p.referred + timedelta(days=1), "set_by_id": prescriber,
                              "cleared_at": None, "cleared_by_id": None, "clear_reason": None})
            treated = bool(p.courses)
            # Waitlist: everyone came through it; the untreated are still on it (or were removed).
            if p.cohort != "maintenance":
                status = {"waitlist": "waiting", "not_eligible": "removed"}.get(p.cohort, "scheduled")
                closed = None
                if status == "removed":
                    closed = p.evaluated + timedelta(hours=2)
                elif status == "scheduled":
                    closed = min(c.ordered_at for c in p.courses if c.ordered_at)
                waits.append({
                    "patient_id": p.id, "site_id": cal.site_id, "referred_at": p.referred,
                    "referred_by": rng.choice(_REFERRERS), "priority": rng.choice((1, 2, 2, 2, 3)),
                    "status": status, "closed_at": closed,
                    "note": {"waiting": "Awaiting evaluation and a first slot", "removed": "Not eligible"}.get(
                        status, "Course booked"),
                })
            if p.evaluated is not None:
                decision, reasons, contra, dast = "eligible", "Meets criteria; benefits and risks discussed", [], 0
                if p.cohort == "not_eligible":
                    decision = "not_eligible"
                    kind = p.flags[0][0]
                    contra = ["psychosis_history"] if kind == "psychosis_history" else ["active_substance_misuse"]
                    reasons = ("Psychotic disorder: ketamine contraindicated under clinic policy"
                               if kind == "psychosis_history" else
                               "Active stimulant misuse: not eligible until 6 months abstinent")
                    dast = 2 if kind == "psychosis_history" else 7
                elif p.cohort == "waitlist" and p.flags:
                    kind = p.flags[0][0]
                    if kind in ("hypertension", "substance_use"):
                        decision = "deferred"
                        contra = ["uncontrolled_hypertension"] if kind == "hypertension" else []
                        reasons = ("BP 158/96: re-evaluate once controlled (primary care informed)"
                                   if kind == "hypertension" else
                                   "DAST-10 score 4: re-evaluate in 3 months after reduced use")
                        dast = 1 if kind == "hypertension" else 4
                evals.append({
                    "patient_id": p.id, "prescriber_id": prescriber, "evaluated_at": p.evaluated,
                    "diagnosis": rng.choice(_DIAGNOSES),
                    "prior_treatments": ", ".join(rng.sample(_PRIOR, rng.randint(2, 4))),
                    "psychosis_history": any(k == "psychosis_history" for k, _ in p.flags),
                    "substance_use_history": next((n for k, n in p.flags if k == "substance_use"), None),
                    "substance_screen_score": dast if dast else rng.choice((0, 0, 0, 1, 2)),
                    "medical_history": next((n for k, n in p.flags if k == "hypertension"), "Nil significant"),
                    "contraindications_json": _json(contra),
                    "current_medications": "; ".join(rng.sample(_MEDICATIONS, rng.randint(1, 3))),
                    "baseline_systolic": 158 if decision == "deferred" and contra else p.sys + rng.randint(-4, 4),
                    "baseline_diastolic": 96 if decision == "deferred" and contra else p.dia + rng.randint(-3, 3),
                    "decision": decision, "reasons": reasons,
                    "valid_until": p.evaluated.date() + timedelta(days=365),
                })
                weights.append({"patient_id": p.id, "session_id": None, "weight_kg": p.weight,
                                "measured_at": p.evaluated, "recorded_by_id": prescriber,
                                "client_key": self.key()})
                if p.cohort == "maintenance":  # the yearly re-evaluation
                    again = self.stamp(self.today - timedelta(days=rng.randint(60, 120)), cal)
                    evals.append(dict(evals[-1], evaluated_at=again, valid_until=again.date()
                                      + timedelta(days=365), reasons="Annual re-evaluation: continue boosters"))
            if treated or p.evaluation == "eligible":
                consents += self.consents_for(p, nurse)
        self.insert(PatientFlag, flags, ids=False)
        self.insert(Consent, consents, ids=False)
        self.insert(EligibilityEvaluation, evals, ids=False)
        self.insert(WaitlistEntry, waits, ids=False)
        self.insert(WeightMeasurement, weights, ids=False)

    def consents_for(self, p: _Patient, nurse: int) -> list[dict[str, Any]]:
        rng = self.rng
        nasal = any(c.protocol.route == "intranasal" for c in p.courses)
        kind = "esketamine" if nasal else "ketamine"

        def row(signed: datetime, k: str = kind) -> dict[str, Any]:
            half = 1 if signed.month <= 6 else 2
            prefix = {"ketamine": "KET", "esketamine": "ESK", "rems_enrolment": "REMS"}[k]
            return {"patient_id": p.id, "kind": k, "text_version": f"{prefix}-{signed.year}.{half}",
                    "signed_at": signed, "witnessed_by_id": nurse,
                    "expires_at": signed + timedelta(days=365), "revoked_at": None, "revoke_reason": None,
                    "recorded_by_id": nurse, "recorded_at": signed + timedelta(minutes=rng.randint(2, 15))}

        if p.cohort == "maintenance":
            which = p.index % 3
            if which == 0:  # lapsed: expired a fortnight ago, a booster is booked
                return [row(self.now - timedelta(days=380, hours=rng.randint(0, 6)))]
            if which == 1:  # due for renewal within the month
                return [row(self.now - timedelta(days=350, hours=rng.randint(0, 6)))]
            return [row(self.now - timedelta(days=400)), row(self.now - timedelta(days=40, hours=3))]
        signed = p.evaluated + timedelta(hours=rng.randint(1, 30))
        first = min((v.start for c in p.courses for v in c.visits), default=None)
        if first is not None:
            signed = min(signed, first - timedelta(hours=1))
        signed = min(signed, self.now - timedelta(minutes=30))
        out = [row(signed)]
        if nasal:
            out.append(row(signed + timedelta(minutes=10), "rems_enrolment"))
        return out

    def write_courses_and_sessions(self) -> None:
        courses = [c for p in self.patients for c in p.courses if c.visits]
        rows = [{
            "patient_id": c.patient.id, "protocol_id": c.protocol.id,
            "prescriber_id": self.staff[c.patient.prescriber], "site_id": self.cal[c.site].site_id,
            "kind": c.kind, "status": c.status, "planned_sessions": c.planned, "ordered_at": c.ordered_at,
            "earliest_start": c.visits[0].day,
            "preferences_json": _json({"time": "morning" if c.patient.pref_minute < 720 else "afternoon"}),
            "ended_at": c.ended_at, "end_reason": c.end_reason,
        } for c in courses]
        for c, i in zip(courses, self.insert(TreatmentCourse, rows), strict=True):
            c.id = i
        self.summary.courses = len(rows)
        visits = [v for c in courses for v in c.visits]
        manager = self.staff["manager"]
        rows = []
        for v in visits:
            started = v.status not in ("booked", "cancelled", "no_show")
            rows.append({
                "course_id": v.course.id, "patient_id": v.course.patient.id,
                "site_id": self.cal[v.course.site].site_id, "chair_id": v.chair_id,
                "number_in_course": v.number, "starts_at": v.start, "ends_at": v.end, "status": v.status,
                "nurse_id": v.nurse, "prescriber_id": v.prescriber,
                "checked_in_at": v.checked_in if started else None,
                "dosing_started_at": v.dose_start if v.status in ("dosing", "recovery", "discharged") else None,
                "dosing_ended_at": v.dose_end if v.status in ("recovery", "discharged") else None,
                "discharged_at": v.discharged if v.status == "discharged" else None,
                "discharge_override_reason": None,
                "cancelled_at": v.cancelled_at, "cancel_reason": v.cancel_reason,
                "created_at": v.created_at, "created_by_id": manager,
                "row_version": _STATUS_VERSION[v.status],
            })
        for v, i in zip(visits, self.insert(TreatmentSession, rows), strict=True):
            v.id = i
        self.visits = visits
        self.summary.sessions = len(visits)
        self.summary.sessions_today = sum(1 for v in visits if v.day == self.today and not v.ghost)

    # -- the clinical record of each session --

    def write_clinical_records(self) -> None:
        rng = self.rng
        vitals, responses, items, doses, devices = [], [], [], [], []
        aes, alerts, weights, checklist = [], [], [], []
        lots = {"iv": [f"KET-24{rng.randint(100, 999)}" for _ in range(8)],
                "im": [f"KET-24{rng.randint(100, 999)}" for _ in range(8)],
                "intranasal": [f"SPR-25{rng.randint(100, 999)}" for _ in range(8)]}
        for v in self.visits:
            if v.ghost or v.status == "booked":
                continue
            course, p, proto = v.course, v.course.patient, v.course.protocol
            cadence = load_json(proto.cadence_json)
            nurse = v.nurse
            now = self.now

            # Weight and the symptom scales at check-in.
            weight = round(p.weight + rng.uniform(-0.8, 0.8), 1)
            if proto.route in ("iv", "im") and v.checked_in + timedelta(minutes=3) <= now:
                weights.append({"patient_id": p.id, "session_id": v.id, "weight_kg": weight,
                                "measured_at": v.checked_in + timedelta(minutes=3), "recorded_by_id": nurse,
                                "client_key": self.key()})
            phq, gad = self.symptoms(course, v)
            for scale, total, offset in (("PHQ-9", phq, 1), ("GAD-7", gad, 3)):
                at = v.checked_in + timedelta(minutes=offset)
                if at > now:
                    continue
                n_items, hi = (9, 3) if scale == "PHQ-9" else (7, 3)
                fixed = {}
                if scale == "PHQ-9":
                    early = course.kind == "induction" and v.number <= p.item9_sessions
                    fixed = {8: (2 if v.number == 1 and p.index % 2 else 1) if early else 0}
                values = _spread(rng, total, n_items, hi, fixed)
                responses.append(self.response(p, course, v, scale, at, sum(values), None, "self_report"))
                items.append((scale, values))
                if fixed.get(8):
                    alerts.append(("phq9", v, len(responses) - 1, at))

            # Vitals: baseline, the cadence's periodic checks, discharge.
            profile = self.bp_profile(v)
            until = int((v.discharged - v.dose_start).total_seconds() // 60)
            times: list[tuple[str, datetime]] = []
            if cadence.get("baseline", True):
                times.append(("baseline", min(v.checked_in + timedelta(minutes=rng.randint(4, 9)),
                                              v.dose_start - timedelta(minutes=2))))
            for phase, m in vitals_check_minutes(cadence, infusion_minutes=proto.infusion_minutes,
                                                 until_minute=until - 5):
                times.append((phase, v.dose_start + timedelta(minutes=m, seconds=rng.randint(0, 150))))
            if cadence.get("discharge", True):
                times.append(("discharge", v.discharged - timedelta(minutes=rng.randint(2, 5))))
            session_vitals = []
            for phase, at in times:
                if at > now:
                    continue
                minute = (at - v.dose_start).total_seconds() / 60
                sys_, dia_, hr = self.bp_at(p, profile, minute if phase != "baseline" else None)
                if phase == "discharge":  # discharge needs vitals back within the pre-dose limits
                    sys_, dia_ = min(sys_, 138), min(dia_, 88)
                row = {
                    "session_id": v.id, "patient_id": p.id, "phase": phase, "measured_at": at,
                    "recorded_at": self.before_now(at + timedelta(seconds=rng.randint(20, 150))),
                    "recorded_by_id": nurse, "systolic": sys_, "diastolic": dia_, "heart_rate": hr,
                    "spo2": rng.choices((95, 96, 97, 98, 99, 100), weights=(2, 5, 15, 30, 30, 18))[0],
                    "respiratory_rate": rng.randint(12, 18),
                    "temperature_c": round(rng.uniform(36.3, 37.2), 1) if phase == "baseline" else None,
                    "client_key": self.key(), "amends_id": None, "amendment_reason": None,
                }
                session_vitals.append(row)
            if profile["hypertensive"]:
                later = [r for r in session_vitals if r["phase"] in ("dosing", "recovery")]
                if later:
                    peak = max(later, key=lambda r: r["systolic"])
                    peak["systolic"] = rng.randint(182, 196)
                    peak["diastolic"] = min(peak["diastolic"] + 8, 108)
                    alerts.append(("bp", v, len(vitals) + session_vitals.index(peak), peak["measured_at"]))
                    if v.status == "discharged":
                        aes.append(self.adverse(v, "hypertension", peak["measured_at"], peak["systolic"]))
            vitals += session_vitals

            # In-session scores: dissociation (CADSS-6) and sedation (MOAA/S).
            peak_cadss = self.cadss_peak(v, p)
            for scale in ("CADSS-6", "MOAA/S"):
                for point in score_points(cadence, scale):
                    if point == "baseline":
                        at = v.dose_start - timedelta(minutes=rng.randint(2, 4))
                    elif point == "discharge":
                        at = v.discharged - timedelta(minutes=rng.randint(6, 9))
                    else:
                        at = v.dose_start + timedelta(minutes=int(point) + rng.randint(0, 3))
                    if at > now:
                        continue
                    if scale == "CADSS-6":
                        total = (rng.choices((0, 1, 2), weights=(60, 30, 10))[0] if point == "baseline" else
                                 rng.choices((0, 1, 2), weights=(50, 35, 15))[0] if point == "discharge" else
                                 peak_cadss)
                        values = _spread(rng, total, 6, 4, {})
                    else:
                        if point in ("baseline", "discharge"):
                            total = 5
                        elif peak_cadss >= 14:
                            total = rng.choice((3, 4, 4))
                        elif peak_cadss >= 9:
                            total = rng.choice((4, 4, 5))
                        else:
                            total = rng.choice((4, 5, 5, 5))
                        values = [total]
                    responses.append(self.response(p, course, v, scale, at, sum(values), nurse, "staff"))
                    items.append((scale, values))

            # The dose.
            if v.dose_start <= now:
                doses.append(self.dose(v, p, weight, lots))
                if proto.route == "intranasal":
                    n_devices = int(doses[-1]["dose_mg"] // 28)
                    for d in range(n_devices):
                        at = v.dose_start + timedelta(minutes=5 * d)
                        if at <= now:
                            devices.append((len(doses) - 1, d + 1, at, nurse))

            # Other adverse events, now and then; an occasional late-vitals alert.
            if v.status == "discharged":
                r = rng.random()
                kind = ("nausea" if r < 0.035 else "anxiety" if r < 0.055 else "headache" if r < 0.065
                        else "dizziness" if r < 0.075 else None)
                if kind:
                    onset = v.dose_start + timedelta(minutes=rng.randint(10, 40))
                    aes.append(self.adverse(v, kind, onset, None))
                if rng.random() < 0.012 and len(session_vitals) > 3:
                    alerts.append(("overdue", v, len(vitals) - len(session_vitals) + 2,
                                   session_vitals[2]["measured_at"] - timedelta(minutes=2)))

            # Today's started sessions have their pre-dose checklist.
            if v.day == self.today:
                checklist += self.checklist(v, p, weight)

        vitals_ids = self.insert(VitalsReading, vitals)
        response_ids = self.insert(ScaleResponse, responses)
        answer_rows = [{"response_id": rid, "item_number": n + 1, "scale": scale, "value": value}
                       for rid, (scale, values) in zip(response_ids, items, strict=True)
                       for n, value in enumerate(values)]
        self.insert(ScaleItemAnswer, answer_rows, ids=False)
        dose_ids = self.insert(DoseAdministration, doses)
        self.insert(DoseEvent, [{"dose_id": dose_ids[i], "kind": "device", "at": at, "reason": None,
                                 "device_number": n, "recorded_by_id": nurse, "client_key": self.key()}
                                for i, n, at, nurse in devices], ids=False)
        self.insert(AdverseEvent, aes, ids=False)
        self.insert(WeightMeasurement, weights, ids=False)
        self.insert(ChecklistEntry, checklist, ids=False)
        alert_rows = [self.alert(kind, v, vitals_ids, response_ids, vitals, idx, at)
                      for kind, v, idx, at in alerts]
        self.insert(Alert, [a for a in alert_rows if a], ids=False)
        s = self.summary
        s.vitals, s.scale_responses, s.doses = len(vitals), len(responses), len(doses)
        s.adverse_events, s.alerts = len(aes), len([a for a in alert_rows if a])

    def response(self, p: _Patient, course: _Course, v: _Visit, scale: str, at: datetime, total: int,
                 by: int | None, source: str) -> dict[str, Any]:
        return {"patient_id": p.id, "course_id": course.id, "session_id": v.id, "scale": scale,
                "measured_at": at,
                "recorded_at": self.before_now(at + timedelta(seconds=self.rng.randint(5, 90))),
                "recorded_by_id": by, "source": source, "total": total, "client_key": self.key(),
                "amends_id": None, "amendment_reason": None}

    def symptoms(self, course: _Course, v: _Visit) -> tuple[int, int]:
        """PHQ-9 and GAD-7 totals before this session (the course's trajectory plus noise)."""
        rng, p = self.rng, course.patient
        if course.kind == "booster":
            if p.outcome == "maintained":
                return rng.randint(4, 10), rng.randint(3, 9)
            # Symptoms creep back between boosters; that is why they are given.
            return min(27, p.phq_final + rng.randint(1, 5)), min(21, p.gad_final + rng.randint(0, 4))
        n = course.planned
        i = v.number - 1
        frac = (1 - math.exp(-3.0 * i / max(1, n - 1))) / (1 - math.exp(-3.0))
        if i == 0:
            return p.phq_base, p.gad_base
        if i == n - 1:
            return p.phq_final, p.gad_final
        phq = p.phq_base + (p.phq_final - p.phq_base) * frac + rng.gauss(0, 1.2)
        gad = p.gad_base + (p.gad_final - p.gad_base) * frac + rng.gauss(0, 1.0)
        return max(0, min(27, round(phq))), max(0, min(21, round(gad)))

    def bp_profile(self, v: _Visit) -> dict[str, Any]:
        """How this session's blood pressure moves: ketamine's rise and settling."""
        rng, p, route = self.rng, v.course.patient, v.course.protocol.route
        early = v.course.kind == "induction" and v.number <= 3
        hypertensive = rng.random() < (0.025 if early else 0.008)
        rise = max(3.0, rng.gauss(16, 5)) * p.bp_sens * (1.12 if early else 1.0)
        peak, half_life = {"iv": (35, 15), "im": (20, 15), "intranasal": (40, 25)}[route]
        return {"sys": rise, "dia": rise * rng.uniform(0.6, 0.8), "hr": rng.uniform(3, 10),
                "peak": peak, "half_life": half_life, "hypertensive": hypertensive}

    def bp_at(self, p: _Patient, prof: dict[str, Any], minute: float | None) -> tuple[int, int, int]:
        rng = self.rng
        if minute is None or minute <= 0:
            f = 0.0
        elif minute <= prof["peak"]:
            f = math.sin(math.pi / 2 * minute / prof["peak"])
        else:
            f = math.exp(-(minute - prof["peak"]) * math.log(2) / prof["half_life"])
        sys_ = round(p.sys + prof["sys"] * f + rng.gauss(0, 4))
        dia = round(p.dia + prof["dia"] * f + rng.gauss(0, 3))
        hr = round(p.hr + prof["hr"] * f + rng.gauss(0, 3))
        sys_ = max(92, min(sys_, 178 if not prof["hypertensive"] else 198))
        if minute is None:
            sys_ = min(sys_, 139)
        dia = max(50, min(dia, sys_ - 25, 109 if minute is not None else 89))
        return sys_, dia, max(52, min(hr, 115))

    def cadss_peak(self, v: _Visit, p: _Patient) -> int:
        proto = v.course.protocol
        dose = p.nasal_dose / 112 if proto.route == "intranasal" else self.mgkg(v)
        fade = 0.85 if v.course.kind == "booster" else 1 - 0.03 * (v.number - 1)
        mu = 11 * (dose / 0.5) * p.diss_sens * fade
        return max(4, min(18, round(self.rng.gauss(mu, 2))))

    def mgkg(self, v: _Visit) -> float:
        p = v.course.patient
        if p.titrate and v.course.kind == "induction":
            return 0.75 if v.number >= 5 else 0.6 if v.number >= 3 else p.mgkg
        return p.mgkg

    def dose(self, v: _Visit, p: _Patient, weight: float, lots: dict[str, list[str]]) -> dict[str, Any]:
        proto = v.course.protocol
        lot_list = lots[proto.route]
        lot = lot_list[min(len(lot_list) - 1, max(0, (v.day - self.window_start).days // 25))]
        row = {"session_id": v.id, "route": proto.route, "lot_number": lot, "started_at": v.dose_start,
               "stopped_at": v.dose_end if v.dose_end <= self.now else None,
               "administered_by_id": v.nurse,
               "recorded_at": self.before_now(v.dose_start + timedelta(minutes=1)),
               "client_key": self.key(), "amends_id": None, "amendment_reason": None}
        if proto.route == "intranasal":
            mg = 56 if v.number == 1 else p.nasal_dose
            return row | {"weight_kg": None, "mg_per_kg": None, "dose_mg": float(mg),
                          "concentration_mg_per_ml": None, "rate_ml_per_h": None}
        mgkg = self.mgkg(v)
        mg = round(weight * mgkg, 1)
        if proto.route == "im":
            return row | {"weight_kg": weight, "mg_per_kg": mgkg, "dose_mg": mg,
                          "concentration_mg_per_ml": 50.0, "rate_ml_per_h": None}
        # IV: the dose is added to a 100 mL bag and run over the infusion time.
        return row | {"weight_kg": weight, "mg_per_kg": mgkg, "dose_mg": mg,
                      "concentration_mg_per_ml": round(mg / 100, 4),
                      "rate_ml_per_h": round(100 * 60 / proto.infusion_minutes, 1)}

    def adverse(self, v: _Visit, kind: str, onset: datetime, systolic: int | None) -> dict[str, Any]:
        rng, route = self.rng, v.course.protocol.route
        severity = "moderate" if kind == "hypertension" or rng.random() < 0.15 else "mild"
        actions = {
            "hypertension": (f"Systolic {systolic} mmHg: infusion slowed, rechecked after 5 minutes, "
                             "prescriber informed" if route == "iv" else
                             f"Systolic {systolic} mmHg: rechecked after 5 minutes, prescriber informed"),
            "nausea": "Ondansetron 4 mg " + ("IV" if route == "iv" else "orally disintegrating tablet"),
            "anxiety": "Reassurance, lights dimmed, music; no medication needed",
            "headache": "Acetaminophen 500 mg by mouth after dosing",
            "dizziness": "Remained seated; resolved before discharge",
        }
        resolved = min(onset + timedelta(minutes=rng.randint(10, 40)), v.discharged)
        return {"session_id": v.id, "patient_id": v.course.patient.id, "kind": kind, "description": None,
                "severity": severity, "onset_at": onset, "resolved_at": max(resolved, onset),
                "action_taken": actions[kind], "outcome": "resolved", "serious": False, "reportable": False,
                "reported_at": None, "reported_by_id": None, "recorded_by_id": v.nurse,
                "recorded_at": onset + timedelta(minutes=rng.randint(3, 15)), "client_key": self.key(),
                "amends_id": None, "amendment_reason": None}

    def alert(self, kind: str, v: _Visit, vitals_ids: list[int], response_ids: list[int],
              vitals: list[dict[str, Any]], idx: int, at: datetime) -> dict[str, Any] | None:
        rng = self.rng
        base = {"site_id": self.cal[v.course.site].site_id, "session_id": v.id,
                "patient_id": v.course.patient.id, "recipient_id": v.prescriber}
        raised = at + timedelta(minutes=1)
        acked = raised + timedelta(minutes=rng.randint(1, 4))
        if acked > self.now:
            return None  # only settled alerts in the demo
        if kind == "bp":
            reading = vitals[idx]
            return base | {
                "kind": "bp_high", "priority": "medium", "cause_table": "vitals_reading",
                "cause_id": vitals_ids[idx],
                "message": f"Systolic {reading['systolic']} mmHg during the session (limit 180): recheck in 5 min",
                "raised_at": raised, "acknowledged_at": acked, "acknowledged_by_id": v.nurse,
                "action": "pause_or_slow" if v.course.protocol.route == "iv" else "continue_recheck",
                "action_note": "Rechecked after 5 minutes: settling; prescriber informed",
                "dedupe_key": f"bp_high:vitals_reading:{vitals_ids[idx]}",
            }
        if kind == "phq9":
            return base | {
                "kind": "phq9_item9", "priority": "high", "cause_table": "scale_response",
                "cause_id": response_ids[idx],
                "message": "PHQ-9 item 9 above 0 (thoughts of self-harm): prescriber review before dosing",
                "raised_at": raised, "acknowledged_at": acked, "acknowledged_by_id": v.nurse,
                "action": "prescriber_called",
                "action_note": "Prescriber reviewed: passive thoughts, no plan or intent; safety plan "
                               "updated; cleared to dose",
                "dedupe_key": f"phq9_item9:scale_response:{response_ids[idx]}",
            }
        minute = int((at - v.dose_start).total_seconds() // 60)
        return base | {
            "kind": "vitals_overdue", "priority": "medium", "cause_table": "treatment_session",
            "cause_id": v.id, "message": "Vitals check overdue by 5 minutes",
            "raised_at": raised, "acknowledged_at": acked, "acknowledged_by_id": v.nurse,
            "action": "dismissed", "action_note": "Reading taken late: patient was in the restroom",
            "dedupe_key": f"vitals_overdue:treatment_session:{v.id}:{minute}",
        }

    def checklist(self, v: _Visit, p: _Patient, weight: float) -> list[dict[str, Any]]:
        answers = [("consent_current", "yes"), ("escort_confirmed", "yes"), ("fasting_confirmed", "yes"),
                   ("interacting_medications", "none today")]
        if v.course.protocol.route != "intranasal":
            answers.append(("weight_today", f"{weight} kg"))
        out = []
        for n, (item, answer) in enumerate(answers):
            at = v.checked_in + timedelta(minutes=1 + n)
            if at <= self.now:
                out.append({"session_id": v.id, "item": item, "answer": answer, "decided_by_id": None,
                            "recorded_by_id": v.nurse, "recorded_at": at, "client_key": self.key(),
                            "amends_id": None, "amendment_reason": None})
        return out


def _spread(rng: random.Random, total: int, n: int, hi: int, fixed: dict[int, int]) -> list[int]:
    """Item answers (each 0..hi) summing to `total`, with some items fixed (0-based index -> value)."""
    values = [0] * n
    for i, val in fixed.items():
        values[i] = val
    free = [i for i in range(n) if i not in fixed]
    remaining = max(0, min(total - sum(values), hi * len(free)))
    while remaining:
        i = rng.choice([j for j in free if values[j] < hi])
        values[i] += 1
        remaining -= 1
    return values


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def count_rows(db: Session, model: type[SQLModel]) -> int:
    """Rows in a table."""
    return db.exec(select(func.count()).select_from(model)).one()
