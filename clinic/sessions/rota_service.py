"""The staff rota: managers keep weekly patterns and exceptions; the concrete `Shift` rows that the
planner and the capacity tools read are rebuilt from them.

Each use case is one transaction: validate, write, rebuild the affected shifts, audit, commit. Adding
or ending a pattern and adding or withdrawing an exception rebuild the days it touches from today up
to the rota horizon (12 weeks ahead), so the planner always reads current shifts. Days beyond the
horizon are filled by `extend_rota`, which a nightly job should call; past days are never rewritten
by a change (they are the record of who was on shift), only by an explicit `regenerate_shifts`.

Shift rows with `source = "manual"` are never rewritten; every other source is generated here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, or_, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.models import StaffRole, StaffSite, StaffUser
from clinic.errors import Conflict, InvalidInput, NotFound
from clinic.sessions import rota
from clinic.sessions.models import Shift, ShiftException, ShiftPattern, Site
from clinic.sessions.rota import EXCEPTION_KINDS, ROTA_ROLES, WEEKDAY_NAMES, RotaException, ShiftSpec, WeeklyPattern

HORIZON_WEEKS = 12
GENERATED_SOURCES = ("pattern", "extra", "swap")  # "manual" rows are left alone
MAX_REBUILD_DAYS = 400


# --- input --------------------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


def _role(v: str | None) -> str | None:
    if v is not None and v not in ROTA_ROLES:
        raise ValueError("choose nurse or prescriber")
    return v


class PatternIn(_Input):
    """Weekly rota lines for one person: the same hours on each of `weekdays`."""

    staff_user_id: int
    site_id: int
    role: str
    weekdays: list[int] = Field(description="0 = Monday … 6 = Sunday; one pattern per weekday")
    start_time: time = Field(description="Local time at the site")
    end_time: time = Field(description="Local time at the site, the same day")
    valid_from: date
    valid_until: date | None = Field(default=None, description="The last day it applies; empty = until ended")

    _r = field_validator("role")(_role)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("choose at least one day")
        if any(d < 0 or d > 6 for d in v):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return sorted(set(v))


class PatternEnd(_Input):
    valid_until: date = Field(description="The last day the pattern applies")


class ExceptionIn(_Input):
    """Leave, a swap or an extra shift, typed as local days and optional times at the site."""

    staff_user_id: int
    site_id: int
    kind: str
    starts_on: date
    ends_on: date | None = Field(default=None, description="Last day; empty = the same day")
    start_time: time | None = Field(default=None, description="Empty = from the start of the first day")
    end_time: time | None = Field(default=None, description="Empty = to the end of the last day")
    role: str | None = Field(default=None, description="The role of an extra shift")
    swapped_with_id: int | None = Field(default=None, description="Who takes the shift over (a swap)")
    note: str = Field(min_length=3, max_length=500, description="The reason")

    _r = field_validator("role")(_role)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in EXCEPTION_KINDS:
            raise ValueError(f"choose one of: {', '.join(EXCEPTION_KINDS)}")
        return v


class RebuildRange(_Input):
    site_id: int
    start_day: date
    end_day: date


@dataclass(frozen=True)
class RebuildResult:
    site_id: int
    start_day: date
    end_day: date
    removed: int
    written: int


# --- small readers ------------------------------------------------------------------------------


def zone_of(site: Site) -> ZoneInfo:
    return ZoneInfo(site.time_zone)


def site_today(site: Site, now: datetime) -> date:
    return now.astimezone(zone_of(site)).date()


def horizon_end(site: Site, now: datetime) -> date:
    """The last day the rota keeps generated shifts for, counted from today at the site."""
    return site_today(site, now) + timedelta(weeks=HORIZON_WEEKS) - timedelta(days=1)


def closed_days(site: Site) -> frozenset[date]:
    return frozenset(date.fromisoformat(d) for d in json.loads(site.closed_days_json or "[]"))


def _site(db: Session, site_id: int) -> Site:
    site = db.get(Site, site_id)
    if site is None or not site.active:
        raise InvalidInput("Choose an active site.", fields={"site_id": "no such active site"})
    return site


def _roles(db: Session, user_id: int) -> frozenset[str]:
    return frozenset(db.exec(select(StaffRole.role).where(StaffRole.staff_user_id == user_id)))


def _person_problem(db: Session, user_id: int | None, site: Site) -> tuple[StaffUser | None, str | None]:
    """The person, or what is wrong with choosing them for the rota of `site`."""
    user = db.get(StaffUser, user_id) if user_id is not None else None
    if user is None or not user.active:
        return None, "unknown person: choose someone from the list"
    works_here = db.exec(select(StaffSite).where(StaffSite.staff_user_id == user.id,
                                                 StaffSite.site_id == site.id)).first()
    if works_here is None:
        return user, f"{user.full_name} does not work at {site.name}"
    return user, None


def _lock(db: Session, model, *ids: int) -> None:
    # Serializes concurrent rota changes for one person or site on PostgreSQL (SQLite already holds
    # the write lock for the whole transaction).
    db.exec(select(model.id).where(model.id.in_(ids)).with_for_update()).all()


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def pattern_of(row: ShiftPattern) -> WeeklyPattern:
    return WeeklyPattern(row.staff_user_id, row.role, row.weekday, time.fromisoformat(row.start_time),
                         time.fromisoformat(row.end_time), row.valid_from, row.valid_until, row.id)


def exception_of(row: ShiftException) -> RotaException:
    return RotaException(row.staff_user_id, row.kind, row.starts_at, row.ends_at, row.role, row.swapped_with_id,
                         row.id)


def _names(db: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(db.exec(select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(ids))).all())


# --- rebuilding the concrete shifts --------------------------------------------------------------


def _expand(db: Session, site: Site, start_day: date, end_day: date) -> list[ShiftSpec]:
    """The shifts the rota gives `site` for local days `start_day`..`end_day` from what is saved."""
    zone = zone_of(site)
    lo, hi = rota.day_bounds(start_day, end_day, zone)
    patterns = db.exec(
        select(ShiftPattern).join(StaffUser, StaffUser.id == ShiftPattern.staff_user_id)
        .where(ShiftPattern.site_id == site.id, StaffUser.active, ShiftPattern.valid_from <= end_day,
               or_(ShiftPattern.valid_until.is_(None), ShiftPattern.valid_until >= start_day))
        .order_by(ShiftPattern.id)).all()
    # Leave is the person's, wherever it was entered: someone on leave is on shift at no site.
    exceptions = db.exec(
        select(ShiftException)
        .where(or_(ShiftException.site_id == site.id, ShiftException.kind == "leave"),
               ShiftException.starts_at < hi, ShiftException.ends_at > lo)
        .order_by(ShiftException.id)).all()
    inactive = set(db.exec(select(StaffUser.id).where(~StaffUser.active)).all())
    return [s for s in rota.expand_shifts([pattern_of(p) for p in patterns],
                                          [exception_of(e) for e in exceptions], start_day, end_day, zone,
                                          closed_days=closed_days(site))
            if s.staff_id not in inactive]


def _fmt_span(a: datetime, b: datetime, zone: ZoneInfo) -> str:
    la, lb = a.astimezone(zone), b.astimezone(zone)
    if la.date() == lb.date():
        return f"{WEEKDAY_NAMES[la.weekday()]} {la:%d %b %Y} {la:%H:%M}–{lb:%H:%M}"
    return (f"{WEEKDAY_NAMES[la.weekday()]} {la:%d %b %Y} {la:%H:%M} to "
            f"{WEEKDAY_NAMES[lb.weekday()]} {lb:%d %b %Y} {lb:%H:%M}")


def _refuse_double_bookings(db: Session, site: Site, shifts: list[ShiftSpec]) -> None:
    pairs = rota.double_bookings(shifts)
    if pairs:
        a, b = pairs[0]
        name = _names(db, [a.staff_id]).get(a.staff_id, f"#{a.staff_id}")
        zone = zone_of(site)
        raise Conflict(f"{name} would be on shift twice at once: {_fmt_span(a.start, a.end, zone)} and "
                       f"{_fmt_span(b.start, b.end, zone)}. Nothing was saved.",
                       fields={"staff_user_id": "already on shift then"})


def _rebuild(db: Session, actor: Actor, site: Site, start_day: date, end_day: date, now: datetime, *,
             check: bool = False, why: str | None = None) -> RebuildResult:
    """Rewrite the generated `Shift` rows of `site` starting on local days start_day..end_day (no commit)."""
    _lock(db, Site, site.id)
    shifts = _expand(db, site, start_day, end_day)
    if check:
        _refuse_double_bookings(db, site, shifts)
    lo, hi = rota.day_bounds(start_day, end_day, zone_of(site))
    removed = db.execute(sa.delete(Shift).where(Shift.site_id == site.id, Shift.starts_at >= lo,
                                                Shift.starts_at < hi, Shift.source.in_(GENERATED_SOURCES))).rowcount
    db.add_all([Shift(staff_user_id=s.staff_id, site_id=site.id, role=s.role, starts_at=s.start, ends_at=s.end,
                      source=s.source) for s in shifts])
    db.flush()
    result = RebuildResult(site.id, start_day, end_day, removed or 0, len(shifts))
    audit.record(db, actor, "update", "rota", site.id,
                 after={"start_day": start_day, "end_day": end_day, "removed": result.removed,
                        "written": result.written},
                 at=now, detail=f"shifts of {site.code} {start_day.isoformat()}..{end_day.isoformat()} rebuilt"
                        + (f" ({why})" if why else ""))
    return result


def _rebuild_from_today(db: Session, actor: Actor, site: Site, first: date, last: date | None, now: datetime, *,
                        why: str) -> RebuildResult | None:
    """Rebuild the part of first..last (None = open-ended) that lies between today and the horizon."""
    start = max(first, site_today(site, now))
    end = min(last or date.max, horizon_end(site, now))
    if end < start:
        return None
    return _rebuild(db, actor, site, start, end, now, check=True, why=why)


def regenerate_shifts(db: Session, actor: Actor, site_id: int, start_day: date, end_day: date,
                      now: datetime) -> RebuildResult:
    """Rewrite the generated shifts of a site for local days start_day..end_day (both included).

    One transaction, audited. Past days are rewritten too when asked for: this is the explicit "rebuild"
    (after a data repair, say); the everyday changes only touch today onwards. The shifts written do not
    depend on `now`; it is the time of the audit event.
    """
    site = _site(db, site_id)
    if end_day < start_day:
        raise InvalidInput("The last day is before the first.", fields={"end_day": "must be on or after the first day"})
    if (end_day - start_day).days >= MAX_REBUILD_DAYS:
        raise InvalidInput("That range is too long.", fields={"end_day": f"at most {MAX_REBUILD_DAYS} days"})
    try:
        result = _rebuild(db, actor, site, start_day, end_day, now, why="rebuild asked for")
        db.commit()
    except Exception:
        db.rollback()
        raise
    return result


def extend_rota(db: Session, actor: Actor, now: datetime, *, weeks: int = HORIZON_WEEKS) -> list[RebuildResult]:
    """Rebuild every active site's shifts from today to `weeks` ahead (the nightly job; idempotent)."""
    results = []
    for site in db.exec(select(Site).where(Site.active).order_by(Site.id)).all():
        today = site_today(site, now)
        results.append(regenerate_shifts(db, actor, site.id, today, today + timedelta(weeks=weeks, days=-1), now))
    return results


