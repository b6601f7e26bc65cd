"""The scheduler: a few fixed sweeper jobs, each a thin call into a service.

| job               | every     | service                                    |
|-------------------|-----------|--------------------------------------------|
| `sweep_reminders` | minute    | `clinic.reminders.sweep`                   |
| `send_outbox`     | minute    | `clinic.notify.send_pending`               |
| `sweep_no_shows`  | 5 minutes | `clinic.sessions.noshow.mark_no_shows`     |

Every job reads what is due from the database and is idempotent there (unique outbox keys, conditional
UPDATEs), so a late, repeated or doubled run does no harm; `coalesce` folds a backlog of missed runs
into one and `misfire_grace_time` lets a late run still happen rather than be silently dropped. Jobs
open their own database session from the engine and know nothing of Flask.

One scheduler per deployment: `clinic scheduler` runs it in its own process; `clinic run` may run it
in-process, but only while it holds the scheduler lock (`acquire_scheduler_lock`).
"""

from __future__ import annotations

import fcntl
import logging
import os
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from clinic.audit import SYSTEM
from clinic.config import Settings
from clinic.db import session_scope, utcnow

log = logging.getLogger("clinic.jobs")

JOB_DEFAULTS = {
    "coalesce": True,  # after downtime, one catch-up run rather than one per missed minute
    "misfire_grace_time": 300,  # a run up to 5 minutes late still runs (the default, 1 s, drops it)
    "max_instances": 1,  # never two runs of one job at once within this scheduler
}
# pg_try_advisory_lock key: "Chairside scheduler" (any constant unique to the application will do).
SCHEDULER_LOCK_KEY = 0x43_48_41_49_52_53_43_48  # b"CHAIRSCH"
LOCK_FILE = "scheduler.lock"


# --- the jobs -------------------------------------------------------------------------------------


def sweep_reminders(engine: Engine, settings: Settings, now: datetime | None = None):
    """Write the patient reminders that have come due."""
    from clinic import reminders

    with session_scope(engine) as db:
        result = reminders.sweep(db, settings, now or utcnow())
    if result.written:  # (sessions without an e-mail address come up on every run: not worth a line each)
        log.info("reminders: %s written; %s due sessions have no e-mail address", len(result.written),
                 len(result.no_email))
    return result


def send_outbox(engine: Engine, settings: Settings, now: datetime | None = None):
    """Deliver the outbox messages that are due."""
    from clinic import notify

    with session_scope(engine) as db:
        return notify.send_pending(db, settings, now or utcnow())


def sweep_no_shows(engine: Engine, settings: Settings, now: datetime | None = None) -> list[int]:
    """Mark the booked sessions nobody checked in to as no-shows, after the configured grace."""
    from clinic.sessions.changes import replan_after_no_show
    from clinic.sessions.noshow import mark_no_shows

    now = now or utcnow()
    with session_scope(engine) as db:
        marked = mark_no_shows(db, now, settings.sessions.no_show_grace_minutes)
    if marked:
        log.info("no-shows: %s sessions marked (ids %s)", len(marked), ", ".join(map(str, marked)))
    for session_id in marked:  # a missed session does not restart the course: re-plan what remains
        with session_scope(engine) as db:
            result = replan_after_no_show(db, SYSTEM, session_id, now=now,
                                          granularity=settings.sessions.slot_granularity_minutes)
        if result.problem:
            log.info("no-show %s: the course needs the prescriber (%s)", session_id, result.problem)
    return marked


def sweep_overdue_checks(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """Alerts for vitals and scores not entered within the grace after they were due."""
    from clinic.vitals.service import sweep_overdue

    with session_scope(engine) as db:
        raised = sweep_overdue(db, settings, now or utcnow())
    if raised:
        log.info("overdue checks: %s alerts raised", len(raised))
    return len(raised)


def extend_rota(engine: Engine, settings: Settings, now: datetime | None = None) -> None:
    """Keep the concrete shifts generated twelve weeks ahead (the planner reads them)."""
    from clinic.sessions.rota_service import extend_rota as extend

    with session_scope(engine) as db:
        extend(db, SYSTEM, now or utcnow())
        db.commit()


def _watch_lock(scheduler: BaseScheduler, lock: SchedulerLock) -> None:
    if not lock.alive():
        log.error("the scheduler lock was lost (database connection gone); stopping this scheduler")
        scheduler.shutdown(wait=False)


def build_scheduler(engine: Engine, settings: Settings, *, blocking: bool,
                    lock: SchedulerLock | None = None) -> BaseScheduler:
    """A configured, not yet started scheduler. `blocking=True` for `clinic scheduler` (runs in the
    foreground), False for running next to the web server. With `lock`, a watchdog job stops the
    scheduler if the lock is lost, so two schedulers never keep running side by side."""
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(timezone=UTC, job_defaults=JOB_DEFAULTS,
                    executors={"default": ThreadPoolExecutor(max_workers=4)})
    now = datetime.now(UTC)
    # (function, every n minutes, seconds after start-up of the first run): all run at once on start-up,
    # so a restart catches up at once; the sender follows the reminder sweep by a few seconds.
    every = {"sweep_reminders": (sweep_reminders, 1, 0), "send_outbox": (send_outbox, 1, 15),
             "sweep_no_shows": (sweep_no_shows, 5, 0), "extend_rota": (extend_rota, 24 * 60, 30),
             "sweep_overdue_checks": (sweep_overdue_checks, 1, 5)}
    for job_id, (func, minutes, offset) in every.items():
        first = now + timedelta(seconds=offset)
        scheduler.add_job(func, IntervalTrigger(minutes=minutes, start_date=first, timezone=UTC),
                          args=(engine, settings), id=job_id, name=job_id, next_run_time=first,
                          replace_existing=True)
    if lock is not None:
        scheduler.add_job(_watch_lock, IntervalTrigger(seconds=30, timezone=UTC), args=(scheduler, lock),
                          id="watch_lock", name="watch_lock", replace_existing=True)
    return scheduler


# --- one scheduler per deployment -----------------------------------------------------------------


class SchedulerLock(ABC):
    """Held for as long as this process runs the scheduler."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether this process still holds the lock."""

    @abstractmethod
    def release(self) -> None:
        """Let another process take over."""


class FileSchedulerLock(SchedulerLock):
    """SQLite: an exclusive flock on instance/scheduler.lock (the OS drops it if the process dies)."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def alive(self) -> bool:
        return not self._handle.closed

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


class AdvisoryLock(SchedulerLock):
    """PostgreSQL: a session-level advisory lock on a dedicated connection, kept out of the pool (a
    pooled connection handed back would keep holding the lock for whoever borrows it next)."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def alive(self) -> bool:
        try:
            self._connection.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means the session, and the lock with it, is gone
            return False

    def release(self) -> None:
        if self._connection.closed:
            return
        try:
            self._connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEDULER_LOCK_KEY})
        finally:
            self._connection.close()


def acquire_scheduler_lock(engine: Engine, instance_dir: str | os.PathLike) -> SchedulerLock | None:
    """Take the deployment's scheduler lock without waiting; None if another process holds it."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.detach()  # closing it really closes it, and so releases the lock
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK_KEY}).scalar()
        if not got:
            conn.close()
            return None
        return AdvisoryLock(conn)
    path = Path(instance_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - kept open for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")  # who holds it, for a curious administrator
    handle.flush()
    return FileSchedulerLock(handle)
