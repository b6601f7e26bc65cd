"""Pure rules of monitoring one session: from the numbers a nurse types to what the clinic must do next.

No Flask, no database, no clock: "now" is passed in, every datetime is aware (UTC in practice), and every
function returns values. The services load rows, call these rules, and write what they decide.

- **Plausibility** (a typo guard, a hard stop): `PLAUSIBLE`, `plausibility_errors`.
- **Clinical thresholds** (configurable: config.toml `[thresholds]`, then the site's `thresholds`, then the
  protocol's `thresholds_json`): `Thresholds`, `evaluate_vitals`, `evaluate_sedation`. A crossing becomes
  an `AlertDecision`; the service turns it into an `Alert` row once per `alert_dedupe_key`.
- **Cadence**: what is due and what is overdue (`Cadence`, `due_checks`, `next_due`, `overdue_alerts`).
- **Discharge criteria**, each with its evidence (`discharge_criteria`, `discharge_ready`).
- **Dose**: mg from mg/kg and weight, pump rates, nasal devices (`dose_plan`, `nasal_device_due`).
- **Dosing gate**: why dosing cannot start yet (`dosing_gate_problems`).

Domain facts: ../shared/domain.md sections 1, 3 and 4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from clinic.vocab import ALERT_ACTIONS, CHECKLIST_ITEMS, CREDENTIAL_KINDS, DOSE_RULES, ROUTES, SCALES, VITALS_PHASES

# --- plausibility -------------------------------------------------------------------------------

# Physiological limits, inclusive (the same as the CHECK constraints of `vitals_reading`): a value
# outside them is a typo or a bad probe, never a clinical finding.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "systolic": (50, 300),
    "diastolic": (20, 200),
    "heart_rate": (20, 250),
    "spo2": (50, 100),
    "respiratory_rate": (4, 60),
    "temperature_c": (30, 43),
    "weight_kg": (25, 350),
}
UNITS: dict[str, str] = {
    "systolic": "mmHg",
    "diastolic": "mmHg",
    "heart_rate": "bpm",
    "spo2": "%",
    "respiratory_rate": "breaths/min",
    "temperature_c": "°C",
    "weight_kg": "kg",
}
LABELS: dict[str, str] = {
    "systolic": "Systolic",
    "diastolic": "Diastolic",
    "heart_rate": "Heart rate",
    "spo2": "SpO2",
    "respiratory_rate": "Respiratory rate",
    "temperature_c": "Temperature",
    "weight_kg": "Weight",
}


def _num(x: float) -> str:
    """A number as a nurse writes it: 120, 36.6, 0.75 (no trailing zeros)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


def _with_unit(name: str, value: float) -> str:
    return f"{_num(value)} {UNITS[name]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plausibility_errors(values: Mapping[str, float | None]) -> dict[str, str]:
    """The implausible values among `values`, as {field: message}; empty when all can be saved.

    Fields are those of `PLAUSIBLE`; other keys are ignored, and so is a None (not measured). Limits are
    inclusive. The diastolic must also be below the systolic (reported on "diastolic", and only when both
    are otherwise plausible). Messages name the value with its unit and the limits, e.g.
    "Systolic 30 mmHg is not plausible (50–300). Check the reading."
    """
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name not in PLAUSIBLE or value is None:
            continue
        if not _is_number(value):
            errors[name] = f"{LABELS[name]} is not a number. Check the reading."
            continue
        lo, hi = PLAUSIBLE[name]
        if not lo <= value <= hi:
            errors[name] = (f"{LABELS[name]} {_with_unit(name, value)} is not plausible "
                            f"({_num(lo)}–{_num(hi)}). Check the reading.")
    sys_, dia = values.get("systolic"), values.get("diastolic")
    if (sys_ is not None and dia is not None and "systolic" not in errors and "diastolic" not in errors
            and dia >= sys_):
        errors["diastolic"] = (f"Diastolic {_with_unit('diastolic', dia)} must be below systolic "
                               f"{_with_unit('systolic', sys_)}. Check the reading.")
    return errors