# --- patterns -----------------------------------------------------------------------------------


def add_patterns(db: Session, actor: Actor, data: PatternIn, *, now: datetime) -> list[ShiftPattern]:
    """Put a person on the weekly rota: one pattern per chosen weekday, then rebuild their shifts.

    Refused with the field named: an unknown person, someone not working at the site or without the
    role (nurse shifts only for nurses, prescriber shifts only for prescribers), an end before the
    start. Refused as a conflict (409): hours that overlap another pattern of the same person on the
    same weekday (at any site) while both apply.
    """
    site = _site(db, data.site_id)
    user, problem = _person_problem(db, data.staff_user_id, site)
    errors: dict[str, str] = {}
    if problem:
        errors["staff_user_id"] = problem
    elif data.role not in _roles(db, user.id):
        errors["role"] = f"{user.full_name} does not hold the {data.role} role: {data.role} shifts are only for " \
                         f"{data.role}s"
    if data.end_time <= data.start_time:
        errors["end_time"] = "must be after the start time (a shift ends on the day it starts)"
    if data.valid_until is not None and data.valid_until < data.valid_from:
        errors["valid_until"] = "must be on or after the first day"
    if errors:
        raise InvalidInput("Please check: " + ", ".join(k.replace("_", " ") for k in errors) + ".", fields=errors)
    try:
        _lock(db, StaffUser, user.id)
        rows = db.exec(select(ShiftPattern).where(ShiftPattern.staff_user_id == user.id,
                                                  or_(ShiftPattern.valid_until.is_(None),
                                                      ShiftPattern.valid_until >= data.valid_from))).all()
        existing = {p.id: p for p in rows}
        created = []
        for weekday in data.weekdays:
            new = WeeklyPattern(user.id, data.role, weekday, data.start_time, data.end_time, data.valid_from,
                                data.valid_until)
            clash = rota.first_clash(new, [pattern_of(p) for p in existing.values()])
            if clash is not None:
                other = existing[clash.pattern_id]
                where = db.get(Site, other.site_id)
                until = f" until {other.valid_until.isoformat()}" if other.valid_until else ""
                raise Conflict(
                    f"{user.full_name} already works {WEEKDAY_NAMES[weekday]}s {other.start_time}–{other.end_time} "
                    f"as {other.role} at {where.name} (from {other.valid_from.isoformat()}{until}). End that "
                    f"pattern first, or choose hours that do not overlap. Nothing was saved.",
                    fields={"start_time": f"overlaps {WEEKDAY_NAMES[weekday]} {other.start_time}–{other.end_time}"})
            row = ShiftPattern(staff_user_id=user.id, site_id=site.id, role=data.role, weekday=weekday,
                               start_time=_hhmm(data.start_time), end_time=_hhmm(data.end_time),
                               valid_from=data.valid_from, valid_until=data.valid_until)
            db.add(row)
            db.flush()
            existing[row.id] = row
            created.append(row)
            audit.record(db, actor, "create", "shift_pattern", row.id, after=audit.snapshot(row))
        _rebuild_from_today(db, actor, site, data.valid_from, data.valid_until, now,
                            why=f"pattern added for {user.full_name}")
        db.commit()
    except Exception:
        db.rollback()
        raise
    return created


