"""The `clinic` command: run the app, load the demo clinic, migrate, create the first admin."""

from __future__ import annotations

import sys

import click

from clinic.config import ConfigError, load_settings


def _settings():
    try:
        return load_settings()
    except ConfigError as err:
        raise click.ClickException(f"configuration error:\n{err}") from err


@click.group(help="Chairside: the clinical floor of an infusion clinic.")
def main() -> None:
    pass


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True,
              help="Do not run the background jobs in this process (run `clinic scheduler` instead).")
def run(host: str, port: int, threads: int, no_scheduler: bool) -> None:
    """Serve the app (waitress, a production-grade WSGI server).

    Unless --no-scheduler is given, the background jobs (reminders, outbox, no-shows) run in this
    process too, if no other process of the deployment runs them already (a lock decides).
    """
    from waitress import serve

    from clinic import create_app

    try:
        app = create_app()
    except ConfigError as err:
        raise click.ClickException(f"configuration error:\n{err}") from err
    settings = app.extensions["clinic.settings"]
    engine = app.extensions["clinic.engine"]
    click.echo(f"Chairside for {settings.clinic.name} at http://{host}:{port} "
               f"(database: {engine.url.render_as_string(hide_password=True)})")
    scheduler, lock = (None, None) if no_scheduler else _start_in_process_scheduler(engine, settings)
    try:
        serve(app, host=host, port=port, threads=threads, ident="Chairside")
    finally:
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)
        if lock is not None:
            lock.release()


def _log_to_stderr() -> None:
    import logging

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _start_in_process_scheduler(engine, settings):
    """Start the scheduler in the background behind the deployment's lock; (None, None) without it."""
    import logging

    from clinic.jobs import acquire_scheduler_lock, build_scheduler

    _log_to_stderr()
    log = logging.getLogger("clinic.jobs")
    lock = acquire_scheduler_lock(engine, settings.instance_dir)
    if lock is None:
        log.info("another process runs the scheduler; serving without background jobs here")
        return None, None
    scheduler = build_scheduler(engine, settings, blocking=False, lock=lock)
    scheduler.start()
    log.info("background jobs (reminders, outbox, no-shows) run in this process")
    return scheduler, lock


@main.command()
@click.option("--wait", "wait_for_lock", is_flag=True,
              help="If another scheduler holds the lock, wait until it is free instead of exiting.")
def scheduler(wait_for_lock: bool) -> None:
    """Run the background jobs: reminders, the outbox sender, no-shows. One per deployment."""
    import signal
    import time

    from clinic.db import current_revision, head_revision, make_engine
    from clinic.jobs import acquire_scheduler_lock, build_scheduler

    settings = _settings()
    _log_to_stderr()
    engine = make_engine(settings.database_url)
    if current_revision(engine) != head_revision(engine):
        raise click.ClickException("the database schema is not up to date; run `clinic db upgrade` first")
    lock = acquire_scheduler_lock(engine, settings.instance_dir)
    if lock is None and wait_for_lock:
        click.echo("another scheduler holds the lock; waiting for it")
        while lock is None:
            time.sleep(15)
            lock = acquire_scheduler_lock(engine, settings.instance_dir)
    if lock is None:
        raise click.ClickException("another scheduler is already running for this deployment "
                                   "(it holds the scheduler lock); use --wait to stand by")
    # SIGTERM (systemd, docker stop) ends the process the way Ctrl-C does: running jobs finish first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    jobs = build_scheduler(engine, settings, blocking=True, lock=lock)
    click.echo(f"scheduler running for {settings.clinic.name} "
               f"(database: {engine.url.render_as_string(hide_password=True)}); Ctrl-C stops it")
    try:
        jobs.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if jobs.running:
            jobs.shutdown(wait=True)
        lost = not lock.alive()
        lock.release()
    if lost:
        raise click.ClickException("the scheduler lock was lost; stopped (start it again)")


@main.command()
@click.option("--reset", is_flag=True, help="Empty the database first (all data is lost).")
@click.option("--seed", default=7, show_default=True, type=int)
def demo(reset: bool, seed: int) -> None:
    """Load the synthetic demo clinic (no real person's data)."""
    from clinic.db import make_engine, upgrade
    from clinic.demo import DEMO_LOGINS, DEMO_PASSWORD, load_demo

    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    try:
        summary = load_demo(engine, settings, seed=seed, reset=reset)
    except Exception as err:  # a clear message rather than a traceback for the common refusal
        if "already" in str(err).lower():
            raise click.ClickException(f"{err} (use --reset to replace it)") from err
        raise
    click.echo(str(summary))
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, roles, note in DEMO_LOGINS:
        click.echo(f"  {username:<16} {', '.join(roles):<24} {note}")


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from clinic.db import current_revision, make_engine, upgrade

    engine = make_engine(_settings().database_url)
    upgrade(engine)
    click.echo(f"schema at revision {current_revision(engine)}")


@db.command("current")
def db_current() -> None:
    """Show the schema revision."""
    from clinic.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings().database_url)
    click.echo(f"current {current_revision(engine)}; newest {head_revision(engine)}")


@main.command("create-admin")
@click.argument("username")
@click.option("--full-name", required=True)
@click.password_option()
def create_admin(username: str, full_name: str, password: str) -> None:
    """Create an administrator account (for a new installation)."""
    from pydantic import ValidationError

    from clinic.audit import SYSTEM
    from clinic.auth.schemas import StaffCreate
    from clinic.auth.service import create_staff
    from clinic.db import make_engine, session_scope, upgrade
    from clinic.errors import ClinicError

    settings = _settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    try:
        data = StaffCreate(username=username, full_name=full_name, password=password, roles=["admin"])
        with session_scope(engine) as db:
            user = create_staff(db, SYSTEM, data, password_min_length=settings.security.password_min_length)
    except (ClinicError, ValidationError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"administrator {user.username} created")


@main.command("check-config")
def check_config() -> None:
    """Validate config.toml and the environment overrides."""
    s = _settings()
    click.echo(f"ok: {s.clinic.name}, {len(s.sites)} site(s), zone {s.clinic.time_zone}, "
               f"environment {s.clinic.environment}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
