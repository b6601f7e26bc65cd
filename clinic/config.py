"""Configuration: `config.toml` plus environment overrides, typed and validated at start-up.

A missing or invalid value stops the app with a message naming the key (e.g.
``config.toml: thresholds.systolic_high: Input should be greater than 0``).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, time
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.toml"
SHIPPED_SECRET_KEY = "chairside-development-key-do-not-use-in-production"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ENV_OVERRIDES = {
    # environment variable -> dotted key
    "CLINIC_DATABASE_URL": "database.url",
    "CLINIC_SECRET_KEY": "security.secret_key",
    "CLINIC_ENV": "clinic.environment",
    "CLINIC_TIME_ZONE": "clinic.time_zone",
    "CLINIC_IDLE_TIMEOUT_MINUTES": "security.idle_timeout_minutes",
    "CLINIC_INSTANCE_PATH": "clinic.instance_path",
    "CLINIC_SMTP_HOST": "smtp.host",
    "CLINIC_SMTP_PORT": "smtp.port",
    "CLINIC_SMTP_USERNAME": "smtp.username",
    "CLINIC_SMTP_PASSWORD": "smtp.password",
}


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ClinicSection(_Strict):
    name: str = Field(min_length=1)
    time_zone: str
    time_format: Literal["24h", "12h"] = "24h"
    environment: Literal["development", "test", "production"] = "production"
    instance_path: str = "instance"

    _zone = field_validator("time_zone")(_check_zone)


class SecuritySection(_Strict):
    secret_key: str = Field(min_length=16)
    idle_timeout_minutes: float = Field(default=15, gt=0, le=24 * 60)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    password_min_length: int = Field(default=10, ge=8)
    draft_keep_hours: int = Field(default=12, ge=1)


class DatabaseSection(_Strict):
    url: str = ""


class SessionDefaults(_Strict):
    pre_assessment_minutes: int = Field(default=15, ge=0, le=120)
    recovery_minutes: int = Field(default=45, ge=0, le=240)
    no_show_grace_minutes: int = Field(default=30, ge=5, le=240)
    slot_granularity_minutes: int = Field(default=15, ge=5, le=60)


class VitalsCadence(_Strict):
    dosing_every_minutes: int = Field(default=15, ge=5, le=60)
    recovery_every_minutes: int = Field(default=15, ge=5, le=60)
    overdue_grace_minutes: int = Field(default=5, ge=1, le=60)


class Thresholds(_Strict):
    predose_systolic_max: int = Field(default=140, gt=0)
    predose_diastolic_max: int = Field(default=90, gt=0)
    systolic_high: int = Field(default=180, gt=0)
    diastolic_high: int = Field(default=110, gt=0)
    systolic_critical: int = Field(default=200, gt=0)
    diastolic_critical: int = Field(default=120, gt=0)
    sustained_recheck_minutes: int = Field(default=5, ge=1)
    heart_rate_high: int = Field(default=120, gt=0)
    heart_rate_low: int = Field(default=50, gt=0)
    spo2_low: int = Field(default=92, gt=0, le=100)
    respiratory_rate_low: int = Field(default=8, gt=0)
    moaas_low: int = Field(default=2, ge=0, le=5)

    @model_validator(mode="after")
    def _ordered(self):
        if self.systolic_critical < self.systolic_high:
            raise ValueError("systolic_critical must not be below systolic_high")
        if self.diastolic_critical < self.diastolic_high:
            raise ValueError("diastolic_critical must not be below diastolic_high")
        return self


class Contraindication(_Strict):
    """One entry of the clinic's contraindication list (a plain string in config.toml is its label).

    `terms` are the words (or word beginnings, e.g. "pregnan") that show that an "eligible" decision's
    reasons address it; left out, the label's distinctive words are used.
    """

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    label: str = Field(min_length=1, max_length=120)
    terms: list[str] = []


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40]


DEFAULT_CONTRAINDICATIONS = [
    {"code": "aneurysmal_vascular_disease", "label": "Aneurysmal vascular disease",
     "terms": ["aneurysm", "vascular"]},
    {"code": "arteriovenous_malformation", "label": "Arteriovenous malformation",
     "terms": ["arteriovenous", "AVM", "malformation"]},
    {"code": "intracerebral_haemorrhage", "label": "History of intracerebral haemorrhage",
     "terms": ["intracerebral", "haemorrhag", "hemorrhag", "bleed"]},
    {"code": "hypersensitivity", "label": "Hypersensitivity to ketamine or esketamine",
     "terms": ["hypersensitiv", "allerg"]},
    {"code": "uncontrolled_hypertension", "label": "Uncontrolled hypertension",
     "terms": ["hypertens", "blood pressure", "BP"]},
    {"code": "psychosis_history", "label": "Active psychosis or a history of psychosis",
     "terms": ["psychos", "psychotic", "schizo"]},
    {"code": "active_substance_misuse", "label": "Active substance misuse",
     "terms": ["substance", "misuse", "abuse", "DAST", "alcohol", "drug"]},
    {"code": "pregnancy", "label": "Pregnancy", "terms": ["pregnan"]},
    {"code": "severe_cardiac_disease", "label": "Severe cardiac disease", "terms": ["cardiac", "heart", "cardio"]},
    {"code": "severe_liver_disease", "label": "Severe liver disease", "terms": ["liver", "hepat"]},
    {"code": "raised_intracranial_pressure", "label": "Raised intracranial pressure", "terms": ["intracranial", "ICP"]},
    {"code": "raised_intraocular_pressure", "label": "Raised intraocular pressure",
     "terms": ["intraocular", "glaucoma", "IOP"]},
]


class EligibilitySection(_Strict):
    contraindications: list[Contraindication] = Field(
        default_factory=lambda: [Contraindication(**c) for c in DEFAULT_CONTRAINDICATIONS], min_length=1)
    valid_days: int = Field(default=180, ge=1, le=730)  # an evaluation's default validity
    substance_flag_score: int = Field(default=3, ge=0, le=10)  # DAST-10 from which a substance-use flag is set

    @field_validator("contraindications", mode="before")
    @classmethod
    def _labels_allowed(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"code": _slug(v), "label": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("contraindications")
    @classmethod
    def _unique_codes(cls, value: list[Contraindication]) -> list[Contraindication]:
        codes = [c.code for c in value]
        if len(set(codes)) != len(codes):
            raise ValueError("contraindication codes must be unique")
        return value


DEFAULT_PREPARATION = """\
- Do not eat for about 2 hours before your appointment.
- Do not drink anything, not even water, for about 30 minutes before it.
- Bring an adult who will take you home: you must not drive yourself afterwards.
- Do not drive, cycle or operate machinery until the next day."""


def _blank_is_none(value: Any) -> Any:
    # TOML has no null: an empty string means "not set".
    return None if isinstance(value, str) and not value.strip() else value


class SmtpSection(_Strict):
    """Outgoing e-mail. The password is best given as CLINIC_SMTP_PASSWORD, not written in the file."""

    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # TLS from the first byte (SMTPS, usually port 465)
    starttls: bool = False  # upgrade a plain connection with STARTTLS (usually port 587)
    from_address: str = "Chairside <reminders@localhost>"
    timeout_seconds: float = Field(default=30, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=50)

    _blank = field_validator("username", "password", mode="before")(_blank_is_none)

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"not an e-mail address: {value!r} (e.g. \"Clinic <reminders@example.org>\")")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.use_tls and self.starttls:
            raise ValueError("use_tls and starttls are two ways of doing TLS; set one of them")
        if self.password and not self.username:
            raise ValueError("a password is set but no username")
        if self.username and not (self.use_tls or self.starttls):
            raise ValueError("a username is set without use_tls or starttls; the password would travel in clear")
        return self


class RemindersSection(_Strict):
    """The day-before reminder e-mailed to each patient (delivered through [smtp])."""

    enabled: bool = True
    send_hour_local: int | None = Field(default=17, ge=0, le=23)  # the day before, in the site's zone
    hours_before: int = Field(default=24, ge=1, le=72)  # used when send_hour_local is not set
    min_notice_hours: float = Field(default=2, ge=0, le=24)  # too late to prepare: no reminder
    preparation: str = Field(default=DEFAULT_PREPARATION, min_length=1, max_length=4000)

    @model_validator(mode="before")
    @classmethod
    def _one_timing(cls, data: Any) -> Any:
        # Giving hours_before means "a fixed time before the start" instead of the evening before.
        if isinstance(data, dict) and "hours_before" in data:
            if _blank_is_none(data.get("send_hour_local")) is not None:
                raise ValueError("set send_hour_local or hours_before, not both")
            data = {**data, "send_hour_local": None}
        return data

    @field_validator("preparation")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the preparation instructions are empty")
        return value


DEFAULT_ALWAYS_REPORT = ["over_sedation", "respiratory_depression", "allergic_reaction"]


class ReportingSection(_Strict):
    """Onward reporting of adverse events. Serious and severe events are always flagged; `always_report`
    names the kinds (clinic.vocab.ADVERSE_EVENT_KINDS) the clinic's policy flags whatever their severity."""

    always_report: list[str] = Field(default_factory=lambda: list(DEFAULT_ALWAYS_REPORT))

    @field_validator("always_report")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        from clinic.vocab import ADVERSE_EVENT_KINDS

        unknown = [k for k in value if k not in ADVERSE_EVENT_KINDS]
        if unknown:
            raise ValueError(f"unknown adverse event kind {', '.join(map(repr, unknown))}; "
                             f"use one of {', '.join(ADVERSE_EVENT_KINDS)}")
        return list(dict.fromkeys(value))