def end_patterns(db: Session, actor: Actor, pattern_ids: list[int], data: PatternEnd, *,
                 now: datetime) -> list[ShiftPattern]:
    """Set the last day of one or more patterns of a site and take their later shifts off the rota.

    A pattern cannot end before it starts, and an end can only be brought forward (a later end could
    overlap what replaced the pattern; add a new pattern instead).
    """
    rows = [db.get(ShiftPattern, i) for i in dict.fromkeys(pattern_ids)]
    if not rows or any(r is None for r in rows):
        raise NotFound("That rota pattern does not exist.")
    if len({r.site_id for r in rows}) > 1:
        raise InvalidInput("End the patterns of one site at a time.", fields={"pattern_ids": "from several sites"})
    for row in rows:
        if data.valid_until < row.valid_from:
            raise InvalidInput("A pattern cannot end before it starts.",
                               fields={"valid_until": f"must be on or after {row.valid_from.isoformat()}"})
        if row.valid_until is not None and data.valid_until >= row.valid_until:
            raise Conflict(f"This pattern already ends on {row.valid_until.isoformat()}.",
                           fields={"valid_until": f"must be before {row.valid_until.isoformat()}"})
    site = db.get(Site, rows[0].site_id)
    old_untils = [r.valid_until for r in rows]
    last = None if any(u is None for u in old_untils) else max(old_untils)
    try:
        for row in rows:
            before = audit.snapshot(row)
            row.valid_until = data.valid_until
            db.add(row)
            db.flush()
            b, a = audit.diff(before, audit.snapshot(row))
            audit.record(db, actor, "update", "shift_pattern", row.id, before=b, after=a, detail="pattern ended")
        _rebuild_from_today(db, actor, site, data.valid_until + timedelta(days=1), last, now, why="pattern ended")
        db.commit()
    except Exception:
        db.rollback()
        raise
    return rows