# --- thresholds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """The clinical limits that raise alerts (defaults as config.toml `[thresholds]`; same field names).

    Build the effective ones with `Thresholds.merged(config, site_overrides, protocol_thresholds)`.
    """

    predose_systolic_max: int = 140
    predose_diastolic_max: int = 90
    systolic_high: int = 180
    diastolic_high: int = 110
    systolic_critical: int = 200
    diastolic_critical: int = 120
    sustained_recheck_minutes: int = 5
    heart_rate_high: int = 120
    heart_rate_low: int = 50
    spo2_low: int = 92
    respiratory_rate_low: int = 8
    moaas_low: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{f.name}: must be a whole number, got {value!r}")
            lowest = 0 if f.name == "moaas_low" else 1
            if value < lowest:
                raise ValueError(f"{f.name}: must be at least {lowest}, got {value}")
        if self.spo2_low > 100:
            raise ValueError(f"spo2_low: at most 100 %, got {self.spo2_low}")
        if self.moaas_low > 5:
            raise ValueError(f"moaas_low: MOAA/S runs 0–5, got {self.moaas_low}")
        if self.systolic_critical < self.systolic_high:
            raise ValueError("systolic_critical must not be below systolic_high")
        if self.diastolic_critical < self.diastolic_high:
            raise ValueError("diastolic_critical must not be below diastolic_high")
        if self.heart_rate_low >= self.heart_rate_high:
            raise ValueError("heart_rate_low must be below heart_rate_high")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The threshold keys, as in config.toml `[thresholds]` and a protocol's `thresholds_json`."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def merged(cls, base: Mapping[str, Any], *overrides: Mapping[str, Any] | None) -> Thresholds:
        """The effective thresholds: `base` (config.toml), then each override in turn (site, protocol).

        A None or empty override changes nothing; a key missing everywhere keeps its default. An
        unknown key raises ValueError naming it (a misspelt override must not be silently ignored), as
        does a value that is not a whole number or limits that contradict each other. `base` may also
        be the pydantic config section itself (anything with `model_dump()`).
        """
        known = cls.names()
        values: dict[str, int] = {}
        for source in (base, *overrides):
            if source is None:
                continue
            if hasattr(source, "model_dump"):
                source = source.model_dump()
            for key, value in source.items():
                if key not in known:
                    raise ValueError(f"unknown threshold {key!r} (known: {', '.join(known)})")
                if isinstance(value, float) and value.is_integer():
                    value = int(value)  # JSON may carry 150.0
                values[key] = value
        return cls(**values)


# --- threshold alerts ---------------------------------------------------------------------------

Priority = Literal["high", "medium", "low"]
_RANK = {"high": 0, "medium": 1, "low": 2}
SUSTAINED_WINDOW_MINUTES = 20  # two high readings further apart than this are two episodes, not one


@dataclass(frozen=True)
class Reading:
    """One set of vitals as the rules need it (a `VitalsReading` row without the bookkeeping)."""

    id: int | None
    measured_at: datetime
    phase: str
    systolic: int | None = None
    diastolic: int | None = None
    heart_rate: int | None = None
    spo2: int | None = None
    respiratory_rate: int | None = None
    temperature_c: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> Reading:
        """A Reading from anything with the same attribute names (a `VitalsReading` row)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @property
    def has_bp(self) -> bool:
        return self.systolic is not None or self.diastolic is not None

    @property
    def bp(self) -> str:
        """The blood pressure as written on a chart: "152/88 mmHg" ("152/– mmHg" when half is missing)."""
        s = "–" if self.systolic is None else str(self.systolic)
        d = "–" if self.diastolic is None else str(self.diastolic)
        return f"{s}/{d} mmHg"


@dataclass(frozen=True)
class AlertDecision:
    """An alert the rules ask for; the service stores it once (see `alert_dedupe_key`)."""

    rule: str
    priority: Priority
    message: str
    cause_id: int | None
    suggested_action: str  # a key of clinic.vocab.ALERT_ACTIONS

    def __post_init__(self) -> None:
        if self.priority not in _RANK:
            raise ValueError(f"unknown alert priority {self.priority!r}")
        if self.suggested_action not in ALERT_ACTIONS:
            raise ValueError(f"unknown alert action {self.suggested_action!r}")


def alert_dedupe_key(rule: str, cause_table: str, cause_id: int) -> str:
    """The key that makes an alert unique: one alert per rule and cause, however often it is evaluated."""
    return f"{rule}:{cause_table}:{cause_id}"


def _above(value: int | None, limit: int) -> bool:
    return value is not None and value > limit


def _bp_high(r: Reading, t: Thresholds) -> bool:
    return _above(r.systolic, t.systolic_high) or _above(r.diastolic, t.diastolic_high)


def _hr_high(r: Reading, t: Thresholds) -> bool:
    return _above(r.heart_rate, t.heart_rate_high)


