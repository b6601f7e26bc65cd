"""The waitlist: referred patients awaiting a first course, per site, and who could take a freed slot.

Order: priority (urgent, routine, flexible), then the longest wait. A slot's candidates are the waiting
patients of the site, those ready for a course first (a current evaluation finding them eligible and a
current consent: `clinic.sessions.booking.readiness_problems`, the same gate as ordering a course), then
the others with what is missing. Without clinical detail (clinic managers) only ready / not ready shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.permissions import allowed
from clinic.errors import Conflict, Forbidden, InvalidInput, NotFound
from clinic.patients.models import Patient, PatientFlag, WaitlistEntry
from clinic.sessions.booking import readiness_problems
from clinic.sessions.models import Protocol, Site, TreatmentSession
from clinic.vocab import INACTIVE_SESSION_STATUSES, WAITLIST_STATUSES

PRIORITIES = {"urgent": 1, "routine": 2, "flexible": 3}  # stored as 1–3 so that it sorts
PRIORITY_LABELS = {1: "Urgent", 2: "Routine", 3: "Flexible"}
PRIORITY_CODES = {v: k for k, v in PRIORITIES.items()}
OPEN_STATUSES = ("waiting", "offered")
CLOSED_STATUSES = ("scheduled", "removed")
# Which status may follow which. "removed" is final: a patient referred again gets a new entry.
TRANSITIONS = {
    "waiting": ("offered", "scheduled", "removed"),
    "offered": ("waiting", "scheduled", "removed"),  # back to waiting: the offer was declined
    "scheduled": ("waiting", "removed"),  # the course fell through before it started
    "removed": (),
}
DEFAULT_SLOT_PROTOCOL = "iv-induction"  # whose consent kind readiness checks when none is named


# --- pure rules ---------------------------------------------------------------------------------


def wait_days(referred_at: datetime, today: date, zone: ZoneInfo) -> int:
    """Whole days waited so far, counted in the site's calendar (0 on the day of referral)."""
    return max(0, (today - referred_at.astimezone(zone).date()).days)


def status_change_problem(current: str, new: str, reason: str | None) -> dict[str, str]:
    """Why an entry cannot move from `current` to `new` (as {field: message}), or {}."""
    if new == current:
        return {"status": f"The entry is already {WAITLIST_STATUSES[current].lower()}."}
    if not TRANSITIONS.get(current):
        return {"status": f"A {WAITLIST_STATUSES[current].lower()} entry is closed; add the patient to the waitlist "
                          "again instead."}
    if new not in TRANSITIONS[current]:
        allowed_next = ", ".join(WAITLIST_STATUSES[s].lower() for s in TRANSITIONS[current])
        return {"status": f"A {WAITLIST_STATUSES[current].lower()} entry can become: {allowed_next}."}
    if new == "removed" and len((reason or "").strip()) < 3:
        return {"reason": "Say why the patient is taken off the waitlist."}
    return {}


def note_with(note: str | None, line: str, limit: int = 1000) -> str:
    """The note with a line added at the end; the oldest text gives way when the note is full."""
    text = f"{note.rstrip()}\n{line}" if note else line
    return text[-limit:]


# --- inputs -------------------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


class WaitlistAdd(_Input):
    patient_id: int
    site_id: int
    referred_by: str | None = Field(default=None, max_length=200, description="Referring clinician or service")
    referred_on: date | None = Field(default=None, description="Day of referral (clinic's zone); empty = today")
    priority: Literal["urgent", "routine", "flexible"] = "routine"
    note: str | None = Field(default=None, max_length=1000,
                             description="Administrative note, visible to everyone who sees the waitlist")


class StatusChange(_Input):
    status: str = Field(description="waiting, offered, scheduled or removed")
    reason: str | None = Field(default=None, max_length=500, description="Required when removing")

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in WAITLIST_STATUSES:
            raise ValueError(f"choose one of: {', '.join(WAITLIST_STATUSES)}")
        return v


class WaitlistQuery(_Input):
    site_id: int | None = Field(default=None, description="One site; empty = every site")
    status: Literal["open", "all", "waiting", "offered", "scheduled", "removed"] = "open"


class SlotQuery(_Input):
    site_id: int
    start: datetime = Field(description="When the freed slot starts (with a time zone, e.g. 2026-12-01T14:00:00Z)")
    protocol_id: int | None = Field(default=None, description="The protocol the slot is for; "
                                                              "empty = IV ketamine induction")

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-01T14:00:00Z)")
        return v.astimezone(UTC)