def end_pattern(db: Session, actor: Actor, pattern_id: int, data: PatternEnd, *, now: datetime) -> ShiftPattern:
    """Set the last day a pattern applies and take its later shifts off the rota."""
    return end_patterns(db, actor, [pattern_id], data, now=now)[0]


# --- exceptions ---------------------------------------------------------------------------------


def _other_site_shifts(db: Session, user_id: int, site_id: int, start: datetime, end: datetime) -> Shift | None:
    return db.exec(select(Shift).where(Shift.staff_user_id == user_id, Shift.site_id != site_id,
                                       Shift.starts_at < end, Shift.ends_at > start)
                   .order_by(Shift.starts_at)).first()


def add_exception(db: Session, actor: Actor, data: ExceptionIn, *, now: datetime) -> ShiftException:
    """Record leave, a swap or an extra shift (with its reason), then rebuild the days it touches.

    Leave counts at every site the person works at. A swap hands the person's shifts inside the window
    to someone else at the site who holds the same role; an extra shift is only for someone holding
    its role. Nobody may end up on shift twice at once (409).
    """
    site = _site(db, data.site_id)
    zone = zone_of(site)
    user, problem = _person_problem(db, data.staff_user_id, site)
    errors: dict[str, str] = {}
    if problem:
        errors["staff_user_id"] = problem
    if data.ends_on is not None and data.ends_on < data.starts_on:
        errors["ends_on"] = "must be on or after the first day"
    start = end = None
    if "ends_on" not in errors:
        start, end = rota.exception_window(data.starts_on, data.ends_on, data.start_time, data.end_time, zone)
        if end <= start:
            errors["end_time"] = "must be after the start"
        elif end <= now:
            errors["starts_on"] = "this is over already: past days of the rota are not changed"
    other = None
    if data.kind == "extra":
        if data.role is None:
            errors["role"] = "choose the role of the extra shift"
        elif user is not None and not problem and data.role not in _roles(db, user.id):
            errors["role"] = f"{user.full_name} does not hold the {data.role} role"
        if data.start_time is None:
            errors["start_time"] = "an extra shift needs its start time"
        if data.end_time is None:
            errors["end_time"] = "an extra shift needs its end time"
        if start is not None and end - start > timedelta(hours=24):
            errors["end_time"] = "an extra shift lasts at most 24 hours"
    if data.kind == "swap":
        if data.swapped_with_id is None:
            errors["swapped_with_id"] = "choose who takes the shift over"
        elif data.swapped_with_id == data.staff_user_id:
            errors["swapped_with_id"] = "choose someone else"
        else:
            other, other_problem = _person_problem(db, data.swapped_with_id, site)
            if other_problem:
                errors["swapped_with_id"] = other_problem
    if errors:
        raise InvalidInput("Please check: " + ", ".join(k.replace("_", " ") for k in errors) + ".", fields=errors)

    first_day, last_day = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    try:
        _lock(db, StaffUser, *[u.id for u in (user, other) if u is not None])
        if data.kind == "swap":
            handed = [s for s in _expand(db, site, first_day - timedelta(days=1), last_day)
                      if s.staff_id == user.id and s.start < end and start < s.end]
            if not handed:
                raise InvalidInput(f"{user.full_name} has no shift at {site.name} then to hand over.",
                                   fields={"starts_on": f"{user.full_name} is not on shift then"})
            other_roles = _roles(db, other.id)
            missing = sorted({s.role for s in handed} - other_roles)
            if missing:
                raise InvalidInput(f"{other.full_name} cannot take a {missing[0]} shift.",
                                   fields={"swapped_with_id": f"{other.full_name} does not hold the {missing[0]} "
                                                              "role"})
        taker = user if data.kind == "extra" else other if data.kind == "swap" else None
        if taker is not None:
            field_name = "swapped_with_id" if data.kind == "swap" else "staff_user_id"
            away = db.exec(select(ShiftException).where(
                ShiftException.staff_user_id == taker.id, ShiftException.kind == "leave",
                ShiftException.starts_at < end, ShiftException.ends_at > start)).first()
            if away is not None:
                raise Conflict(f"{taker.full_name} is on leave then ({_fmt_span(away.starts_at, away.ends_at, zone)}). "
                               "Withdraw the leave first, or choose someone else. Nothing was saved.",
                               fields={field_name: "on leave then"})
            clash = _other_site_shifts(db, taker.id, site.id, start, end)
            if clash is not None:
                where = db.get(Site, clash.site_id)
                raise Conflict(f"{taker.full_name} is on shift at {where.name} then "
                               f"({_fmt_span(clash.starts_at, clash.ends_at, zone)}). Nothing was saved.",
                               fields={field_name: f"on shift at {where.name} then"})
        row = ShiftException(staff_user_id=user.id, site_id=site.id, kind=data.kind,
                             role=data.role if data.kind == "extra" else None, starts_at=start, ends_at=end,
                             swapped_with_id=other.id if other is not None else None, note=data.note,
                             created_by_id=actor.user_id, created_at=now)
        db.add(row)
        db.flush()
        audit.record(db, actor, "create", "shift_exception", row.id, after=audit.snapshot(row), detail=data.note)
        for affected in _sites_touched(db, row, site):
            _rebuild_from_today(db, actor, affected, first_day, last_day, now,
                                why=f"{data.kind} for {user.full_name}")
        db.commit()
    except Exception:
        db.rollback()
        raise
    return row


