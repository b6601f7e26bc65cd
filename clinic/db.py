"""Database plumbing: the engine, the UTC column type, SQLite pragmas, one session per request.

SQLite is the embedded default; PostgreSQL is used when `database.url` (or CLINIC_DATABASE_URL) names
it. The schema is always built by Alembic migrations (`clinic.migrations`), never by `create_all`, so a
fresh database and an upgraded one are the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from flask import current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

# Named constraints, so migrations can refer to them on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """The current instant as an aware UTC datetime (the only clock the shell reads)."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """An aware-UTC timestamp on every database.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so the value is stored as naive UTC and
    made aware again on the way out. A naive datetime is refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone first")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text from a hand-written query
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The driver's own transaction handling is switched off so that we can say BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn) -> None:
    # A transaction that reads and then writes (an audit row after a read, a booking check then an
    # insert) must hold the write lock from the start: in WAL mode a deferred transaction that tries
    # to upgrade after another writer committed fails at once with SQLITE_BUSY. Read-only work can ask
    # for a deferred transaction with `conn.info["read_only"] = True`. A connection with the execution
    # option `clinic_autocommit` runs each statement on its own (test fixtures that must see fresh data).
    if conn.get_execution_options().get("clinic_autocommit"):
        return
    conn.exec_driver_sql("BEGIN" if conn.info.get("read_only") else "BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url` with the settings Chairside relies on."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 10}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def is_postgres(engine_or_db) -> bool:
    bind = engine_or_db.get_bind() if isinstance(engine_or_db, Session) else engine_or_db
    return bind.dialect.name == "postgresql"


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` with Alembic."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


# --- per-request session -------------------------------------------------------------------------


def get_db() -> Session:
    """The database session of the current request (created on first use)."""
    if "db" not in g:
        g.db = Session(current_app.extensions["clinic.engine"], expire_on_commit=False)
    return g.db


def close_db(_exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session outside a request (CLI, jobs, tests). Commits are the caller's job."""
    db = Session(engine, expire_on_commit=False)
    try:
        yield db
    finally:
        db.rollback()
        db.close()


# --- model helpers -------------------------------------------------------------------------------


def utc_column(*, nullable: bool = False, index: bool = False, default_now: bool = False) -> sa.Column:
    """A `UTCDateTime` column (SQLModel needs a fresh Column object per field)."""
    return sa.Column(
        UTCDateTime(), nullable=nullable, index=index, default=utcnow if default_now else None
    )


def one_of(column: str, values, *, name: str | None = None, nullable: bool = False) -> sa.CheckConstraint:
    """CHECK that `column` holds one of `values` (enumerations stay portable text)."""
    listed = ", ".join(f"'{v}'" for v in values)
    expr = f"{column} IN ({listed})"
    if nullable:
        expr = f"{column} IS NULL OR {expr}"
    return sa.CheckConstraint(expr, name=name or f"{column}_allowed")
