"""Pure rules about protocols: what makes a protocol coherent, and how to say one in plain words.

No database, no Flask. The values are those of a `Protocol` row with the JSON columns as dicts
(`schedule`, `cadence`, `scales`, `thresholds`; shapes documented in `clinic.sessions.protocols`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Symptom scales a protocol may collect across a course, and the in-session scores it may take.
COURSE_SCALES = ("GAD-7", "PHQ-9", "PCL-5", "MADRS", "HAM-A")
SESSION_SCORES = ("CADSS-6", "MOAA/S")

NASAL_DEVICE_MG = 28  # one esketamine device
MAX_MG_PER_KG = 2.0  # above this a ketamine dose is anaesthetic, not a treatment protocol's
MAX_FIXED_MG = 250
MAX_CHAIR_MINUTES = 8 * 60


def most_per_week(min_days_between: int) -> int:
    """How many sessions can fit in 7 consecutive days when they are at least `min_days_between` apart."""
    if min_days_between <= 0:
        return 7
    return min(7, 6 // min_days_between + 1)


def protocol_problems(v: Mapping[str, Any]) -> dict[str, str]:
    """Everything incoherent in a protocol, as {field: message}; empty when it can be saved.

    Field-level ranges are the input model's job; these checks relate fields to each other: the dose
    range and its unit, the spacing and the weekly limit, the phases adding up to the course, the
    monitoring fitting into the chair time.
    """
    p: dict[str, str] = {}
    unit = "mg/kg" if v["dose_rule"] == "mg_per_kg" else "mg"
    lo, default, hi = v["dose_min"], v["dose_default"], v["dose_max"]
    if lo > hi:
        p["dose_min"] = f"The lowest dose ({_num(lo)} {unit}) is above the highest ({_num(hi)} {unit})."
    elif not lo <= default <= hi:
        p["dose_default"] = f"The usual dose must lie between {_num(lo)} and {_num(hi)} {unit}."
    if v["dose_rule"] == "mg_per_kg" and hi > MAX_MG_PER_KG:
        p.setdefault("dose_max", f"At most {_num(MAX_MG_PER_KG)} mg/kg.")
    if v["dose_rule"] == "fixed_mg" and hi > MAX_FIXED_MG:
        p.setdefault("dose_max", f"At most {MAX_FIXED_MG} mg.")
    if v["route"] == "intranasal":
        if v["dose_rule"] != "fixed_mg":
            p["dose_rule"] = "A nasal spray is dosed in devices: choose a fixed dose (mg)."
        else:
            for key in ("dose_min", "dose_default", "dose_max"):
                if v[key] % NASAL_DEVICE_MG or not NASAL_DEVICE_MG <= v[key] <= 3 * NASAL_DEVICE_MG:
                    p.setdefault(key, "One device is 28 mg: use 28, 56 or 84 mg.")

    chair = v["pre_minutes"] + v["infusion_minutes"] + v["post_minutes"]
    if chair > MAX_CHAIR_MINUTES:
        p["post_minutes"] = f"The chair time would be {chair} minutes; at most {MAX_CHAIR_MINUTES}."
    sessions, min_days, max_days = v["induction_sessions"], v["min_days_between"], v["max_days_between"]
    if max_days is not None and max_days < min_days:
        p["max_days_between"] = f"Must be at least the minimum gap ({min_days} days)."
    if sessions > 1 and min_days < 1:
        p["min_days_between"] = "Sessions of a course are on different days: at least 1."
    fit = most_per_week(min_days)
    schedule = v.get("schedule") or {}
    target = schedule.get("target_per_week")
    if target is not None:
        if target > v["max_per_week"]:
            p["target_per_week"] = f"Cannot be above the most per week ({v['max_per_week']})."
        elif target > fit:
            p["target_per_week"] = f"With sessions at least {min_days} days apart, at most {fit} fit in a week."
    phases = schedule.get("phases") or []
    if phases:
        total = sum(ph["weeks"] * ph["per_week"] for ph in phases)
        if total != sessions:
            p["phases"] = f"The phases add up to {total} sessions, but the course has {sessions}."
        for i, ph in enumerate(phases):
            if ph["per_week"] > min(v["max_per_week"], fit):
                p[f"phases.{i}.per_week"] = f"At most {min(v['max_per_week'], fit)} a week with this spacing."
    every = (schedule.get("then") or {}).get("every_days")
    if every and every[0] > every[1]:
        p["then_max_days"] = "Must be at least the shortest gap."
    booster = v.get("booster_interval_days")
    if booster is not None and sessions == 1 and max_days is not None and not min_days <= booster <= max_days:
        p["booster_interval_days"] = f"Must lie within the allowed gap ({min_days}–{max_days} days)."

    cadence = v.get("cadence") or {}
    dosing_every = cadence.get("dosing_every_minutes")
    if dosing_every and dosing_every > v["infusion_minutes"]:
        p["dosing_every_minutes"] = (f"Longer than dosing itself ({v['infusion_minutes']} min); "
                                     "leave it empty for no checks during dosing.")
    span = v["infusion_minutes"] + v["post_minutes"]
    bad = [m for m in cadence.get("at_minutes") or [] if not 0 < m <= span]
    if bad:
        p["at_minutes"] = f"Each must be within the {span} minutes from the start of dosing to the end of chair time."
    room = v["post_minutes"] if cadence.get("observation_from", "dosing_end") == "dosing_end" else span
    if v["min_observation_minutes"] > room:
        start = "the end" if cadence.get("observation_from", "dosing_end") == "dosing_end" else "the start"
        p["min_observation_minutes"] = (f"Does not fit: only {room} minutes of chair time follow {start} of dosing; "
                                        "lengthen the time after dosing.")
    for scale, points in (cadence.get("scores") or {}).items():
        late = [pt for pt in points if isinstance(pt, int) and not 0 < pt <= span]
        if late:
            p["scores"] = f"{scale}: minutes must be within the {span} minutes after dosing starts."
    return p


def _num(x: float) -> str:
    """A dose without trailing zeros: 0.5, 0.75, 56."""
    return f"{x:g}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def describe(v: Mapping[str, Any]) -> str:
    """A protocol's key parameters in plain words, e.g.
    "6 sessions, at least 1 day apart (at most 7), at most 3 a week; 0.5 mg/kg (0.1–0.75) over 40 min;
    chair time 100 min"."""
    sessions = v["induction_sessions"]
    min_days, max_days = v["min_days_between"], v["max_days_between"]
    schedule = v.get("schedule") or {}
    parts = []
    if sessions == 1:
        gap = "1 session"
        if max_days is not None:
            gap += f", {min_days}–{max_days} days after the previous one"
        elif min_days:
            gap += f", at least {min_days} day{'s' if min_days != 1 else ''} after the previous one"
        if v.get("booster_interval_days"):
            gap += f", usually every {v['booster_interval_days']} days"
        parts.append(gap)
    else:
        s = f"{sessions} sessions, at least {min_days} day{'s' if min_days != 1 else ''} apart"
        if max_days is not None:
            s += f" (at most {max_days})"
        s += f", at most {v['max_per_week']} a week"
        phases = schedule.get("phases") or []
        if phases:
            s += " (" + ", then ".join(
                f"{_times(ph['per_week'])} a week for {ph['weeks']} week{'s' if ph['weeks'] != 1 else ''}"
                for ph in phases) + ")"
        parts.append(s)
    unit = "mg/kg" if v["dose_rule"] == "mg_per_kg" else "mg"
    parts.append(f"{_num(v['dose_default'])} {unit} ({_num(v['dose_min'])}–{_num(v['dose_max'])}) "
                 f"over {v['infusion_minutes']} min")
    chair = v["pre_minutes"] + v["infusion_minutes"] + v["post_minutes"]
    parts.append(f"chair time {chair} min")
    return "; ".join(parts)


def describe_cadence(cadence: Mapping[str, Any]) -> list[str]:
    """The monitoring of one session as plain sentences."""
    out = []
    if cadence.get("baseline"):
        out.append("Vitals before dosing (baseline)")
    if cadence.get("dosing_every_minutes"):
        out.append(f"Vitals every {cadence['dosing_every_minutes']} min during dosing")
    if cadence.get("recovery_every_minutes"):
        out.append(f"Vitals every {cadence['recovery_every_minutes']} min in recovery")
    if cadence.get("at_minutes"):
        out.append("Vitals at " + ", ".join(str(m) for m in cadence["at_minutes"]) + " min after dosing starts")
    if cadence.get("discharge"):
        out.append("Vitals before discharge")
    for scale, points in (cadence.get("scores") or {}).items():
        words = [p if isinstance(p, str) else f"{p} min" for p in points]
        out.append(f"{scale}: " + ", ".join(words))
    return out