def _sites_touched(db: Session, row: ShiftException, site: Site) -> list[Site]:
    """The sites whose shifts an exception changes: its own, and for leave every site of the person."""
    if row.kind != "leave":
        return [site]
    ids = set(db.exec(select(ShiftPattern.site_id).where(ShiftPattern.staff_user_id == row.staff_user_id)).all())
    ids |= set(db.exec(select(StaffSite.site_id).where(StaffSite.staff_user_id == row.staff_user_id)).all())
    ids.add(site.id)
    return list(db.exec(select(Site).where(Site.id.in_(ids), Site.active).order_by(Site.id)).all())


def withdraw_exception(db: Session, actor: Actor, exception_id: int, *, now: datetime) -> None:
    """Take back leave, a swap or an extra shift entered by mistake (audited with what it was)."""
    row = db.get(ShiftException, exception_id)
    if row is None:
        raise NotFound("That rota exception does not exist.")
    if row.ends_at <= now:
        raise Conflict("That exception is over already: past days of the rota are not changed.")
    site = db.get(Site, row.site_id)
    zone = zone_of(site)
    first_day = row.starts_at.astimezone(zone).date()
    last_day = (row.ends_at - timedelta(microseconds=1)).astimezone(zone).date()
    try:
        touched = _sites_touched(db, row, site)
        audit.record(db, actor, "cancel", "shift_exception", row.id, before=audit.snapshot(row),
                     detail="withdrawn")
        db.delete(row)
        db.flush()
        for affected in touched:
            _rebuild_from_today(db, actor, affected, first_day, last_day, now, why=f"{row.kind} withdrawn")
        db.commit()
    except Exception:
        db.rollback()
        raise