class SiteConfig(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{2,8}$")
    name: str = Field(min_length=1)
    time_zone: str | None = None
    chairs: list[str] = Field(min_length=1)
    nurse_ratio_dosing: int = Field(default=2, ge=1, le=8)
    nurse_ratio_recovery: int = Field(default=4, ge=1, le=12)
    hours: dict[str, list[list[str]]]
    closed_days: list[date] = []
    thresholds: dict[str, int] = {}  # this site's overrides of [thresholds] (a protocol's own still win)

    _zone = field_validator("time_zone")(lambda v: v if v is None else _check_zone(v))

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, int]):
        unknown = sorted(set(value) - set(Thresholds.model_fields))
        if unknown:
            raise ValueError(f"unknown threshold {', '.join(unknown)}; use one of {', '.join(Thresholds.model_fields)}")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[list[str]]]):
        for day, spans in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
            for span in spans:
                if len(span) != 2 or not all(_HHMM.match(t) for t in span):
                    raise ValueError(f"{day}: each opening span is [\"HH:MM\", \"HH:MM\"], got {span!r}")
                if time.fromisoformat(span[0]) >= time.fromisoformat(span[1]):
                    raise ValueError(f"{day}: opening {span[0]} is not before closing {span[1]}")
        return value

    @field_validator("chairs")
    @classmethod
    def _unique_chairs(cls, value: list[str]):
        if len(set(value)) != len(value):
            raise ValueError("chair labels must be unique within a site")
        return value