class SlotForm(_Input):
    """The slot finder on the waitlist page: a day and a time in the site's zone."""

    site_id: int
    day: date
    at: time
    protocol_id: int | None = None


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitlistRow:
    entry: WaitlistEntry
    patient: Patient
    site: Site
    wait_days: int
    flags: list[str] = field(default_factory=list)  # open flag kinds (only with clinical detail)

    @property
    def priority(self) -> str:
        return PRIORITY_CODES[self.entry.priority]


@dataclass(frozen=True)
class Candidate:
    """A waiting patient who might take a freed slot."""

    entry_id: int
    patient_id: int
    mrn: str
    name: str
    priority: str
    wait_days: int
    ready: bool
    missing: list[str]  # what stops a course being ordered; empty without clinical detail
    busy: bool  # already booked at an overlapping time
    flags: list[str]


# --- services -----------------------------------------------------------------------------------


def _may_manage(actor: Actor) -> None:
    if not allowed(actor.roles, "waitlist.manage"):
        raise Forbidden("Only a clinic manager or a prescriber can change the waitlist.")


def active_site(db: Session, site_id: int, field_name: str = "site_id") -> Site:
    site = db.get(Site, site_id)
    if site is None or not site.active:
        raise InvalidInput("Choose an active site.", fields={field_name: "no such active site"})
    return site


def add(db: Session, actor: Actor, data: WaitlistAdd, *, now: datetime) -> WaitlistEntry:
    """Put a referred patient on a site's waitlist (one open entry per patient and site). Audited."""
    _may_manage(actor)
    if db.get(Patient, data.patient_id) is None:
        raise NotFound(f"No patient with id {data.patient_id}.")
    site = active_site(db, data.site_id)
    zone = ZoneInfo(site.time_zone)
    today = now.astimezone(zone).date()
    if data.referred_on and data.referred_on > today:
        raise InvalidInput("The referral date is in the future.", fields={"referred_on": "cannot be in the future"})
    if data.referred_on and data.referred_on < today - timedelta(days=3 * 365):
        raise InvalidInput("The referral date is more than 3 years ago.", fields={"referred_on": "too long ago"})
    already = db.exec(select(WaitlistEntry).where(WaitlistEntry.patient_id == data.patient_id,
                                                  WaitlistEntry.site_id == site.id,
                                                  WaitlistEntry.status.in_(OPEN_STATUSES))).first()
    if already:
        raise Conflict(f"The patient is already on the {site.name} waitlist.",
                       fields={"site_id": "already waiting at this site"})
    referred_at = now if not data.referred_on or data.referred_on == today else \
        datetime.combine(data.referred_on, time(0), zone).astimezone(UTC)
    entry = WaitlistEntry(patient_id=data.patient_id, site_id=site.id, referred_at=referred_at,
                          referred_by=data.referred_by, priority=PRIORITIES[data.priority], status="waiting",
                          note=data.note)
    db.add(entry)
    db.flush()
    audit.record(db, actor, "create", "waitlist_entry", entry.id, patient_id=data.patient_id, at=now,
                 after=audit.snapshot(entry))
    db.commit()
    return entry


def change_status(db: Session, actor: Actor, entry_id: int, data: StatusChange, *, now: datetime) -> WaitlistEntry:
    """Offer, schedule, put back or remove (with a reason). The reason is kept in the note. Audited."""
    _may_manage(actor)
    entry = get(db, entry_id)
    problems = status_change_problem(entry.status, data.status, data.reason)
    if problems:
        raise InvalidInput(next(iter(problems.values())), fields=problems)
    before = audit.snapshot(entry)
    site = db.get(Site, entry.site_id)
    day = now.astimezone(ZoneInfo(site.time_zone)).date().isoformat()
    if data.reason:
        entry.note = note_with(entry.note, f"{WAITLIST_STATUSES[data.status]} {day}: {data.reason}")
    entry.status = data.status
    entry.closed_at = now if data.status in CLOSED_STATUSES else None
    db.add(entry)
    b, a = audit.diff(before, audit.snapshot(entry))
    audit.record(db, actor, "update", "waitlist_entry", entry.id, patient_id=entry.patient_id, at=now,
                 before=b, after=a, detail=data.reason)
    db.commit()
    return entry


def get(db: Session, entry_id: int) -> WaitlistEntry:
    entry = db.get(WaitlistEntry, entry_id)
    if entry is None:
        raise NotFound(f"No waitlist entry with id {entry_id}.")
    return entry