# --- what the pages show ------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    full_name: str
    roles: frozenset[str]


def site_staff(db: Session, site_id: int) -> list[Person]:
    """Active people working at the site who can be on the rota (nurses and prescribers), by name."""
    users = db.exec(select(StaffUser).join(StaffSite, StaffSite.staff_user_id == StaffUser.id)
                    .where(StaffSite.site_id == site_id, StaffUser.active).order_by(StaffUser.full_name)).all()
    roles: dict[int, set[str]] = {}
    if users:
        for uid, role in db.exec(select(StaffRole.staff_user_id, StaffRole.role)
                                 .where(StaffRole.staff_user_id.in_([u.id for u in users]))):
            roles.setdefault(uid, set()).add(role)
    return [Person(u.id, u.full_name, frozenset(roles.get(u.id, set()) & set(ROTA_ROLES))) for u in users
            if roles.get(u.id, set()) & set(ROTA_ROLES)]


@dataclass(frozen=True)
class PatternGroup:
    """Patterns of one person with the same role, hours and dates, on several weekdays."""

    person: str
    role: str
    start_time: str
    end_time: str
    valid_from: date
    valid_until: date | None
    current: bool  # applies today or later
    patterns: tuple[ShiftPattern, ...]

    @property
    def weekdays(self) -> list[int]:
        return sorted(p.weekday for p in self.patterns)

    @property
    def ids(self) -> list[int]:
        return [p.id for p in sorted(self.patterns, key=lambda p: p.weekday)]