class Settings(_Strict):
    clinic: ClinicSection
    security: SecuritySection
    database: DatabaseSection = DatabaseSection()
    sessions: SessionDefaults = SessionDefaults()
    vitals: VitalsCadence = VitalsCadence()
    thresholds: Thresholds = Thresholds()
    eligibility: EligibilitySection = EligibilitySection()
    smtp: SmtpSection = SmtpSection()
    reminders: RemindersSection = RemindersSection()
    reporting: ReportingSection = ReportingSection()
    sites: list[SiteConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_sites(self):
        codes = [s.code for s in self.sites]
        if len(set(codes)) != len(codes):
            raise ValueError("site codes must be unique")
        return self

    @property
    def instance_dir(self) -> Path:
        p = Path(self.clinic.instance_path)
        return p if p.is_absolute() else REPO_ROOT / p

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.instance_dir / 'chairside.db'}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.clinic.time_zone)

    def site_zone(self, code: str) -> ZoneInfo:
        site = next(s for s in self.sites if s.code == code)
        return ZoneInfo(site.time_zone or self.clinic.time_zone)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, key = dotted.split(".", 1)
    data.setdefault(section, {})
    if not isinstance(data[section], dict):
        raise ConfigError(f"{section}: must be a table")
    data[section][key] = value


def _format_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def load_settings(
    path: str | os.PathLike | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate the configuration.

    Order: the TOML file (`path`, else $CLINIC_CONFIG, else the repository's config.toml), then the
    environment variables in ENV_OVERRIDES, then `overrides` (dotted keys; used by tests).
    """
    env = os.environ if env is None else env
    path = Path(path or env.get("CLINIC_CONFIG") or DEFAULT_CONFIG)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from exc
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_dotted(data, dotted, env[var])
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(path.name, exc)) from exc
    if settings.clinic.environment == "production" and settings.security.secret_key == SHIPPED_SECRET_KEY:
        raise ConfigError(
            f"{path.name}: security.secret_key: the shipped development key is refused in production; "
            "set CLINIC_SECRET_KEY to a long random value"
        )
    return settings
