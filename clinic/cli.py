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
def run(host: str, port: int, threads: int) -> None:
    """Serve the app (waitress, a production-grade WSGI server)."""
    from waitress import serve

    from clinic import create_app

    try:
        app = create_app()
    except ConfigError as err:
        raise click.ClickException(f"configuration error:\n{err}") from err
    settings = app.extensions["clinic.settings"]
    click.echo(f"Chairside for {settings.clinic.name} at http://{host}:{port} "
               f"(database: {app.extensions['clinic.engine'].url.render_as_string(hide_password=True)})")
    serve(app, host=host, port=port, threads=threads, ident="Chairside")


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
