"""Patients: register, find, view, change; flags and consents. Every read of a patient's record and
every change is audited in the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.errors import Conflict, InvalidInput, NotFound
from clinic.patients.models import Consent, Patient, PatientFlag, WeightMeasurement
from clinic.patients.rules import ConsentState, consent_status, parse_search
from clinic.patients.schemas import ConsentIn, FlagClear, FlagIn, PatientIn, PatientQuery, PatientUpdate
from clinic.sessions.models import Site


@dataclass(frozen=True)
class PatientPage:
    patients: list[Patient]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    flags: list[PatientFlag]
    consents: list[ConsentState]
    consent_rows: list[Consent]
    latest_weight: WeightMeasurement | None
    home_site: Site | None


def _check_site(db: Session, site_id: int | None) -> None:
    if site_id is not None and db.get(Site, site_id) is None:
        raise InvalidInput("Unknown site.", fields={"home_site_id": f"no site with id {site_id}"})


def _find_duplicate(db: Session, data: PatientIn, exclude_id: int | None = None) -> Patient | None:
    q = select(Patient).where(
        func.lower(Patient.family_name) == data.family_name.lower(),
        func.lower(Patient.given_name) == data.given_name.lower(),
        Patient.date_of_birth == data.date_of_birth,
    )
    if exclude_id is not None:
        q = q.where(Patient.id != exclude_id)
    return db.exec(q).first()


def register(db: Session, actor: Actor, data: PatientIn, *, now: datetime) -> Patient:
    """Register a new patient; refuses a second record for the same name and date of birth."""
    _check_site(db, data.home_site_id)
    dup = _find_duplicate(db, data)
    if dup:
        raise Conflict(f"A patient with this name and date of birth is already registered ({dup.mrn}).",
                       fields={"family_name": f"already registered as {dup.mrn}"})
    if data.mrn and db.exec(select(Patient.id).where(Patient.mrn == data.mrn.upper())).first():
        raise Conflict(f"The record number {data.mrn.upper()} is taken.", fields={"mrn": "already in use"})
    values = data.model_dump(exclude={"weight_kg", "mrn"})
    patient = Patient(**values, mrn=(data.mrn or f"tmp-{uuid.uuid4().hex[:20]}").upper(),
                      created_at=now, updated_at=now, created_by_id=actor.user_id)
    db.add(patient)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict("This patient could not be saved because it clashes with another record.") from exc
    if not data.mrn:
        patient.mrn = f"CS-{patient.id:06d}"
        db.add(patient)
    if data.weight_kg is not None:
        db.add(WeightMeasurement(patient_id=patient.id, weight_kg=data.weight_kg, measured_at=now,
                                 recorded_by_id=actor.user_id))
    db.flush()
    audit.record(db, actor, "create", "patient", patient.id, patient_id=patient.id,
                 after=audit.snapshot(patient) | ({"weight_kg": data.weight_kg} if data.weight_kg else {}))
    db.commit()
    return patient


def update(db: Session, actor: Actor, patient_id: int, data: PatientUpdate, *, now: datetime) -> Patient:
    """Change a patient's details. A save based on an outdated version is refused, not merged."""
    patient = _get(db, patient_id)
    if data.row_version != patient.row_version:
        raise Conflict("Someone else changed this patient since you opened the form. Nothing was saved; "
                       "reload to see their change, then make yours again.")
    _check_site(db, data.home_site_id)
    dup = _find_duplicate(db, data, exclude_id=patient_id)
    if dup:
        raise Conflict(f"Another patient has this name and date of birth ({dup.mrn}).",
                       fields={"family_name": f"clashes with {dup.mrn}"})
    new_mrn = data.mrn.upper() if data.mrn else None
    if new_mrn and new_mrn != patient.mrn and db.exec(select(Patient.id).where(Patient.mrn == new_mrn)).first():
        raise Conflict(f"The record number {data.mrn.upper()} is taken.", fields={"mrn": "already in use"})
    before = audit.snapshot(patient)
    for key, value in data.model_dump(exclude={"row_version", "weight_kg", "mrn"}).items():
        setattr(patient, key, value)
    if data.mrn:
        patient.mrn = data.mrn.upper()
    patient.updated_at = now
    patient.row_version += 1
    db.add(patient)
    b, a = audit.diff(before, audit.snapshot(patient))
    audit.record(db, actor, "update", "patient", patient.id, patient_id=patient.id, before=b, after=a)
    db.commit()
    return patient


def _get(db: Session, patient_id: int) -> Patient:
    patient = db.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"No patient with id {patient_id}.")
    return patient


def view(db: Session, actor: Actor, patient_id: int, *, now: datetime, what: str = "record") -> PatientRecord:
    """A patient's record for display; the read is audited."""
    patient = _get(db, patient_id)
    flags = list(db.exec(select(PatientFlag).where(PatientFlag.patient_id == patient_id)
                         .order_by(PatientFlag.cleared_at.is_not(None), PatientFlag.set_at.desc())))
    consent_rows = list(db.exec(select(Consent).where(Consent.patient_id == patient_id)
                                .order_by(Consent.signed_at.desc())))
    weight = db.exec(select(WeightMeasurement).where(WeightMeasurement.patient_id == patient_id)
                     .order_by(WeightMeasurement.measured_at.desc())).first()
    audit.record(db, actor, "view", "patient", patient_id, patient_id=patient_id, detail=what)
    db.commit()
    return PatientRecord(
        patient=patient,
        flags=flags,
        consents=latest_consents(consent_rows, now),
        consent_rows=consent_rows,
        latest_weight=weight,
        home_site=db.get(Site, patient.home_site_id) if patient.home_site_id else None,
    )


