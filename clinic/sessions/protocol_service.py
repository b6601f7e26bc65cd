"""Protocols: list, read, create, and change by adding a new version.

A change never edits a protocol row: it inserts the next version (same code, version + 1) and
deactivates the old row, in one audited transaction, so every course keeps the exact version it was
ordered with. The JSON columns keep the shapes documented in `clinic.sessions.protocols`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clinic import audit
from clinic.audit import Actor
from clinic.auth.permissions import allowed
from clinic.config import Thresholds
from clinic.errors import Conflict, Forbidden, InvalidInput, NotFound
from clinic.sessions.models import Protocol
from clinic.sessions.protocol_rules import COURSE_SCALES, SESSION_SCORES, describe, protocol_problems
from clinic.sessions.protocols import SCALE_WHEN, SCORE_POINTS, load_json, seed_protocols
from clinic.vocab import DOSE_RULES, ROUTES

THRESHOLD_KEYS = tuple(Thresholds.model_fields)


class PhaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weeks: int = Field(ge=1, le=52)
    per_week: int = Field(ge=1, le=7)


class ProtocolIn(BaseModel):
    """A protocol's values, flat (the JSON columns are built from them). Doses are mg/kg or mg by `dose_rule`."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=3, max_length=120)
    route: str = Field(description=", ".join(ROUTES))
    dose_rule: str = Field(description=", ".join(DOSE_RULES))
    dose_default: float = Field(gt=0)
    dose_min: float = Field(gt=0)
    dose_max: float = Field(gt=0)
    infusion_minutes: int = Field(ge=1, le=240, description="Dosing window (infusion, injection, nasal devices)")
    pre_minutes: int = Field(ge=0, le=120, description="Chair time before dosing")
    post_minutes: int = Field(ge=0, le=300, description="Chair time after dosing ends")
    min_observation_minutes: int = Field(ge=0, le=300)
    induction_sessions: int = Field(ge=1, le=52, description="Sessions in a course")
    min_days_between: int = Field(ge=0, le=90)
    max_days_between: int | None = Field(default=None, ge=1, le=180)
    max_per_week: int = Field(ge=1, le=7, description="Most sessions in any 7 consecutive days")
    booster_interval_days: int | None = Field(default=None, ge=1, le=365)
    # schedule_json
    target_per_week: int | None = Field(default=None, ge=1, le=7, description="What the planner aims for")
    phases: list[PhaseIn] = Field(default_factory=list, max_length=6,
                                  description="Consecutive phases; weeks × per_week add up to the sessions")
    then_min_days: int | None = Field(default=None, ge=1, le=365, description="After the course: shortest gap")
    then_max_days: int | None = Field(default=None, ge=1, le=365, description="After the course: longest gap")
    # cadence_json
    baseline_vitals: bool = True
    dosing_every_minutes: int | None = Field(default=None, ge=5, le=60)
    recovery_every_minutes: int | None = Field(default=None, ge=5, le=60)
    at_minutes: list[int] = Field(default_factory=list, max_length=12,
                                  description="Extra vitals at these minutes after dosing starts")
    discharge_vitals: bool = True
    observation_from: Literal["dosing_end", "dosing_start"] = "dosing_end"
    scores: dict[str, list[str | int]] = Field(
        default_factory=dict, description="In-session scores: " + ", ".join(SESSION_SCORES)
        + " → points: \"baseline\", \"discharge\" or minutes after dosing starts")
    # scales_json
    scales: dict[str, str] = Field(default_factory=dict, description="Scale → when: " + ", ".join(SCALE_WHEN))
    # thresholds_json
    thresholds: dict[str, int] | None = Field(
        default=None, description="Overrides of config.toml [thresholds]; left out on a change, the old ones stay")

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        if v not in ROUTES:
            raise ValueError(f"choose one of: {', '.join(ROUTES)}")
        return v

    @field_validator("dose_rule")
    @classmethod
    def _dose_rule(cls, v: str) -> str:
        if v not in DOSE_RULES:
            raise ValueError(f"choose one of: {', '.join(DOSE_RULES)}")
        return v

    @field_validator("at_minutes")
    @classmethod
    def _at(cls, v: list[int]) -> list[int]:
        return sorted(set(v))

    @field_validator("scores", mode="before")
    @classmethod
    def _scores(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for scale, points in v.items():
            if scale not in SESSION_SCORES:
                raise ValueError(f"unknown in-session score {scale}; use {', '.join(SESSION_SCORES)}")
            if isinstance(points, str):
                points = [t for t in points.replace(",", " ").split() if t]
            clean: list[str | int] = []
            for point in points:
                if isinstance(point, int) or (isinstance(point, str) and point.strip().isdigit()):
                    clean.append(int(point))
                elif isinstance(point, str) and point.strip().lower() in SCORE_POINTS:
                    clean.append(point.strip().lower())
                else:
                    raise ValueError(f"{scale}: {point!r} is not a time point; use baseline, discharge or minutes")
            if clean:
                out[scale] = list(dict.fromkeys(clean))
        return out

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: dict[str, str]) -> dict[str, str]:
        for scale, when in v.items():
            if scale not in COURSE_SCALES:
                raise ValueError(f"unknown scale {scale}; use {', '.join(COURSE_SCALES)}")
            if when not in SCALE_WHEN:
                raise ValueError(f"{scale}: when is one of {', '.join(SCALE_WHEN)}")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is None:
            return v
        unknown = [k for k in v if k not in THRESHOLD_KEYS]
        if unknown:
            raise ValueError(f"unknown threshold {', '.join(unknown)}; see config.toml [thresholds]")
        if any(x <= 0 for x in v.values()):
            raise ValueError("thresholds are positive numbers")
        return v

    def row_values(self, *, carry_thresholds: dict[str, int] | None = None) -> dict[str, Any]:
        """The values of a `Protocol` row, JSON columns as dicts (`schedule`, `cadence`, ...)."""
        schedule: dict[str, Any] = {}
        if self.target_per_week is not None:
            schedule["target_per_week"] = self.target_per_week
        if self.phases:
            schedule["phases"] = [p.model_dump() for p in self.phases]
        if self.then_min_days is not None or self.then_max_days is not None:
            lo = self.then_min_days or self.then_max_days
            schedule["then"] = {"every_days": [lo, self.then_max_days or lo]}
        cadence = {
            "baseline": self.baseline_vitals, "dosing_every_minutes": self.dosing_every_minutes,
            "recovery_every_minutes": self.recovery_every_minutes, "at_minutes": self.at_minutes,
            "discharge": self.discharge_vitals, "observation_from": self.observation_from, "scores": self.scores,
        }
        values = self.model_dump(exclude={"target_per_week", "phases", "then_min_days", "then_max_days",
                                          "baseline_vitals", "dosing_every_minutes", "recovery_every_minutes",
                                          "at_minutes", "discharge_vitals", "observation_from", "scores",
                                          "scales", "thresholds"})
        thresholds = self.thresholds if self.thresholds is not None else (carry_thresholds or {})
        return values | {"schedule": schedule, "cadence": cadence, "scales": dict(self.scales),
                         "thresholds": dict(thresholds)}