def _open_flags(db: Session, patient_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if patient_ids:
        q = select(PatientFlag).where(PatientFlag.patient_id.in_(patient_ids), PatientFlag.cleared_at.is_(None))
        for f in db.exec(q):
            out.setdefault(f.patient_id, []).append(f.kind)
    return out


def _rows(db: Session, *where, now: datetime, clinical_detail: bool) -> list[WaitlistRow]:
    found = list(db.exec(select(WaitlistEntry, Patient, Site).join(Patient, Patient.id == WaitlistEntry.patient_id)
                         .join(Site, Site.id == WaitlistEntry.site_id).where(*where)))
    flags = _open_flags(db, [e.patient_id for e, _, _ in found]) if clinical_detail else {}
    rows = []
    for entry, patient, site in found:
        zone = ZoneInfo(site.time_zone)
        rows.append(WaitlistRow(entry, patient, site, wait_days(entry.referred_at, now.astimezone(zone).date(), zone),
                                sorted(flags.get(patient.id, []))))
    return sorted(rows, key=lambda r: (r.entry.status not in OPEN_STATUSES, r.entry.priority, r.entry.referred_at,
                                       r.entry.id))


def entries(db: Session, actor: Actor, query: WaitlistQuery, *, now: datetime,
            clinical_detail: bool = True) -> list[WaitlistRow]:
    """The waitlist: open entries first, by priority then longest wait. The read is audited."""
    where = []
    if query.site_id is not None:
        active_site(db, query.site_id)
        where.append(WaitlistEntry.site_id == query.site_id)
    if query.status == "open":
        where.append(WaitlistEntry.status.in_(OPEN_STATUSES))
    elif query.status != "all":
        where.append(WaitlistEntry.status == query.status)
    rows = _rows(db, *where, now=now, clinical_detail=clinical_detail)
    audit.record(db, actor, "view", "waitlist", query.site_id, at=now,
                 detail=f"status={query.status} -> {len(rows)} entries")
    db.commit()
    return rows


def for_patient(db: Session, patient_id: int, *, now: datetime) -> list[WaitlistRow]:
    """A patient's waitlist entries (open first). Not audited on its own: shown within the patient page."""
    return _rows(db, WaitlistEntry.patient_id == patient_id, now=now, clinical_detail=False)


def slot_protocol(db: Session, protocol_id: int | None) -> Protocol:
    """The protocol a freed slot is for: the one named, else the active IV induction (else any active one)."""
    if protocol_id is not None:
        protocol = db.get(Protocol, protocol_id)
        if protocol is None or not protocol.active:
            raise InvalidInput("Choose an active protocol.", fields={"protocol_id": "no such active protocol"})
        return protocol
    protocol = db.exec(select(Protocol).where(Protocol.active)
                       .order_by((Protocol.code != DEFAULT_SLOT_PROTOCOL), Protocol.id)).first()
    if protocol is None:
        raise InvalidInput("No protocol is in use; add one first.", fields={"protocol_id": "no active protocol"})
    return protocol


def candidates_for_slot(db: Session, site_id: int, start: datetime, now: datetime, *,
                        protocol_id: int | None = None, clinical_detail: bool = True) -> list[Candidate]:
    """Who on the site's waitlist could take a slot starting at `start` (aware datetime).

    Waiting patients (not those already offered a slot) who are ready come first, then those who are
    not, each group by priority then longest wait. `missing` says what stops a course being ordered
    (only with `clinical_detail`); `busy` marks a patient already booked at an overlapping time.
    Nothing is written, so the day board can call it freely.
    """
    site = active_site(db, site_id)
    protocol = slot_protocol(db, protocol_id)
    zone = ZoneInfo(site.time_zone)
    today = now.astimezone(zone).date()
    found = list(db.exec(select(WaitlistEntry, Patient).join(Patient, Patient.id == WaitlistEntry.patient_id)
                         .where(WaitlistEntry.site_id == site.id, WaitlistEntry.status == "waiting")))
    ids = [p.id for _, p in found]
    end = start + timedelta(minutes=protocol.chair_minutes)
    busy = set()
    if ids:
        busy = set(db.exec(select(TreatmentSession.patient_id).where(
            TreatmentSession.patient_id.in_(ids), TreatmentSession.status.not_in(INACTIVE_SESSION_STATUSES),
            TreatmentSession.starts_at < end, TreatmentSession.ends_at > start)))
    flags = _open_flags(db, ids) if clinical_detail else {}
    out = []
    for entry, patient in found:
        problems = readiness_problems(db, patient.id, protocol, now=now, zone=zone)
        out.append(Candidate(
            entry_id=entry.id, patient_id=patient.id, mrn=patient.mrn, name=patient.display_name,
            priority=PRIORITY_CODES[entry.priority], wait_days=wait_days(entry.referred_at, today, zone),
            ready=not problems and patient.id not in busy, missing=problems if clinical_detail else [],
            busy=patient.id in busy, flags=sorted(flags.get(patient.id, []))))
    return sorted(out, key=lambda c: (not c.ready, PRIORITIES[c.priority], -c.wait_days, c.entry_id))
