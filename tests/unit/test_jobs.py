"""The scheduler's set-up, its lock, and the pure parts of reminders and delivery (no database)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from hypothesis import given
from hypothesis import strategies as st

from clinic import jobs, notify, reminders
from clinic.config import ConfigError, RemindersSection, load_settings
from clinic.outbox import OutboxMessage

NY = ZoneInfo("America/New_York")
EVENING = RemindersSection()  # send_hour_local = 17
FIXED = RemindersSection(hours_before=24)


@pytest.fixture(scope="module")
def settings():
    return load_settings(overrides={"clinic.environment": "test"})


def started_paused(scheduler):
    scheduler.start(paused=True)  # job defaults are applied when the scheduler starts
    return scheduler


# --- the scheduler --------------------------------------------------------------------------------


def test_the_scheduler_runs_its_sweepers_with_explicit_misfire_and_coalesce(settings):
    scheduler = started_paused(jobs.build_scheduler(sa.create_engine("sqlite://"), settings, blocking=False))
    try:
        found = {j.id: j for j in scheduler.get_jobs()}
        assert set(found) == {"sweep_reminders", "send_outbox", "sweep_no_shows", "extend_rota",
                              "sweep_overdue_checks"}
        assert {k: found[k].trigger.interval for k in found} == {
            "sweep_reminders": timedelta(minutes=1), "send_outbox": timedelta(minutes=1),
            "sweep_no_shows": timedelta(minutes=5), "extend_rota": timedelta(days=1),
            "sweep_overdue_checks": timedelta(minutes=1)}
        assert found["send_outbox"].next_run_time > found["sweep_reminders"].next_run_time  # sends what was written
        for job in found.values():
            assert (job.coalesce, job.misfire_grace_time, job.max_instances) == (True, 300, 1)
            assert job.func in (jobs.sweep_reminders, jobs.send_outbox, jobs.sweep_no_shows, jobs.extend_rota,
                                jobs.sweep_overdue_checks)
            assert job.next_run_time <= datetime.now(UTC) + timedelta(seconds=40)  # catch up at start-up
    finally:
        scheduler.shutdown(wait=False)


def test_clinic_scheduler_blocks_and_clinic_run_runs_it_in_the_background(settings):
    engine = sa.create_engine("sqlite://")
    assert isinstance(jobs.build_scheduler(engine, settings, blocking=True), BlockingScheduler)
    assert isinstance(jobs.build_scheduler(engine, settings, blocking=False), BackgroundScheduler)


class FakeLock(jobs.SchedulerLock):
    def __init__(self) -> None:
        self.held = True

    def alive(self) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False


def test_a_scheduler_that_loses_its_lock_stops(settings):
    lock = FakeLock()
    scheduler = started_paused(jobs.build_scheduler(sa.create_engine("sqlite://"), settings, blocking=False,
                                                    lock=lock))
    assert "watch_lock" in {j.id for j in scheduler.get_jobs()}
    jobs._watch_lock(scheduler, lock)
    assert scheduler.running
    lock.held = False
    jobs._watch_lock(scheduler, lock)
    assert not scheduler.running


def test_the_file_lock_refuses_a_second_holder(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    first = jobs.acquire_scheduler_lock(engine, tmp_path / "instance")
    assert first is not None and first.alive()
    assert (tmp_path / "instance" / "scheduler.lock").read_text().strip().isdigit()  # the holder's pid
    assert jobs.acquire_scheduler_lock(engine, tmp_path / "instance") is None
    first.release()
    second = jobs.acquire_scheduler_lock(engine, tmp_path / "instance")
    assert second is not None
    second.release()


def test_the_file_lock_refuses_another_process(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    probe = ("import sys, sqlalchemy as sa; from clinic.jobs import acquire_scheduler_lock; "
             f"lock = acquire_scheduler_lock(sa.create_engine('sqlite://'), {str(tmp_path)!r}); "
             "print('held' if lock is None else 'acquired')")
    lock = jobs.acquire_scheduler_lock(engine, tmp_path)
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "held"
    finally:
        lock.release()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "acquired"


# --- when a reminder is due -----------------------------------------------------------------------


def utc(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def test_the_reminder_goes_out_at_five_in_the_evening_before_in_the_sites_zone():
    start = datetime(2027, 1, 12, 9, 0, tzinfo=NY)
    assert reminders.due_at(start, NY, EVENING) == utc(2027, 1, 11, 22)  # 17:00 EST
    late_evening = datetime(2027, 1, 12, 23, 30, tzinfo=NY)  # 04:30 UTC the next day
    assert reminders.due_at(late_evening, NY, EVENING) == utc(2027, 1, 11, 22)


def test_the_evening_before_stays_at_five_across_the_spring_change():
    # Clocks go forward on Sunday 14 March 2027 in New York.
    monday = datetime(2027, 3, 15, 9, 0, tzinfo=NY)
    sunday = datetime(2027, 3, 14, 10, 0, tzinfo=NY)
    assert reminders.due_at(monday, NY, EVENING) == utc(2027, 3, 14, 21)  # 17:00 EDT
    assert reminders.due_at(sunday, NY, EVENING) == utc(2027, 3, 13, 22)  # 17:00 EST


def test_the_evening_before_stays_at_five_across_the_autumn_change():
    # Clocks go back on Sunday 7 November 2027 in New York.
    monday = datetime(2027, 11, 8, 9, 0, tzinfo=NY)
    sunday = datetime(2027, 11, 7, 10, 0, tzinfo=NY)
    assert reminders.due_at(monday, NY, EVENING) == utc(2027, 11, 7, 22)  # 17:00 EST
    assert reminders.due_at(sunday, NY, EVENING) == utc(2027, 11, 6, 21)  # 17:00 EDT


def test_hours_before_is_a_fixed_interval_before_the_start():
    start = datetime(2027, 3, 15, 9, 0, tzinfo=NY)
    assert reminders.due_at(start, NY, FIXED) == start.astimezone(UTC) - timedelta(hours=24)


def test_a_session_starting_within_the_notice_gets_no_reminder():
    now = utc(2027, 1, 12, 12)
    assert reminders.too_late(now + timedelta(hours=1, minutes=59), now, EVENING)
    assert not reminders.too_late(now + timedelta(hours=2), now, EVENING)


ZONES = [ZoneInfo(z) for z in ("America/New_York", "Europe/London", "Pacific/Auckland", "Asia/Kolkata",
                               "Australia/Lord_Howe", "America/St_Johns")]


@given(now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC)),
       ahead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=120)),
       zone=st.sampled_from(ZONES), hour=st.integers(0, 23))
def test_every_session_already_due_lies_within_the_sweeps_lookahead(now, ahead, zone, hour):
    """The sweep only reads sessions up to `lookahead` ahead; none that is due may lie beyond it."""
    for cfg in (RemindersSection(send_hour_local=hour), FIXED):
        if reminders.due_at(now + ahead, zone, cfg) <= now:
            assert ahead <= reminders.lookahead(cfg)


# --- what it says ---------------------------------------------------------------------------------


def compose(**overrides):
    values = dict(first_name="Robin", starts_at=datetime(2027, 1, 12, 14, 5, tzinfo=NY), zone=NY,
                  clinic_name="Harbourview Infusion Clinic", site_name="Northgate", time_format="24h",
                  preparation=EVENING.preparation)
    return reminders.compose(**(values | overrides))


def test_the_text_gives_local_date_and_time_the_site_and_the_preparation():
    text = compose()
    assert text.subject == "Reminder: your appointment on Tuesday 12 January at 14:05"
    assert "Tuesday 12 January 2027 at 14:05 (EST)" in text.body
    assert "Harbourview Infusion Clinic, Northgate" in text.body
    for line in EVENING.preparation.splitlines():
        assert line in text.body


def test_a_twelve_hour_clinic_gets_twelve_hour_times():
    assert compose(time_format="12h").subject.endswith("at 2:05 PM")
    assert compose(time_format="12h", starts_at=datetime(2027, 1, 12, 0, 30, tzinfo=NY)).subject.endswith(
        "at 12:30 AM")


def test_a_site_named_like_the_clinic_is_not_named_twice():
    assert "    Harbourview Infusion Clinic\n" in compose(site_name="Harbourview").body


def test_the_default_preparation_follows_the_domain_note():
    text = EVENING.preparation
    assert "2 hours" in text and "30 minutes" in text and "adult" in text and "until the next day" in text


# --- delivery -------------------------------------------------------------------------------------


def test_failed_messages_wait_longer_each_time_up_to_an_hour():
    assert [notify.retry_delay(n) for n in range(1, 7)] == [timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)]


def test_the_email_is_plain_text_with_a_message_id_derived_from_the_row(settings):
    row = OutboxMessage(id=42, recipient="robin@example.org", subject="Reminder", body="Dear Robin,\n",
                        due_at=utc(2027, 1, 11, 22), dedupe_key="reminder:7:day_before")
    raw = notify.build_email(row, settings.smtp.from_address, utc(2027, 1, 11, 22)).as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["Message-ID"] == "<chairside.outbox.42@harbourview.example>"
    assert parsed["To"] == "robin@example.org" and parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "text/plain" and parsed.get_content() == "Dear Robin,\n"


# --- configuration --------------------------------------------------------------------------------


def test_the_shipped_config_has_smtp_and_reminders(settings):
    assert settings.reminders.enabled and settings.reminders.send_hour_local == 17
    assert settings.smtp.port == 25 and settings.smtp.username is None and settings.smtp.password is None


@pytest.mark.parametrize(("overrides", "named"), [
    ({"reminders.hours_before": 12}, "reminders: set send_hour_local or hours_before, not both"),
    ({"reminders.send_hour_local": 24}, "reminders.send_hour_local"),
    ({"smtp.username": "clinic"}, "smtp: a username is set without use_tls or starttls"),
    ({"smtp.use_tls": True, "smtp.starttls": True}, "use_tls and starttls"),
    ({"smtp.from_address": "nobody"}, "smtp.from_address: not an e-mail address"),
])
def test_bad_mail_settings_name_their_key(overrides, named):
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"clinic.environment": "test"} | overrides)
    assert named in str(err.value)


def test_the_smtp_password_comes_from_the_environment():
    s = load_settings(env={"CLINIC_SMTP_USERNAME": "clinic", "CLINIC_SMTP_PASSWORD": "s3cret",
                           "CLINIC_SMTP_PORT": "587"},
                      overrides={"clinic.environment": "test", "smtp.starttls": True})
    assert (s.smtp.username, s.smtp.password, s.smtp.port) == ("clinic", "s3cret", 587)


def test_hours_before_replaces_the_evening_send_hour():
    s = load_settings(overrides={"clinic.environment": "test", "reminders.send_hour_local": "",
                                 "reminders.hours_before": 20})
    assert (s.reminders.send_hour_local, s.reminders.hours_before) == (None, 20)