def _minutes(delta: timedelta) -> int:
    """Whole minutes in `delta`, rounded down (never negative)."""
    return max(0, int(delta.total_seconds() // 60))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _sustained_since(reading: Reading, before: Sequence[Reading], measured: Any, high: Any,
                     t: Thresholds) -> Reading | None:
    """The earlier reading that shows the value has stayed high long enough, or None.

    Walks back from `reading` through the earlier readings that measured the value (`measured(r)`),
    newest first, while each was also high (`high(r)`) and no gap exceeds SUSTAINED_WINDOW_MINUTES. The
    value is sustained once such an unbroken run reaches back at least `sustained_recheck_minutes` − 1
    minutes (a recheck "after 5 minutes" taken at 4½ still counts). In particular, the latest earlier
    reading being high and 4–20 minutes old is enough.
    """
    need = timedelta(minutes=t.sustained_recheck_minutes - 1)
    window = timedelta(minutes=SUSTAINED_WINDOW_MINUTES)
    newer = reading.measured_at
    for r in before:
        if not measured(r):
            continue
        if newer - r.measured_at > window or not high(r):
            return None
        if reading.measured_at - r.measured_at >= need:
            return r
        newer = r.measured_at
    return None


def _act_now(phase: str) -> str:
    """The suggested first action for an urgent finding: pause the infusion while dosing, else call."""
    return "pause_or_slow" if phase == "dosing" else "prescriber_called"


def _limits(r: Reading, sys_limit: int, dia_limit: int) -> str:
    """Which blood-pressure limit `r` is above, in words ("systolic limit 180 mmHg")."""
    over = []
    if _above(r.systolic, sys_limit):
        over.append(f"systolic limit {sys_limit} mmHg")
    if _above(r.diastolic, dia_limit):
        over.append(f"diastolic limit {dia_limit} mmHg")
    return " and ".join(over)


def evaluate_vitals(reading: Reading, earlier: Sequence[Reading], t: Thresholds) -> list[AlertDecision]:
    """The alerts one set of vitals raises, most urgent first.

    `earlier` are the same session's other readings, in any order; those measured after `reading` (and
    `reading` itself, by identity or id) are ignored. They decide the "sustained" rules.

    Baseline (pre-dose) readings: blood pressure above predose_systolic_max or predose_diastolic_max →
    "predose_bp_high" (medium; dosing is held until a prescriber decides). No other rule applies before
    dosing (the dosing gate treats any baseline alert as a blood-pressure hold).

    Every other phase, blood pressure (first match):
    - systolic > systolic_critical or diastolic > diastolic_critical → "bp_critical" (high; act now);
    - systolic > systolic_high or diastolic > diastolic_high → "bp_high_sustained" (high) if it was
      already high at least sustained_recheck_minutes − 1 minutes earlier (see `_sustained_since`),
      otherwise "bp_high" (medium; recheck in sustained_recheck_minutes minutes).
    Then, each independently: heart rate < heart_rate_low → "hr_low" (medium); heart rate >
    heart_rate_high → "hr_high_sustained" (medium) when sustained as above, else "hr_high" (low;
    recheck); SpO2 < spo2_low → "spo2_low" (high); respiratory rate < respiratory_rate_low → "rr_low"
    (high). Each message states the value, the limit and the unit.
    """
    if reading.phase not in VITALS_PHASES:
        raise ValueError(f"unknown vitals phase {reading.phase!r}")
    before = sorted(
        (r for r in earlier
         if r is not reading and not (reading.id is not None and r.id == reading.id)
         and r.measured_at <= reading.measured_at),
        key=lambda r: r.measured_at, reverse=True)
    cause = reading.id
    out: list[AlertDecision] = []
    if reading.phase == "baseline":
        if _above(reading.systolic, t.predose_systolic_max) or _above(reading.diastolic, t.predose_diastolic_max):
            out.append(AlertDecision(
                "predose_bp_high", "medium",
                f"Pre-dose blood pressure {reading.bp} is above the "
                f"{_limits(reading, t.predose_systolic_max, t.predose_diastolic_max)}. "
                "Hold dosing: a prescriber decides whether to dose.",
                cause, "prescriber_called"))
        return out

    recheck = t.sustained_recheck_minutes
    if _above(reading.systolic, t.systolic_critical) or _above(reading.diastolic, t.diastolic_critical):
        what = "pause the infusion and call the prescriber" if reading.phase == "dosing" else "call the prescriber"
        out.append(AlertDecision(
            "bp_critical", "high",
            f"Blood pressure {reading.bp} is above the critical "
            f"{_limits(reading, t.systolic_critical, t.diastolic_critical)}. Act now: {what}.",
            cause, _act_now(reading.phase)))
    elif _bp_high(reading, t):
        since = _sustained_since(reading, before, lambda r: r.has_bp, lambda r: _bp_high(r, t), t)
        if since is not None:
            what = ("slow or pause the infusion and call the prescriber" if reading.phase == "dosing"
                    else "call the prescriber")
            ago = _plural(_minutes(reading.measured_at - since.measured_at), "minute")
            out.append(AlertDecision(
                "bp_high_sustained", "high",
                f"Blood pressure still high: {reading.bp} now and {since.bp} {ago} earlier, above the "
                f"{_limits(reading, t.systolic_high, t.diastolic_high)}. Act: {what}.",
                cause, _act_now(reading.phase)))
        else:
            out.append(AlertDecision(
                "bp_high", "medium",
                f"Blood pressure {reading.bp} is above the {_limits(reading, t.systolic_high, t.diastolic_high)}. "
                f"Recheck in {_plural(recheck, 'minute')}; if it is still high, act.",
                cause, "continue_recheck"))

    hr = reading.heart_rate
    if hr is not None and hr < t.heart_rate_low:
        out.append(AlertDecision(
            "hr_low", "medium",
            f"Heart rate {hr} bpm is below {t.heart_rate_low} bpm. Check the patient and call the prescriber.",
            cause, "prescriber_called"))
    elif _hr_high(reading, t):
        since = _sustained_since(reading, before, lambda r: r.heart_rate is not None, lambda r: _hr_high(r, t), t)
        if since is not None:
            ago = _plural(_minutes(reading.measured_at - since.measured_at), "minute")
            out.append(AlertDecision(
                "hr_high_sustained", "medium",
                f"Heart rate still above {t.heart_rate_high} bpm: {hr} bpm now and {since.heart_rate} bpm "
                f"{ago} earlier. Tell the prescriber.",
                cause, "prescriber_called"))
        else:
            out.append(AlertDecision(
                "hr_high", "low",
                f"Heart rate {hr} bpm is above {t.heart_rate_high} bpm. Recheck in {_plural(recheck, 'minute')}.",
                cause, "continue_recheck"))
    if reading.spo2 is not None and reading.spo2 < t.spo2_low:
        out.append(AlertDecision(
            "spo2_low", "high",
            f"SpO2 {reading.spo2} % is below {t.spo2_low} %. Act now: check the airway and breathing, "
            "rouse the patient, give oxygen" + (", pause the infusion." if reading.phase == "dosing" else "."),
            cause, _act_now(reading.phase)))
    if reading.respiratory_rate is not None and reading.respiratory_rate < t.respiratory_rate_low:
        out.append(AlertDecision(
            "rr_low", "high",
            f"Respiratory rate {reading.respiratory_rate} breaths/min is below {t.respiratory_rate_low} "
            "breaths/min. Act now: rouse the patient, check the airway"
            + (", pause the infusion." if reading.phase == "dosing" else "."),
            cause, _act_now(reading.phase)))
    return sorted(out, key=lambda d: _RANK[d.priority])


MOAAS_WORDS = {
    5: "responds readily to name in a normal tone",
    4: "lethargic response to name",
    3: "responds only when the name is called loudly or repeatedly",
    2: "responds only to mild prodding or shaking",
    1: "responds only to a painful trapezius squeeze",
    0: "no response",
}


def evaluate_sedation(moaas: int, t: Thresholds, cause_id: int | None = None) -> list[AlertDecision]:
    """The alerts a MOAA/S score (0–5) raises.

    0 → "unresponsive" (high; an emergency: no response, loss of consciousness); 1…moaas_low →
    "sedation_deep" (high). A score outside 0–5 raises ValueError.
    """
    if not isinstance(moaas, int) or isinstance(moaas, bool) or not 0 <= moaas <= 5:
        raise ValueError(f"MOAA/S runs 0–5, got {moaas!r}")
    if moaas == 0:
        return [AlertDecision(
            "unresponsive", "high",
            "MOAA/S 0: no response — loss of consciousness. Emergency: stop the infusion, check airway and "
            "breathing, call for help and the prescriber.",
            cause_id, "stop")]
    if moaas <= t.moaas_low:
        return [AlertDecision(
            "sedation_deep", "high",
            f"MOAA/S {moaas} ({MOAAS_WORDS[moaas]}): sedation deeper than the limit (MOAA/S {t.moaas_low}). "
            "Pause the infusion, rouse the patient and watch airway, breathing and SpO2.",
            cause_id, "pause_or_slow")]
    return []


# --- cadence: what is due -----------------------------------------------------------------------

OBSERVATION_FROM = ("dosing_start", "dosing_end")
EARLY_MINUTES = 3  # a reading up to 3 minutes before its due time satisfies it
MERGE_MINUTES = 5  # an extra check this close to a periodic one is the same check


def _whole_minutes(value: Any, what: str, *, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"{what}: expected a whole number of minutes, got {value!r}")
    return value


@dataclass(frozen=True)
class Cadence:
    """The monitoring cadence of one session (a protocol's `cadence_json` with the clinic's defaults).

    `scores` maps a scale code to its points: "baseline" (before dosing), minutes after dosing starts,
    or "discharge" (before leaving). `grace_minutes` is how long after its due time a check becomes
    overdue (also readable as `grace`).
    """

    baseline: bool = True
    dosing_every_minutes: int | None = 15
    recovery_every_minutes: int | None = 15
    at_minutes: list[int] = field(default_factory=list)
    discharge: bool = True
    observation_from: str = "dosing_end"
    scores: dict[str, list[str | int]] = field(default_factory=dict)
    grace_minutes: int = 5

    @property
    def grace(self) -> int:
        """The same as `grace_minutes`."""
        return self.grace_minutes

    @classmethod
    def from_json(cls, cadence_json: Mapping[str, Any], defaults: Any) -> Cadence:
        """The cadence of a protocol (`cadence_json`, shape in clinic.sessions.protocols).

        `defaults` is config.toml `[vitals]` (anything with dosing_every_minutes, recovery_every_minutes
        and overdue_grace_minutes). A key missing from the JSON takes the default; an explicit null for
        an interval means "no periodic checks then". Malformed values raise ValueError naming the key.
        """
        c = cadence_json or {}

        def default(name: str) -> Any:
            return defaults[name] if isinstance(defaults, Mapping) else getattr(defaults, name)

        def every(name: str) -> int | None:
            value = c[name] if name in c else default(name)
            return None if value is None else _whole_minutes(value, name)

        at = [_whole_minutes(m, "at_minutes") for m in c.get("at_minutes") or []]
        observation_from = c.get("observation_from") or "dosing_end"
        if observation_from not in OBSERVATION_FROM:
            raise ValueError(f"observation_from: expected one of {', '.join(OBSERVATION_FROM)}, "
                             f"got {observation_from!r}")
        scores: dict[str, list[str | int]] = {}
        for scale, points in (c.get("scores") or {}).items():
            if scale not in SCALES:
                raise ValueError(f"scores: unknown scale {scale!r}")
            for p in points:
                if p not in ("baseline", "discharge"):
                    _whole_minutes(p, f"scores.{scale}", allow_zero=True)
            scores[scale] = list(points)
        return cls(
            baseline=bool(c.get("baseline", True)),
            dosing_every_minutes=every("dosing_every_minutes"),
            recovery_every_minutes=every("recovery_every_minutes"),
            at_minutes=sorted(set(at)),
            discharge=bool(c.get("discharge", True)),
            observation_from=observation_from,
            scores=scores,
            grace_minutes=_whole_minutes(default("overdue_grace_minutes"), "overdue_grace_minutes"),
        )


@dataclass(frozen=True)
class Due:
    """One check that is due (or will be): vitals or a scale, when, and whether it is overdue."""

    kind: str  # "vitals" or a scale code ("CADSS-6", "MOAA/S")
    label: str  # plain words: "Vitals", "Baseline vitals", "CADSS-6 at 40 min", "Baseline MOAA/S"
    due_at: datetime
    overdue: bool
    point: str | int  # "baseline", or minutes after dosing started


def vitals_times(cadence: Cadence, *, dosing_start: datetime, dosing_end: datetime | None,
                 until: datetime) -> list[datetime]:
    """The due times of the periodic and fixed vitals checks after dosing starts, up to `until`.

    - During dosing: dosing_start + k × dosing_every_minutes (k ≥ 1) while before `dosing_end` (all of
      them up to `until` while dosing has no end yet).
    - From the end of dosing: every recovery_every_minutes. If dosing had periodic checks, the end of
      dosing itself is a check too (unless a dosing check fell within 5 minutes before it), so there is
      no long gap between the last dosing check and the first recovery one; otherwise (an injection, a
      nasal spray) the first recovery check is one interval after the end.
    - `at_minutes` after dosing starts, unless a periodic check falls within 5 minutes of it.
    """
    times: list[datetime] = []
    every = cadence.dosing_every_minutes
    if every:
        t = dosing_start + timedelta(minutes=every)
        while t <= until and (dosing_end is None or t < dosing_end):
            times.append(t)
            t += timedelta(minutes=every)
    merge = timedelta(minutes=MERGE_MINUTES)
    if dosing_end is not None:
        if every and dosing_end <= until and not any(dosing_end - x < merge for x in times):
            times.append(dosing_end)
        if cadence.recovery_every_minutes:
            step = timedelta(minutes=cadence.recovery_every_minutes)
            t = dosing_end + step
            while t <= until:
                times.append(t)
                t += step
    periodic = list(times)
    for m in cadence.at_minutes:
        t = dosing_start + timedelta(minutes=m)
        if t <= until and all(abs(t - x) >= merge for x in periodic):
            times.append(t)
    return sorted(set(times))


def _open(times: Sequence[datetime], taken: Sequence[datetime]) -> list[datetime]:
    """The due times not satisfied by any of `taken` and not superseded by a later one.

    Time T is satisfied by a measurement in [T − 3 min, next due time) (the last one: any at or after
    T − 3 min). A missed T is superseded once something was measured at or after the next due time:
    that check was missed (its overdue alert was raised when it fell due) and the later one counts now.
    """
    early = timedelta(minutes=EARLY_MINUTES)
    out = []
    for i, t in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else None
        if any(t - early <= m and (nxt is None or m < nxt) for m in taken):
            continue
        if nxt is not None and any(m >= nxt for m in taken):
            continue
        out.append(t)
    return out


def due_checks(cadence: Cadence, *, dosing_start: datetime | None, dosing_end: datetime | None, now: datetime,
               vitals_at: Sequence[datetime], scores_at: Mapping[str, Sequence[datetime]],
               horizon_minutes: int = 240) -> list[Due]:
    """What is due and not yet done, sorted by due time (vitals before scores at the same time).

    Before dosing starts (`dosing_start` None or later than `now`) only the baseline items are due:
    baseline vitals (when the cadence asks for them and none were taken) and each scale with a
    "baseline" point not yet scored; they are due `now` and never overdue.

    Once dosing has started: the vitals times of `vitals_times` and each scale's minute points, up to
    `horizon_minutes` after dosing started (a session left open does not raise alerts for ever). A due
    time is satisfied and superseded as `_open` says; it is overdue when `now` is past it by more than the
    cadence's grace. For vitals only the overdue times and the earliest one not yet overdue are returned
    (the next check, not the whole afternoon); for scores every open point is. "discharge" points are
    not timed: the discharge criteria cover them.
    """
    if dosing_start is None or dosing_start > now:
        out = []
        if cadence.baseline and not vitals_at:
            out.append(Due("vitals", "Baseline vitals", now, False, "baseline"))
        for scale, points in cadence.scores.items():
            if "baseline" in points and not scores_at.get(scale):
                out.append(Due(scale, f"Baseline {scale}", now, False, "baseline"))
        return out
    grace = timedelta(minutes=cadence.grace_minutes)
    until = dosing_start + timedelta(minutes=horizon_minutes)

    def minute_of(t: datetime) -> int:
        return _minutes(t - dosing_start)

    out = []
    upcoming = False
    for t in _open(vitals_times(cadence, dosing_start=dosing_start, dosing_end=dosing_end, until=until),
                   sorted(vitals_at)):
        overdue = now > t + grace
        if overdue or not upcoming:
            out.append(Due("vitals", "Vitals", t, overdue, minute_of(t)))
            upcoming = upcoming or not overdue
    for scale, points in cadence.scores.items():
        minutes = sorted({p for p in points if isinstance(p, int) and not isinstance(p, bool)})
        times = [dosing_start + timedelta(minutes=m) for m in minutes if m <= horizon_minutes]
        for t in _open(times, sorted(scores_at.get(scale, ()))):
            out.append(Due(scale, f"{scale} at {minute_of(t)} min", t, now > t + grace, minute_of(t)))
    return sorted(out, key=lambda d: (d.due_at, d.kind != "vitals", d.kind))


def next_due(cadence: Cadence, *, dosing_start: datetime | None, dosing_end: datetime | None, now: datetime,
             vitals_at: Sequence[datetime], scores_at: Mapping[str, Sequence[datetime]],
             horizon_minutes: int = 240) -> Due | None:
    """The first item of `due_checks` (the most pressing check), or None when nothing is due."""
    due = due_checks(cadence, dosing_start=dosing_start, dosing_end=dosing_end, now=now, vitals_at=vitals_at,
                     scores_at=scores_at, horizon_minutes=horizon_minutes)
    return due[0] if due else None


def overdue_alerts(due: Sequence[Due], session_id: int) -> list[tuple[str, AlertDecision]]:
    """(dedupe key, alert) for every overdue item of `due`, oldest first.

    Vitals → "vitals_overdue"; scores → "score_overdue", one alert per due time naming every scale due
    then (so CADSS-6 and MOAA/S at 40 minutes make one alert, not two sharing a key). Medium priority.
    The key, f"{rule}:treatment_session:{session_id}:{int(due_at.timestamp())}", makes a repeated sweep
    raise nothing new.
    """
    found: list[tuple[datetime, int, str, AlertDecision]] = []
    scores: dict[datetime, list[Due]] = {}
    for d in due:
        if not d.overdue:
            continue
        if d.kind == "vitals":
            found.append((d.due_at, 0, f"vitals_overdue:treatment_session:{session_id}:{int(d.due_at.timestamp())}",
                          AlertDecision("vitals_overdue", "medium",
                                        f"Vitals overdue: they were due {d.point} minutes after dosing began.",
                                        session_id, "continue_recheck")))
        else:
            scores.setdefault(d.due_at, []).append(d)
    for at, items in scores.items():
        names = " and ".join(sorted(i.kind for i in items))
        verb = "was" if len(items) == 1 else "were"
        found.append((at, 1, f"score_overdue:treatment_session:{session_id}:{int(at.timestamp())}",
                      AlertDecision("score_overdue", "medium",
                                    f"{names} overdue: {verb} due {items[0].point} minutes after dosing began.",
                                    session_id, "continue_recheck")))
    return [(key, decision) for _, _, key, decision in sorted(found, key=lambda f: (f[0], f[1]))]


# --- discharge ----------------------------------------------------------------------------------

DISCHARGE_CRITERIA = {
    "min_observation": "Minimum observation time",
    "vitals_back": "Vitals back within pre-dose limits",
    "moaas_5": "MOAA/S 5 (responds readily)",
    "dissociation_resolved": "Dissociation resolved",
    "nausea_controlled": "Nausea controlled",
    "escort_present": "Adult escort present",
    "instructions_given": "Discharge instructions given",
}
VITALS_FRESH_MINUTES = 20  # discharge vitals older than this must be taken again
CADSS_RESOLVED = 2  # CADSS-6 at or below this (or at baseline) counts as resolved


@dataclass(frozen=True)
class Criterion:
    """One discharge criterion, whether it is met, and what shows it."""

    code: str
    label: str
    met: bool
    evidence: str


def _vitals_criterion(now: datetime, latest: Reading | None, baseline: Reading | None, t: Thresholds) -> Criterion:
    code = "vitals_back"
    if latest is None:
        return Criterion(code, DISCHARGE_CRITERIA[code], False, "No vitals recorded yet.")
    age = _minutes(now - latest.measured_at)
    if now - latest.measured_at > timedelta(minutes=VITALS_FRESH_MINUTES):
        return Criterion(code, DISCHARGE_CRITERIA[code], False,
                         f"Last vitals {_plural(age, 'minute')} ago: take a new set "
                         f"(needed within {VITALS_FRESH_MINUTES} minutes).")
    # A patient dosed despite a pre-dose BP above the limits (a prescriber decided) may go home at that
    # baseline: the limit is then the baseline value.
    sys_max, dia_max = t.predose_systolic_max, t.predose_diastolic_max
    allowance = ""
    if (baseline is not None and baseline.systolic is not None and baseline.diastolic is not None
            and (baseline.systolic > sys_max or baseline.diastolic > dia_max)):
        sys_max, dia_max = max(sys_max, baseline.systolic), max(dia_max, baseline.diastolic)
        allowance = f" (the pre-dose baseline {baseline.bp}, above {t.predose_systolic_max}/{t.predose_diastolic_max})"
    problems = []
    if latest.systolic is None or latest.diastolic is None:
        problems.append("blood pressure not measured")
    elif latest.systolic > sys_max or latest.diastolic > dia_max:
        problems.append(f"blood pressure above {sys_max}/{dia_max} mmHg{allowance}")
    if latest.heart_rate is None:
        problems.append("heart rate not measured")
    elif not t.heart_rate_low <= latest.heart_rate <= t.heart_rate_high:
        problems.append(f"heart rate outside {t.heart_rate_low}–{t.heart_rate_high} bpm")
    if latest.spo2 is None:
        problems.append("SpO2 not measured")
    elif latest.spo2 < t.spo2_low:
        problems.append(f"SpO2 below {t.spo2_low} %")
    if latest.respiratory_rate is not None and latest.respiratory_rate < t.respiratory_rate_low:
        problems.append(f"respiratory rate below {t.respiratory_rate_low} breaths/min")
    shown = [f"BP {latest.bp}"]
    if latest.heart_rate is not None:
        shown.append(f"HR {latest.heart_rate} bpm")
    if latest.spo2 is not None:
        shown.append(f"SpO2 {latest.spo2} %")
    if latest.respiratory_rate is not None:
        shown.append(f"RR {latest.respiratory_rate} breaths/min")
    when = "measured just now" if age == 0 else f"measured {_plural(age, 'minute')} ago"
    evidence = ", ".join(shown) + f", {when}"
    if baseline is not None and baseline.has_bp:
        evidence += f" (baseline BP {baseline.bp})"
    if problems:
        evidence += ": " + "; ".join(problems)
    return Criterion(code, DISCHARGE_CRITERIA[code], not problems, evidence + ".")


def _recorded(code: str, value: bool | None) -> Criterion:
    evidence = {None: "Not recorded yet.", False: "No.", True: "Yes."}[value]
    return Criterion(code, DISCHARGE_CRITERIA[code], value is True, evidence)


def discharge_criteria(*, now: datetime, observation_from: datetime | None, min_observation_minutes: int,
                       latest_vitals: Reading | None, baseline_vitals: Reading | None, t: Thresholds,
                       latest_moaas: int | None, baseline_cadss: int | None, latest_cadss: int | None,
                       nausea_controlled: bool | None, escort_present: bool | None, instructions_given: bool | None,
                       observation_anchor: str = "dosing_end") -> list[Criterion]:
    """The discharge criteria in their fixed order, each with whether it is met and the evidence.

    1. min_observation: at least `min_observation_minutes` since `observation_from` (the end of dosing,
       or its start for Spravato: say which with `observation_anchor`), e.g. "45 of 30 minutes since the
       infusion ended"; unmet while `observation_from` is None.
    2. vitals_back: the latest reading, taken within the last 20 minutes, has BP ≤ the pre-dose limits
       (or ≤ the baseline when a prescriber let dosing go ahead above them), heart rate within
       heart_rate_low…heart_rate_high, SpO2 ≥ spo2_low (and a respiratory rate, if taken, ≥
       respiratory_rate_low). The evidence shows the values and how long ago they were measured.
    3. moaas_5: the latest MOAA/S is 5.
    4. dissociation_resolved: the latest CADSS-6 after dosing ≤ max(baseline, 2).
    5–7. nausea_controlled, escort_present, instructions_given: recorded as yes.
    """
    code = "min_observation"
    since = "since the infusion ended" if observation_anchor == "dosing_end" else "since dosing began"
    if observation_from is None:
        not_yet = "Dosing has not ended yet." if observation_anchor == "dosing_end" else "Dosing has not begun."
        out = [Criterion(code, DISCHARGE_CRITERIA[code], False, not_yet)]
    else:
        elapsed = now - observation_from
        out = [Criterion(code, DISCHARGE_CRITERIA[code], elapsed >= timedelta(minutes=min_observation_minutes),
                         f"{_minutes(elapsed)} of {min_observation_minutes} minutes {since}.")]
    out.append(_vitals_criterion(now, latest_vitals, baseline_vitals, t))

    code = "moaas_5"
    if latest_moaas is None:
        out.append(Criterion(code, DISCHARGE_CRITERIA[code], False, "MOAA/S not scored yet."))
    else:
        out.append(Criterion(code, DISCHARGE_CRITERIA[code], latest_moaas == 5,
                             f"MOAA/S {latest_moaas}" + ("." if latest_moaas == 5 else " (needs 5).")))

    code = "dissociation_resolved"
    limit = max(baseline_cadss or 0, CADSS_RESOLVED)
    basis = f"baseline {baseline_cadss}" if baseline_cadss is not None else "no baseline"
    if latest_cadss is None:
        out.append(Criterion(code, DISCHARGE_CRITERIA[code], False, "CADSS-6 not scored since dosing began."))
    else:
        out.append(Criterion(code, DISCHARGE_CRITERIA[code], latest_cadss <= limit,
                             f"CADSS-6 {latest_cadss} ({basis}; needs {limit} or less)."))

    out.append(_recorded("nausea_controlled", nausea_controlled))
    out.append(_recorded("escort_present", escort_present))
    out.append(_recorded("instructions_given", instructions_given))
    return out


def discharge_ready(criteria: Sequence[Criterion]) -> bool:
    """Whether every criterion is met (an empty list is not ready: nothing was checked)."""
    return bool(criteria) and all(c.met for c in criteria)


# --- dose ---------------------------------------------------------------------------------------

NASAL_DEVICE_MG = 28  # one esketamine device
NASAL_DEVICE_MINUTES = 5  # between two devices


class DoseError(ValueError):
    """A dose that cannot be given as entered; `field` names the input to correct."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DosePlan:
    """The dose to give and how: mg, and for an infusion the pump rate; for a nasal spray the devices."""

    dose_mg: float
    mg_per_kg: float | None
    rate_mg_per_h: float | None
    rate_ml_per_h: float | None
    volume_ml: float | None
    devices: int | None


def _dec(x: float) -> Decimal:
    return Decimal(str(x))


def _tenth(x: Decimal) -> float:
    """Rounded half up to 0.1 (35.15 → 35.2), the way a nurse rounds, not banker's rounding."""
    return float(x.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def dose_plan(*, route: str, dose_rule: str, amount: float, weight_kg: float | None, infusion_minutes: int,
              dose_min: float, dose_max: float, concentration_mg_per_ml: float | None = None) -> DosePlan:
    """The dose in mg (and pump rate, volume or devices) from the protocol's rule and the amount entered.

    `amount` is in the rule's unit (mg/kg or mg) and must lie within the protocol's dose_min…dose_max.
    - mg_per_kg: needs today's weight; dose_mg = amount × weight, rounded to 0.1 mg.
    - IV: rate_mg_per_h = dose over `infusion_minutes`; with the bag's concentration also volume_ml and
      rate_ml_per_h (all rounded to 0.1).
    - IM: a single injection: volume_ml from the concentration when given, no rate.
    - Intranasal: a fixed dose in whole 28 mg devices; devices = dose / 28.
    Raises DoseError(field, message) naming the input to correct.
    """
    if route not in ROUTES:
        raise DoseError("route", f"Unknown route {route!r}.")
    if dose_rule not in DOSE_RULES:
        raise DoseError("dose_rule", f"Unknown dose rule {dose_rule!r}.")
    unit = "mg/kg" if dose_rule == "mg_per_kg" else "mg"
    if not _is_number(amount) or amount <= 0:
        raise DoseError("amount", f"Enter the dose in {unit}.")
    if not dose_min - 1e-9 <= amount <= dose_max + 1e-9:
        raise DoseError("amount", f"{_num(float(amount))} {unit} is outside this protocol's range "
                                  f"({_num(float(dose_min))}–{_num(float(dose_max))} {unit}).")
    if weight_kg is not None:
        problem = plausibility_errors({"weight_kg": weight_kg}).get("weight_kg")
        if problem:
            raise DoseError("weight_kg", problem)
    if route == "intranasal":
        if dose_rule != "fixed_mg":
            raise DoseError("dose_rule", "A nasal spray is dosed in whole devices (fixed mg), not by weight.")
        if _dec(amount) % NASAL_DEVICE_MG:
            raise DoseError("amount", f"{_num(float(amount))} mg is not a whole number of devices: one device is "
                                      f"{NASAL_DEVICE_MG} mg (28, 56 or 84 mg).")
        return DosePlan(dose_mg=_tenth(_dec(amount)), mg_per_kg=None, rate_mg_per_h=None, rate_ml_per_h=None,
                        volume_ml=None, devices=int(_dec(amount) / NASAL_DEVICE_MG))
    if dose_rule == "mg_per_kg":
        if weight_kg is None:
            raise DoseError("weight_kg", "Weigh the patient today: the dose follows from mg/kg and weight.")
        dose = _dec(_tenth(_dec(amount) * _dec(weight_kg)))
        mg_per_kg: float | None = float(amount)
    else:
        dose = _dec(_tenth(_dec(amount)))
        mg_per_kg = None
    if concentration_mg_per_ml is not None and (not _is_number(concentration_mg_per_ml)
                                                or concentration_mg_per_ml <= 0):
        raise DoseError("concentration_mg_per_ml", "The concentration must be a positive number of mg/mL.")
    conc = _dec(concentration_mg_per_ml) if concentration_mg_per_ml is not None else None
    volume = _tenth(dose / conc) if conc is not None else None
    rate_mg = rate_ml = None
    if route == "iv":
        if not isinstance(infusion_minutes, int) or isinstance(infusion_minutes, bool) or infusion_minutes <= 0:
            raise DoseError("infusion_minutes", "An infusion needs its length in minutes.")
        rate_mg = _tenth(dose * 60 / infusion_minutes)
        rate_ml = _tenth(dose / conc * 60 / infusion_minutes) if conc is not None else None
    return DosePlan(dose_mg=float(dose), mg_per_kg=mg_per_kg, rate_mg_per_h=rate_mg, rate_ml_per_h=rate_ml,
                    volume_ml=volume, devices=None)


def nasal_device_due(first_device_at: datetime, devices_given: int) -> datetime:
    """When the next nasal device may be given: 5 minutes after the previous one, counted from the first.

    `devices_given` is how many have been given so far (the first at `first_device_at`).
    """
    if devices_given < 0:
        raise ValueError("devices_given cannot be negative")
    return first_device_at + timedelta(minutes=NASAL_DEVICE_MINUTES * devices_given)


# --- the dosing gate ----------------------------------------------------------------------------

USABLE_CONSENT = ("current", "expiring")  # clinic.patients.rules.consent_status values that allow dosing
_NOT_DONE = {"", "no", "false", "not done"}


def _date_words(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _credential_problem(entry: str | Sequence[str], held: Mapping[str, date], today: date) -> str | None:
    kinds = (entry,) if isinstance(entry, str) else tuple(entry)
    if any(k in held and held[k] >= today for k in kinds):
        return None
    name = " or ".join(CREDENTIAL_KINDS.get(k, k) for k in kinds)
    expired = sorted(((held[k], k) for k in kinds if k in held), reverse=True)
    if expired:
        when, kind = expired[0]
        return (f"{CREDENTIAL_KINDS.get(kind, kind)} expired on {_date_words(when)}: the administering nurse "
                "needs a current one.")
    return f"No {name} on record for the administering nurse."


def prescriber_choice(answer: str | None) -> str | None:
    """The decision word of a recorded prescriber decision ("dose: BP accepted" → "dose"), or None."""
    if answer is None:
        return None
    word = answer.split(":", 1)[0].strip().lower()
    return word or None


def dosing_gate_problems(*, checklist: Mapping[str, str], required_items: Sequence[str], consent_status: str | None,
                         nurse_credentials: Mapping[str, date], required_credentials: Sequence[str | Sequence[str]],
                         today: date, predose_bp_high: bool, prescriber_decision: str | None) -> list[str]:
    """Why dosing cannot start, in plain words (empty when it can).

    - each required checklist item not recorded (or answered "no"), by its CHECKLIST_ITEMS label;
    - consent missing, expired or revoked (`consent_status` as clinic.patients.rules.consent_status says;
      "expiring" still allows dosing);
    - each required credential missing or expired on `today` (an entry that is a tuple means any one of
      them, e.g. ("acls", "bls")); `nurse_credentials` maps a kind to the expiry of the best one held;
    - a pre-dose blood pressure above the limits without a prescriber's "dose" decision;
    - a prescriber's "hold" decision, whatever the blood pressure.
    The prescriber decision may carry a note after a colon ("dose: accepted at 150/95").
    """
    problems = []
    for item in required_items:
        answer = checklist.get(item)
        label = CHECKLIST_ITEMS.get(item, item.replace("_", " "))
        if answer is None or not answer.strip():
            problems.append(f"{label}: not recorded.")
        elif answer.strip().lower() in _NOT_DONE:
            problems.append(f"{label}: answered “{answer.strip()}”.")
    if consent_status is None:
        problems.append("No consent on file for this treatment.")
    elif consent_status == "expired":
        problems.append("The patient's consent has expired: renew it before dosing.")
    elif consent_status == "revoked":
        problems.append("The patient has revoked consent.")
    elif consent_status not in USABLE_CONSENT:
        problems.append(f"The patient's consent is not current ({consent_status}).")
    for entry in required_credentials:
        problem = _credential_problem(entry, nurse_credentials, today)
        if problem:
            problems.append(problem)
    decision = prescriber_choice(prescriber_decision)
    if decision == "hold":
        problems.append("A prescriber decided to hold the dose.")
    elif predose_bp_high and decision != "dose":
        problems.append("Pre-dose blood pressure is above the limit: a prescriber must decide whether to dose.")
    return problems