class ProtocolCreate(ProtocolIn):
    code: str = Field(min_length=2, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$",
                      description="Short stable name, lower case and dashes (e.g. iv-induction)")


class ProtocolChange(ProtocolIn):
    based_on_version: int = Field(ge=1, description="The version you changed; if it was replaced since, 409")


def flat_values(protocol: Protocol) -> dict[str, Any]:
    """A protocol row as `ProtocolIn` values (to fill the change form)."""
    schedule, cadence = load_json(protocol.schedule_json), load_json(protocol.cadence_json)
    every = (schedule.get("then") or {}).get("every_days") or [None, None]
    return {
        "name": protocol.name, "route": protocol.route, "dose_rule": protocol.dose_rule,
        "dose_default": protocol.dose_default, "dose_min": protocol.dose_min, "dose_max": protocol.dose_max,
        "infusion_minutes": protocol.infusion_minutes, "pre_minutes": protocol.pre_minutes,
        "post_minutes": protocol.post_minutes, "min_observation_minutes": protocol.min_observation_minutes,
        "induction_sessions": protocol.induction_sessions, "min_days_between": protocol.min_days_between,
        "max_days_between": protocol.max_days_between, "max_per_week": protocol.max_per_week,
        "booster_interval_days": protocol.booster_interval_days,
        "target_per_week": schedule.get("target_per_week"), "phases": list(schedule.get("phases") or []),
        "then_min_days": every[0], "then_max_days": every[1],
        "baseline_vitals": bool(cadence.get("baseline", True)),
        "dosing_every_minutes": cadence.get("dosing_every_minutes"),
        "recovery_every_minutes": cadence.get("recovery_every_minutes"),
        "at_minutes": list(cadence.get("at_minutes") or []), "discharge_vitals": bool(cadence.get("discharge", True)),
        "observation_from": cadence.get("observation_from", "dosing_end"),
        "scores": dict(cadence.get("scores") or {}), "scales": load_json(protocol.scales_json),
        "thresholds": load_json(protocol.thresholds_json),
    }


def row_dicts(protocol: Protocol) -> dict[str, Any]:
    """A row's values with the JSON columns as dicts (what `describe` and `protocol_problems` read)."""
    return protocol.model_dump(exclude={"schedule_json", "cadence_json", "scales_json", "thresholds_json"}) | {
        "schedule": load_json(protocol.schedule_json), "cadence": load_json(protocol.cadence_json),
        "scales": load_json(protocol.scales_json), "thresholds": load_json(protocol.thresholds_json)}


def summary(protocol: Protocol) -> str:
    """The protocol's key parameters in plain words."""
    return describe(row_dicts(protocol))


