"""Sites and chairs (kept in step with config.toml)."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from clinic import audit
from clinic.config import Settings
from clinic.sessions.models import Chair, Site


def sync_sites(db: Session, settings: Settings) -> None:
    """Make the `site` and `chair` rows match `[[sites]]` in the configuration.

    New sites and chairs are added; changed hours and ratios are updated; chairs no longer listed are
    deactivated (never deleted: past sessions point at them). Each change is audited as the system.
    """
    existing = {s.code: s for s in db.exec(select(Site))}
    for sc in settings.sites:
        values = {
            "name": sc.name,
            "time_zone": sc.time_zone or settings.clinic.time_zone,
            "hours_json": json.dumps(sc.hours, sort_keys=True),
            "closed_days_json": json.dumps([d.isoformat() for d in sc.closed_days]),
            "nurse_ratio_dosing": sc.nurse_ratio_dosing,
            "nurse_ratio_recovery": sc.nurse_ratio_recovery,
            "active": True,
        }
        site = existing.get(sc.code)
        if site is None:
            site = Site(code=sc.code, **values)
            db.add(site)
            db.flush()
            audit.record(db, audit.SYSTEM, "create", "site", site.id, after={"code": sc.code} | values)
        else:
            before = {k: getattr(site, k) for k in values}
            if before != values:
                for k, v in values.items():
                    setattr(site, k, v)
                db.add(site)
                b, a = audit.diff(before, values)
                audit.record(db, audit.SYSTEM, "update", "site", site.id, before=b, after=a,
                             detail="synced from config.toml")
        chairs = {c.label: c for c in db.exec(select(Chair).where(Chair.site_id == site.id))}
        for label in sc.chairs:
            chair = chairs.get(label)
            if chair is None:
                db.add(Chair(site_id=site.id, label=label))
            elif not chair.active:
                chair.active = True
                db.add(chair)
        for label, chair in chairs.items():
            if label not in sc.chairs and chair.active:
                chair.active = False
                db.add(chair)
    configured = {s.code for s in settings.sites}
    for code, site in existing.items():
        if code not in configured and site.active:
            site.active = False
            db.add(site)
    db.commit()


def list_sites(db: Session, *, active_only: bool = True) -> list[Site]:
    q = select(Site).order_by(Site.name)
    if active_only:
        q = q.where(Site.active)
    return list(db.exec(q))


def chairs_of(db: Session, site_id: int) -> list[Chair]:
    return list(db.exec(select(Chair).where(Chair.site_id == site_id, Chair.active).order_by(Chair.label)))


def courses_of(db: Session, patient_id: int) -> list[dict]:
    """A patient's courses, newest first, with protocol name and sessions done / planned / next."""
    from clinic.sessions.models import Protocol, TreatmentCourse, TreatmentSession

    courses = list(db.exec(select(TreatmentCourse).where(TreatmentCourse.patient_id == patient_id)
                           .order_by(TreatmentCourse.ordered_at.desc())))
    if not courses:
        return []
    protocols = {p.id: p for p in db.exec(select(Protocol).where(Protocol.id.in_({c.protocol_id for c in courses})))}
    sessions = list(db.exec(select(TreatmentSession).where(TreatmentSession.course_id.in_([c.id for c in courses]))
                            .order_by(TreatmentSession.starts_at)))
    out = []
    for c in courses:
        mine = [s for s in sessions if s.course_id == c.id]
        out.append({
            "course": c,
            "protocol": protocols[c.protocol_id],
            "done": sum(1 for s in mine if s.status == "discharged"),
            "next": next((s for s in mine if s.status == "booked"), None),
        })
    return out
