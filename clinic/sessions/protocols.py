"""The treatment protocols a new clinic starts with, and the JSON shapes protocols carry.

`SEED_PROTOCOLS` is plain data (no database); `seed_protocols(db)` inserts the missing (code, version)
rows. A protocol is versioned: a course keeps the protocol row (and so the version) it was ordered with,
so a changed protocol is a new row with `version + 1`, never an edit of the old one.

Column meanings that are easy to get wrong
------------------------------------------
- `dose_default`, `dose_min`, `dose_max` are mg/kg when `dose_rule == "mg_per_kg"` and mg when
  `dose_rule == "fixed_mg"`.
- `infusion_minutes` is the dosing window: the IV infusion, the IM injection (a short 5-minute window)
  or the nasal devices (one device every 5 minutes).
- Chair time = `pre_minutes + infusion_minutes + post_minutes` (`Protocol.chair_minutes`).
- `min_observation_minutes` is counted from the point named by `cadence_json["observation_from"]`
  (IV and IM: the end of dosing; Spravato: the first device, as the REMS programme requires).
- `min_days_between` / `max_days_between` are differences between the calendar dates (site zone) of
  consecutive sessions of a course; for a single-session protocol (a booster) they bound the gap since
  the patient's previous session. `max_per_week` counts sessions in any 7 consecutive days.
- `booster_interval_days`: the usual gap between boosters (maintenance), when the protocol is one.

JSON columns (stored as text; `load_json(protocol.<column>)` gives the dict back)
-------------------------------------------------------------------------------
`schedule_json` — how the sessions of a course are spread out. Every key is optional; `{}` means that
the spacing columns alone govern::

    {
      "target_per_week": 3,                      # what the planner aims for (<= max_per_week)
      "phases": [                                # consecutive phases, in order; the sum of
        {"weeks": 4, "per_week": 2},             # weeks * per_week equals induction_sessions
        {"weeks": 4, "per_week": 1}
      ],
      "then": {"every_days": [7, 14]}            # usual cadence after the course (min, max days)
    }

`cadence_json` — monitoring during one session::

    {
      "baseline": true,                # a full set of vitals (with temperature) before dosing
      "dosing_every_minutes": 10,      # vitals during dosing, counted from its start; null = none
      "recovery_every_minutes": 15,    # vitals after dosing ends, until discharge; null = none
      "at_minutes": [40],              # extra vitals at fixed minutes after dosing starts
                                       #   (Spravato: BP before dosing, at 40 minutes, before leaving)
      "discharge": true,               # a set of vitals just before discharge
      "observation_from": "dosing_end",  # or "dosing_start": where min_observation_minutes starts
      "scores": {                      # in-session scores: scale code -> list of time points, each
        "CADSS-6": ["baseline", 40, "discharge"],   # "baseline" (before dosing), "discharge" (before
        "MOAA/S": ["baseline", 40, "discharge"]     # leaving) or minutes after dosing starts
      }
    }

`scales_json` — symptom scales across the course: scale code -> when (one of `SCALE_WHEN`)::

    {"PHQ-9": "each_session_pre", "GAD-7": "each_session_pre"}

`thresholds_json` — overrides of config.toml `[thresholds]` for this protocol, same keys, e.g.
``{"predose_systolic_max": 150}``; `{}` means the clinic's values apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from clinic import audit
from clinic.sessions.models import Protocol

SCALE_WHEN = {
    "each_session_pre": "Before every session",
    "first_and_last_session_pre": "Before the first and the last session of the course",
    "weekly_pre": "Before the first session of each week",
}
SCORE_POINTS = ("baseline", "discharge")  # besides integers (minutes after dosing starts)
OBSERVATION_FROM = ("dosing_start", "dosing_end")


@dataclass(frozen=True)
class ProtocolSpec:
    """One protocol as shipped: the values of a `Protocol` row, with the JSON columns as dicts."""

    code: str
    name: str
    route: str
    dose_rule: str
    dose_default: float
    dose_min: float
    dose_max: float
    infusion_minutes: int
    pre_minutes: int
    post_minutes: int
    min_observation_minutes: int
    induction_sessions: int
    min_days_between: int
    max_days_between: int | None
    max_per_week: int
    booster_interval_days: int | None = None
    version: int = 1
    schedule: dict[str, Any] = field(default_factory=dict)
    cadence: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)

    @property
    def chair_minutes(self) -> int:
        return self.pre_minutes + self.infusion_minutes + self.post_minutes

    def row_values(self) -> dict[str, Any]:
        """The column values of the `Protocol` row (JSON columns serialised, keys sorted)."""
        return {
            "code": self.code, "version": self.version, "name": self.name, "route": self.route,
            "dose_rule": self.dose_rule, "dose_default": self.dose_default, "dose_min": self.dose_min,
            "dose_max": self.dose_max, "infusion_minutes": self.infusion_minutes,
            "pre_minutes": self.pre_minutes, "post_minutes": self.post_minutes,
            "min_observation_minutes": self.min_observation_minutes,
            "induction_sessions": self.induction_sessions, "min_days_between": self.min_days_between,
            "max_days_between": self.max_days_between, "max_per_week": self.max_per_week,
            "booster_interval_days": self.booster_interval_days,
            "schedule_json": json.dumps(self.schedule, sort_keys=True),
            "cadence_json": json.dumps(self.cadence, sort_keys=True),
            "scales_json": json.dumps(self.scales, sort_keys=True),
            "thresholds_json": json.dumps(self.thresholds, sort_keys=True),
            "active": True,
        }


_SYMPTOM_SCALES = {"PHQ-9": "each_session_pre", "GAD-7": "each_session_pre"}

_IV_CADENCE = {
    "baseline": True,
    "dosing_every_minutes": 10,
    "recovery_every_minutes": 15,
    "at_minutes": [],
    "discharge": True,
    "observation_from": "dosing_end",
    "scores": {"CADSS-6": ["baseline", 40, "discharge"], "MOAA/S": ["baseline", 40, "discharge"]},
}

SEED_PROTOCOLS: list[ProtocolSpec] = [
    ProtocolSpec(
        code="iv-induction", name="IV ketamine induction", route="iv", dose_rule="mg_per_kg",
        dose_default=0.5, dose_min=0.1, dose_max=0.75, infusion_minutes=40, pre_minutes=15,
        post_minutes=45, min_observation_minutes=30, induction_sessions=6, min_days_between=1,
        max_days_between=7, max_per_week=3,
        schedule={"target_per_week": 3},
        cadence=_IV_CADENCE, scales=_SYMPTOM_SCALES,
    ),
    ProtocolSpec(
        code="iv-booster", name="IV ketamine booster", route="iv", dose_rule="mg_per_kg",
        dose_default=0.5, dose_min=0.1, dose_max=0.75, infusion_minutes=40, pre_minutes=15,
        post_minutes=45, min_observation_minutes=30, induction_sessions=1, min_days_between=14,
        max_days_between=42, max_per_week=1, booster_interval_days=28,
        schedule={"then": {"every_days": [14, 42]}},
        cadence=_IV_CADENCE, scales=_SYMPTOM_SCALES,
    ),
    ProtocolSpec(
        code="im-ketamine", name="IM ketamine induction", route="im", dose_rule="mg_per_kg",
        dose_default=0.5, dose_min=0.25, dose_max=0.75, infusion_minutes=5, pre_minutes=15,
        post_minutes=60, min_observation_minutes=45, induction_sessions=6, min_days_between=1,
        max_days_between=7, max_per_week=3,
        schedule={"target_per_week": 2},
        cadence={
            "baseline": True,
            "dosing_every_minutes": None,
            "recovery_every_minutes": 15,
            "at_minutes": [],
            "discharge": True,
            "observation_from": "dosing_end",
            "scores": {"CADSS-6": ["baseline", 30, "discharge"], "MOAA/S": ["baseline", 30, "discharge"]},
        },
        scales=_SYMPTOM_SCALES,
    ),
    ProtocolSpec(
        code="esketamine-nasal", name="Esketamine nasal spray induction", route="intranasal",
        dose_rule="fixed_mg", dose_default=56, dose_min=28, dose_max=84,
        # Up to three devices, 5 minutes apart: a 10-minute dosing window; then at least 120 minutes
        # of observation counted from the first device (REMS).
        infusion_minutes=10, pre_minutes=15, post_minutes=125, min_observation_minutes=120,
        induction_sessions=12, min_days_between=2, max_days_between=7, max_per_week=2,
        schedule={
            "phases": [{"weeks": 4, "per_week": 2}, {"weeks": 4, "per_week": 1}],
            "then": {"every_days": [7, 14]},
        },
        cadence={
            "baseline": True,
            "dosing_every_minutes": None,
            "recovery_every_minutes": 30,
            "at_minutes": [40],
            "discharge": True,
            "observation_from": "dosing_start",
            "scores": {"CADSS-6": ["baseline", 40, "discharge"], "MOAA/S": ["baseline", 40, "discharge"]},
        },
        scales=_SYMPTOM_SCALES,
    ),
]


def spec(code: str) -> ProtocolSpec:
    """The seed protocol with this code."""
    for s in SEED_PROTOCOLS:
        if s.code == code:
            return s
    raise KeyError(f"no seed protocol {code!r}")


def load_json(text: str | None) -> dict[str, Any]:
    """A protocol JSON column as a dict (`{}` for empty)."""
    return json.loads(text) if text else {}


def vitals_check_minutes(cadence: dict[str, Any], *, infusion_minutes: int, until_minute: int
                         ) -> list[tuple[str, int]]:
    """The periodic and fixed vitals checks of one session, as (phase, minutes after dosing starts).

    Dosing checks run every `dosing_every_minutes` up to and including the end of dosing; recovery
    checks every `recovery_every_minutes` after it, strictly before `until_minute` (the planned
    discharge check). `at_minutes` adds fixed checks, unless one already falls within 5 minutes.
    The baseline and discharge checks are anchored to events, not minutes, so they are not listed.
    """
    checks: dict[int, str] = {}
    every = cadence.get("dosing_every_minutes")
    if every:
        m = every
        while m <= infusion_minutes and m < until_minute:
            checks[m] = "dosing"
            m += every
    every = cadence.get("recovery_every_minutes")
    if every:
        m = infusion_minutes + every
        while m < until_minute:
            checks[m] = "recovery"
            m += every
    for m in cadence.get("at_minutes") or []:
        if 0 < m < until_minute and all(abs(m - other) >= 5 for other in checks):
            checks[m] = "dosing" if m <= infusion_minutes else "recovery"
    return sorted(((phase, m) for m, phase in checks.items()), key=lambda pm: pm[1])


def score_points(cadence: dict[str, Any], scale: str) -> list[str | int]:
    """When `scale` is scored during a session: "baseline", minutes after dosing starts, "discharge"."""
    return list((cadence.get("scores") or {}).get(scale, []))


def seed_protocols(db: Session) -> dict[str, Protocol]:
    """Insert the seed protocols that are missing (by code and version); return them by code.

    Idempotent: existing rows are left exactly as they are. Each insert is audited as the system;
    the caller commits.
    """
    existing = {(p.code, p.version): p for p in db.exec(select(Protocol))}
    out: dict[str, Protocol] = {}
    for s in SEED_PROTOCOLS:
        row = existing.get((s.code, s.version))
        if row is None:
            row = Protocol(**s.row_values())
            db.add(row)
            db.flush()
            audit.record(db, audit.SYSTEM, "create", "protocol", row.id,
                         after={"code": s.code, "version": s.version, "name": s.name},
                         detail="seed protocol")
        out[s.code] = row
    return out
