"""Configuration is validated at start-up, and a bad value is reported by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinic.config import DEFAULT_CONFIG, SHIPPED_SECRET_KEY, ConfigError, load_settings


def test_shipped_config_loads():
    s = load_settings(env={})
    assert s.clinic.time_zone == "America/New_York"
    assert {site.code for site in s.sites} == {"HBR", "NOR"}
    assert sum(len(site.chairs) for site in s.sites) == 12
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("chairside.db")


def test_environment_overrides_win():
    s = load_settings(env={"CLINIC_DATABASE_URL": "postgresql+psycopg://x@h/db", "CLINIC_IDLE_TIMEOUT_MINUTES": "5"})
    assert s.database_url == "postgresql+psycopg://x@h/db"
    assert s.security.idle_timeout_minutes == 5


@pytest.mark.parametrize(("key", "value", "named"), [
    ("thresholds.systolic_high", -3, "thresholds.systolic_high"),
    ("clinic.time_zone", "Mars/Olympus", "clinic.time_zone"),
    ("security.idle_timeout_minutes", "soon", "security.idle_timeout_minutes"),
    ("clinic.environment", "staging", "clinic.environment"),
    ("vitals.dosing_every_minutes", 1, "vitals.dosing_every_minutes"),
])
def test_invalid_values_name_their_key(key, value, named):
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, overrides={key: value})
    assert named in str(err.value)


def test_bad_opening_hours_name_the_site_and_day(tmp_path: Path):
    text = DEFAULT_CONFIG.read_text().replace('mon = [["08:00", "18:00"]]', 'mon = [["18:00", "08:00"]]', 1)
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"sites\.0\.hours: .*mon: opening 18:00 is not before closing 08:00"):
        load_settings(path, env={})


def test_missing_section_is_named(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('[clinic]\nname = "X"\ntime_zone = "UTC"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert "security: Field required" in str(err.value) and "sites: Field required" in str(err.value)


def test_unknown_key_is_refused_rather_than_ignored():
    with pytest.raises(ConfigError, match="thresholds.sytolic_high"):
        load_settings(env={}, overrides={"thresholds.sytolic_high": 150})


def test_shipped_secret_key_is_refused_in_production():
    with pytest.raises(ConfigError, match="security.secret_key"):
        load_settings(env={"CLINIC_ENV": "production"})
    s = load_settings(env={"CLINIC_ENV": "production", "CLINIC_SECRET_KEY": "x" * 40})
    assert s.security.secret_key != SHIPPED_SECRET_KEY


def test_missing_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})