def latest_consents(rows: list[Consent], now: datetime) -> list[ConsentState]:
    """The newest consent of each kind with its status at `now`."""
    seen: dict[str, ConsentState] = {}
    for c in sorted(rows, key=lambda c: c.signed_at, reverse=True):
        if c.kind not in seen:
            seen[c.kind] = ConsentState(c.kind, consent_status(c.signed_at, c.expires_at, c.revoked_at, now),
                                        c.text_version, c.signed_at, c.expires_at, c.id)
    return list(seen.values())


def search(db: Session, actor: Actor, query: PatientQuery) -> PatientPage:
    """Patients matching a name, MRN or date of birth, by family name; the search is audited."""
    terms = parse_search(query.q)
    q = select(Patient)
    if terms.dob:
        q = q.where(Patient.date_of_birth == terms.dob)
    if terms.mrn:
        q = q.where(Patient.mrn.contains(terms.mrn))
    for word in terms.words:
        like = f"%{word}%"
        q = q.where(or_(func.lower(Patient.family_name).like(like), func.lower(Patient.given_name).like(like),
                        func.lower(Patient.preferred_name).like(like)))
    total = db.exec(select(func.count()).select_from(q.subquery())).one()
    rows = list(db.exec(q.order_by(Patient.family_name, Patient.given_name, Patient.id)
                        .offset((query.page - 1) * query.per_page).limit(query.per_page)))
    audit.record(db, actor, "search", "patient", None,
                 detail=f"q={query.q or ''!r} page={query.page} -> {len(rows)} of {total}")
    db.commit()
    return PatientPage(rows, total, query.page, query.per_page)


def active_flags(db: Session, patient_ids: list[int]) -> dict[int, list[PatientFlag]]:
    """Open flags per patient, for showing a caution wherever the patient appears."""
    if not patient_ids:
        return {}
    out: dict[int, list[PatientFlag]] = {}
    q = select(PatientFlag).where(PatientFlag.patient_id.in_(patient_ids), PatientFlag.cleared_at.is_(None))
    for flag in db.exec(q):
        out.setdefault(flag.patient_id, []).append(flag)
    return out


def add_flag(db: Session, actor: Actor, patient_id: int, data: FlagIn, *, now: datetime) -> PatientFlag:
    _get(db, patient_id)
    open_same = db.exec(select(PatientFlag).where(PatientFlag.patient_id == patient_id,
                                                  PatientFlag.kind == data.kind,
                                                  PatientFlag.cleared_at.is_(None))).first()
    if open_same:
        raise Conflict("This flag is already set.", fields={"kind": "already set for this patient"})
    flag = PatientFlag(patient_id=patient_id, kind=data.kind, note=data.note, set_at=now, set_by_id=actor.user_id)
    db.add(flag)
    db.flush()
    audit.record(db, actor, "create", "patient_flag", flag.id, patient_id=patient_id, after=audit.snapshot(flag))
    db.commit()
    return flag


def clear_flag(db: Session, actor: Actor, flag_id: int, data: FlagClear, *, now: datetime) -> PatientFlag:
    flag = db.get(PatientFlag, flag_id)
    if flag is None or flag.cleared_at is not None:
        raise NotFound("That flag is not set.")
    flag.cleared_at, flag.cleared_by_id, flag.clear_reason = now, actor.user_id, data.reason
    db.add(flag)
    audit.record(db, actor, "update", "patient_flag", flag.id, patient_id=flag.patient_id,
                 before={"cleared_at": None}, after={"cleared_at": now.isoformat(), "reason": data.reason})
    db.commit()
    return flag


def record_consent(db: Session, actor: Actor, patient_id: int, data: ConsentIn, *, now: datetime,
                   zone) -> Consent:
    """Record a signed consent form (dates are the clinic's local days)."""
    _get(db, patient_id)
    signed = datetime.combine(data.signed_on, time(0, 0), zone).astimezone(UTC)
    if signed > now:
        raise InvalidInput("The signing date is in the future.", fields={"signed_on": "cannot be in the future"})
    expires = None
    if data.expires_on:
        if data.expires_on <= data.signed_on:
            raise InvalidInput("Expiry must be after signing.", fields={"expires_on": "must be after the signing date"})
        expires = datetime.combine(data.expires_on, time(23, 59, 59), zone).astimezone(UTC)
    consent = Consent(patient_id=patient_id, kind=data.kind, text_version=data.text_version, signed_at=signed,
                      expires_at=expires, witnessed_by_id=actor.user_id, recorded_by_id=actor.user_id,
                      recorded_at=now)
    db.add(consent)
    db.flush()
    audit.record(db, actor, "create", "consent", consent.id, patient_id=patient_id, after=audit.snapshot(consent))
    db.commit()
    return consent


def revoke_consent(db: Session, actor: Actor, consent_id: int, reason: str, *, now: datetime) -> Consent:
    consent = db.get(Consent, consent_id)
    if consent is None or consent.revoked_at is not None:
        raise NotFound("That consent is not in force.")
    if not reason or len(reason.strip()) < 3:
        raise InvalidInput("Say why the consent is revoked.", fields={"reason": "give a reason"})
    consent.revoked_at, consent.revoke_reason = now, reason.strip()
    db.add(consent)
    audit.record(db, actor, "update", "consent", consent.id, patient_id=consent.patient_id,
                 before={"revoked_at": None}, after={"revoked_at": now.isoformat(), "reason": reason})
    db.commit()
    return consent
