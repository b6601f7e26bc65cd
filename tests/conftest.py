"""Shared fixtures. Integration tests run once per database backend: SQLite always, PostgreSQL when
reachable (and always under CI=true, where an unreachable PostgreSQL fails the run)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from clinic import create_app
from clinic.auth.models import StaffRole, StaffSite, StaffUser
from clinic.auth.passwords import hash_password
from clinic.config import load_settings
from clinic.db import make_engine, upgrade
from clinic.sessions.models import Site

CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("CLINIC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct-horse-battery"
_HASH = hash_password(PASSWORD)  # hashed once: argon2 is slow on purpose


def _pg_reachable() -> str | None:
    try:
        eng = sa.create_engine(PG_URL)
        with eng.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'chairside-test.db'}"
        return
    if os.environ.get("CLINIC_TEST_POSTGRES") == "skip" and not CI:
        pytest.skip("PostgreSQL tests skipped (CLINIC_TEST_POSTGRES=skip)")
    problem = _pg_reachable()
    if problem:
        if CI:
            pytest.fail(f"PostgreSQL unreachable at {PG_URL} under CI=true: {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {problem}")
    schema = f"cs_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(scope="session")
def backend(database_url) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture(scope="session")
def engine(database_url):
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings():
    return load_settings(overrides={"clinic.environment": "test"})


class Clock:
    """A clock the tests can move: `app.extensions['clinic.clock']`."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


@pytest.fixture(scope="session")
def app(engine, settings):
    application = create_app(settings=settings, engine=engine)
    application.extensions["clinic.clock"] = Clock()
    return application


_SQLITE_AUDIT_TRIGGERS = [
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
]


def wipe(engine) -> None:
    """Empty every table between tests (sites and chairs are re-synced from config by the caller)."""
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
            for name in tables:
                conn.exec_driver_sql(f"DELETE FROM {name}")
            if _has_sequence(conn):
                conn.exec_driver_sql("DELETE FROM sqlite_sequence")
            for ddl in _SQLITE_AUDIT_TRIGGERS:
                conn.exec_driver_sql(ddl)


def _has_sequence(conn) -> bool:
    return bool(conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first())


class FreshSession(Session):
    """The test's session: every read goes to the database, since the app changes rows behind it."""

    def exec(self, statement, *args, **kwargs):
        if hasattr(statement, "execution_options") and getattr(statement, "is_select", False):
            statement = statement.execution_options(populate_existing=True)
        return super().exec(statement, *args, **kwargs)

    def get(self, entity, ident, **kwargs):
        kwargs.setdefault("populate_existing", True)
        return super().get(entity, ident, **kwargs)


@pytest.fixture
def db(app, engine, settings) -> Iterator[Session]:
    """A clean database (config sites synced) and a session on it."""
    from clinic.sessions.service import sync_sites

    app.extensions["clinic.clock"].now = None
    wipe(engine)
    # The test's own session commits each statement as it goes, so it always sees what the app wrote
    # and never holds a lock the app is waiting for.
    if engine.dialect.name == "sqlite":
        bind = engine.execution_options(clinic_autocommit=True)
    else:
        bind = engine.execution_options(isolation_level="AUTOCOMMIT")
    with FreshSession(bind, expire_on_commit=False) as session:
        sync_sites(session, settings)
        yield session
        session.rollback()


@pytest.fixture
def client(app, db):
    return app.test_client()


def make_staff(db: Session, username: str, *roles: str, full_name: str | None = None,
               sites: tuple[str, ...] = ("HBR",), active: bool = True) -> StaffUser:
    user = StaffUser(username=username, full_name=full_name or username.replace(".", " ").title(),
                     password_hash=_HASH, active=active)
    db.add(user)
    db.flush()
    db.add_all([StaffRole(staff_user_id=user.id, role=r) for r in roles])
    for code in sites:
        site = db.exec(select(Site).where(Site.code == code)).one()
        db.add(StaffSite(staff_user_id=user.id, site_id=site.id))
    db.commit()
    return user


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD, follow: bool = False):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=follow)


@pytest.fixture
def nurse(db):
    return make_staff(db, "nina.nurse", "nurse")


@pytest.fixture
def prescriber(db):
    return make_staff(db, "pat.prescriber", "prescriber")


@pytest.fixture
def manager(db):
    return make_staff(db, "max.manager", "manager")


@pytest.fixture
def admin(db):
    return make_staff(db, "ada.admin", "admin")