def list_patterns(db: Session, site_id: int, *, today: date) -> list[PatternGroup]:
    """The site's patterns grouped per person, role, hours and dates: current ones first, then by name."""
    rows = db.exec(select(ShiftPattern).where(ShiftPattern.site_id == site_id)).all()
    names = _names(db, [r.staff_user_id for r in rows])
    groups: dict[tuple, list[ShiftPattern]] = {}
    for r in rows:
        key = (r.staff_user_id, r.role, r.start_time, r.end_time, r.valid_from, r.valid_until)
        groups.setdefault(key, []).append(r)
    out = [PatternGroup(names.get(k[0], "?"), k[1], k[2], k[3], k[4], k[5], k[5] is None or k[5] >= today, tuple(v))
           for k, v in groups.items()]
    return sorted(out, key=lambda g: (not g.current, g.person, g.weekdays, g.start_time, g.valid_from))


@dataclass(frozen=True)
class ExceptionRow:
    exception: ShiftException
    person: str
    swapped_with: str | None
    created_by: str
    upcoming: bool


def list_exceptions(db: Session, site_id: int, *, now: datetime, past_days: int = 30) -> list[ExceptionRow]:
    """This site's exceptions that are not over, then those of the last `past_days`, by start."""
    rows = db.exec(select(ShiftException).where(ShiftException.site_id == site_id,
                                                ShiftException.ends_at > now - timedelta(days=past_days))
                   .order_by(ShiftException.starts_at)).all()
    names = _names(db, [i for r in rows for i in (r.staff_user_id, r.swapped_with_id, r.created_by_id)])
    out = [ExceptionRow(r, names.get(r.staff_user_id, "?"), names.get(r.swapped_with_id),
                        names.get(r.created_by_id, "?"), r.ends_at > now) for r in rows]
    return sorted(out, key=lambda r: (not r.upcoming, r.exception.starts_at))


@dataclass
class RotaRow:
    staff_id: int
    name: str
    cells: list[list[Shift]]  # one list per day of the week
    leave: list[bool]


@dataclass
class RotaSection:
    role: str
    rows: list[RotaRow] = field(default_factory=list)