@dataclass(frozen=True)
class ProtocolDetail:
    protocol: Protocol
    summary: str
    versions: list[Protocol]  # every version of the code, newest first


def _check(values: dict[str, Any]) -> None:
    problems = protocol_problems(values)
    if problems:
        raise InvalidInput("Please check: " + ", ".join(k.replace("_", " ").replace(".", " ") for k in problems)
                           + ".", fields=problems)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    import json

    cols = {k: v for k, v in values.items() if k not in ("schedule", "cadence", "scales", "thresholds")}
    for key in ("schedule", "cadence", "scales", "thresholds"):
        cols[f"{key}_json"] = json.dumps(values[key], sort_keys=True)
    return cols


def _may_manage(actor: Actor) -> None:
    if not allowed(actor.roles, "protocols.manage"):
        raise Forbidden("Only a prescriber or an administrator can change protocols.")


def list_active(db: Session) -> list[Protocol]:
    return list(db.exec(select(Protocol).where(Protocol.active).order_by(Protocol.name, Protocol.code)))


def get(db: Session, protocol_id: int) -> Protocol:
    protocol = db.get(Protocol, protocol_id)
    if protocol is None:
        raise NotFound(f"No protocol with id {protocol_id}.")
    return protocol


def detail(db: Session, protocol_id: int) -> ProtocolDetail:
    protocol = get(db, protocol_id)
    versions = list(db.exec(select(Protocol).where(Protocol.code == protocol.code).order_by(Protocol.version.desc())))
    return ProtocolDetail(protocol, summary(protocol), versions)


def _insert(db: Session, row: Protocol, clash: str) -> None:
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise Conflict(clash, fields={"code": "already in use"} if "code" in clash else None) from exc


def create(db: Session, actor: Actor, data: ProtocolCreate, *, now: datetime) -> Protocol:
    """A new protocol (version 1). Refused when the code is taken, or the values do not hang together."""
    _may_manage(actor)
    values = data.row_values()
    values.pop("code", None)
    _check(values)
    if db.exec(select(Protocol.id).where(Protocol.code == data.code)).first():
        raise Conflict(f"There is already a protocol with the code {data.code}; change that one instead.",
                       fields={"code": "already in use"})
    row = Protocol(code=data.code, version=1, active=True, created_at=now, created_by_id=actor.user_id,
                   **_columns(values))
    _insert(db, row, f"There is already a protocol with the code {data.code}.")
    audit.record(db, actor, "create", "protocol", row.id, after=audit.snapshot(row), at=now)
    db.commit()
    return row


def change(db: Session, actor: Actor, protocol_id: int, data: ProtocolChange, *, now: datetime) -> Protocol:
    """Replace a protocol by its next version; the old row is kept as it was and deactivated.

    Courses ordered under the old version keep pointing at it. A change based on a version that has
    been replaced meanwhile is refused (409) rather than silently overwriting the newer one.
    """
    _may_manage(actor)
    old = get(db, protocol_id)
    newest = db.exec(select(func.max(Protocol.version)).where(Protocol.code == old.code)).one()
    if not old.active or old.version != newest:
        raise Conflict(f"Version {old.version} of {old.name} has been replaced by version {newest}. Nothing was "
                       "saved; open the current version and make the change there.")
    if data.based_on_version != old.version:
        raise Conflict(f"This form was for version {data.based_on_version}, but the current version is "
                       f"{old.version}. Nothing was saved; reload and make the change again.")
    values = data.row_values(carry_thresholds=load_json(old.thresholds_json))
    values.pop("based_on_version", None)
    _check(values)
    before = row_dicts(old)
    changed = sorted(k for k, v in values.items() if before.get(k) != v)
    if not changed:
        raise InvalidInput("Nothing was changed, so no new version was made.")
    old.active = False
    db.add(old)
    db.flush()  # the old row stops being active before the new one starts
    row = Protocol(code=old.code, version=old.version + 1, active=True, created_at=now, created_by_id=actor.user_id,
                   **_columns(values))
    _insert(db, row, f"Someone else changed {old.name} at the same time. Nothing was saved; reload and try again.")
    audit.record(db, actor, "update", "protocol", old.id, before={"active": True},
                 after={"active": False, "replaced_by": row.id}, at=now,
                 detail=f"{old.code} version {old.version} replaced by version {row.version}")
    audit.record(db, actor, "create", "protocol", row.id, at=now,
                 before={k: before.get(k) for k in changed}, after=audit.snapshot(row),
                 detail=f"{old.code} version {row.version}; changed: {', '.join(changed)}"[:500])
    db.commit()
    return row


def ensure_seed_protocols(db: Session) -> None:
    """Insert the shipped protocols that are missing (start-up). Harmless to run again, and when two
    processes start at once the loser's unique-key clash is simply the other one's work done."""
    for attempt in range(2):
        try:
            seed_protocols(db)
            db.commit()
            return
        except IntegrityError:
            db.rollback()
            if attempt:
                raise