@dataclass
class HeadcountRow:
    label: time
    cells: list[rota.HourCount | None]
    open: list[bool]


@dataclass
class WeekView:
    site: Site
    zone: ZoneInfo
    days: list[date]
    sections: list[RotaSection]
    headcount: list[HeadcountRow]


def _opening(site: Site) -> dict[int, list[tuple[time, time]]]:
    codes = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    hours = json.loads(site.hours_json or "{}")
    return {codes.index(k): [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in v]
            for k, v in hours.items() if k in codes}


def week_view(db: Session, site_id: int, monday: date) -> WeekView:
    """Who is on shift at a site in the week starting `monday`, and the head-count per hour."""
    site = _site(db, site_id)
    zone = zone_of(site)
    week = rota.days(monday, monday + timedelta(days=6))
    lo, hi = rota.day_bounds(week[0], week[-1], zone)
    shifts = db.exec(select(Shift).where(Shift.site_id == site.id, Shift.starts_at < hi, Shift.ends_at > lo)
                     .order_by(Shift.starts_at)).all()
    leave = db.exec(select(ShiftException).where(ShiftException.kind == "leave", ShiftException.starts_at < hi,
                                                 ShiftException.ends_at > lo)).all()
    patterns = db.exec(select(ShiftPattern).join(StaffUser, StaffUser.id == ShiftPattern.staff_user_id).where(
        ShiftPattern.site_id == site.id, StaffUser.active, ShiftPattern.valid_from <= week[-1],
        or_(ShiftPattern.valid_until.is_(None), ShiftPattern.valid_until >= week[0]))).all()
    people = {(s.staff_user_id, s.role) for s in shifts} | {(p.staff_user_id, p.role) for p in patterns}
    names = _names(db, [pid for pid, _ in people])
    sections = []
    for role in ("prescriber", "nurse"):
        section = RotaSection(role)
        for pid in sorted({pid for pid, r in people if r == role}, key=lambda i: (names.get(i, ""), i)):
            cells: list[list[Shift]] = [[] for _ in week]
            for s in shifts:
                if s.staff_user_id == pid and s.role == role:
                    day = s.starts_at.astimezone(zone).date()
                    if week[0] <= day <= week[-1]:
                        cells[(day - week[0]).days].append(s)
            on_leave = []
            for d in week:
                d_lo, d_hi = rota.day_bounds(d, d, zone)
                on_leave.append(any(e.staff_user_id == pid and e.starts_at < d_hi and e.ends_at > d_lo for e in leave))
            section.rows.append(RotaRow(pid, names.get(pid, "?"), cells, on_leave))
        sections.append(section)
    return WeekView(site, zone, week, sections, _headcount(site, zone, week, shifts))


def _headcount(site: Site, zone: ZoneInfo, week: list[date], shifts: list[Shift]) -> list[HeadcountRow]:
    specs = [ShiftSpec(s.starts_at, s.ends_at, s.staff_user_id, s.role, s.source) for s in shifts]
    opening = _opening(site)
    shut = closed_days(site)
    by_label: dict[time, list[rota.HourCount | None]] = {}
    open_at: dict[time, list[bool]] = {}
    for i, d in enumerate(week):
        for h in rota.hourly_headcount(specs, d, zone):
            label = h.local_start.time()
            cells = by_label.setdefault(label, [None] * len(week))
            if cells[i] is None:  # the hour repeated in autumn: keep the first
                cells[i] = h
            is_open = d not in shut and any(a <= label < b for a, b in opening.get(d.weekday(), []))
            open_at.setdefault(label, [False] * len(week))[i] |= is_open
    shown = [label for label, cells in by_label.items()
             if any(open_at[label]) or any(c is not None and (c.nurses or c.prescribers) for c in cells)]
    if not shown:
        return []
    first, last = min(shown), max(shown)
    return [HeadcountRow(label, by_label[label], open_at[label]) for label in sorted(by_label)
            if first <= label <= last]
