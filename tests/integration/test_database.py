"""The schema: built by migrations, identical to the models, with the guarantees the database keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from clinic import audit
from clinic.audit import AuditEvent
from clinic.db import current_revision, head_revision
from clinic.patients.models import Patient
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession
from tests.conftest import make_staff


def test_migrated_schema_is_identical_to_the_models(engine):
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diffs == []
    assert current_revision(engine) == head_revision(engine)


def test_audit_trail_refuses_update_and_delete(db, engine):
    before = len(db.exec(select(AuditEvent)).all())
    audit.record(db, audit.SYSTEM, "create", "test", 1)
    db.commit()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_event SET action = 'view'")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_event")
    assert len(db.exec(select(AuditEvent)).all()) == before + 1


def test_times_come_back_aware_utc_and_naive_ones_are_refused(db):
    born = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    p = Patient(mrn="T-1", given_name="A", family_name="B", date_of_birth=born.date(), sex="female",
                created_at=born.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")))
    db.add(p)
    db.commit()
    db.expire_all()
    got = db.get(Patient, p.id).created_at
    assert got == born and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        db.add(Patient(mrn="T-2", given_name="A", family_name="C", date_of_birth=born.date(), sex="male",
                       created_at=datetime(2026, 1, 1)))
        db.commit()
    db.rollback()


def test_check_constraints_refuse_implausible_values(db, engine):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO patient (mrn, given_name, family_name, date_of_birth, sex, created_at,"
                             " updated_at, row_version) VALUES ('X', 'a', 'b', '1980-01-01', 'robot',"
                             " '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)")


def _booking(db: Session):
    prescriber = make_staff(db, "dr.x", "prescriber")
    site = db.exec(select(Site).where(Site.code == "HBR")).one()
    chair = db.exec(select(Chair).where(Chair.site_id == site.id)).first()
    proto = Protocol(code="p", name="P", route="iv", dose_rule="mg_per_kg", dose_default=0.5, dose_min=0.1,
                     dose_max=0.75)
    patients = [Patient(mrn=f"M{i}", given_name="A", family_name=f"P{i}", date_of_birth=datetime(1980, 1, 1).date(),
                        sex="female") for i in range(2)]
    db.add(proto)
    db.add_all(patients)
    db.commit()
    courses = [TreatmentCourse(patient_id=p.id, protocol_id=proto.id, prescriber_id=prescriber.id, site_id=site.id,
                               earliest_start=datetime(2026, 1, 1).date()) for p in patients]
    db.add_all(courses)
    db.commit()
    return site, chair, patients, courses


def test_postgresql_refuses_two_overlapping_bookings_of_one_chair(db, backend):
    if backend != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite's guard is in the booking service")
    site, chair, patients, courses = _booking(db)
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    first = TreatmentSession(course_id=courses[0].id, patient_id=patients[0].id, site_id=site.id, chair_id=chair.id,
                             number_in_course=1, starts_at=start, ends_at=start + timedelta(minutes=100))
    db.add(first)
    db.commit()
    clash = TreatmentSession(course_id=courses[1].id, patient_id=patients[1].id, site_id=site.id, chair_id=chair.id,
                             number_in_course=1, starts_at=start + timedelta(minutes=30),
                             ends_at=start + timedelta(minutes=130))
    db.add(clash)
    with pytest.raises(sa.exc.IntegrityError, match="ex_treatment_session_chair_overlap"):
        db.commit()
    db.rollback()
    # Back-to-back is fine, and a cancelled booking frees the chair.
    after = TreatmentSession(course_id=courses[1].id, patient_id=patients[1].id, site_id=site.id, chair_id=chair.id,
                             number_in_course=1, starts_at=start + timedelta(minutes=100),
                             ends_at=start + timedelta(minutes=200))
    db.add(after)
    db.commit()


def test_sqlite_runs_in_wal_with_foreign_keys(engine, backend):
    if backend != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_foreign_keys_are_enforced(engine):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO chair (site_id, label, active) VALUES (999999, 'Z', true)")


def _schema(engine) -> dict:
    inspector = sa.inspect(engine)
    out = {}
    for table in sorted(inspector.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "checks": sorted((c["name"], " ".join(c["sqltext"].split()))
                             for c in inspector.get_check_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
            "fks": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                          for f in inspector.get_foreign_keys(table)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
        }
    return out


def test_a_database_upgraded_step_by_step_with_data_equals_a_fresh_one(database_url, tmp_path):
    from alembic import command

    from clinic.db import alembic_config, make_engine, upgrade
    from tests.conftest import PG_URL

    if database_url.startswith("sqlite"):
        urls = [f"sqlite:///{tmp_path / 'fresh.db'}", f"sqlite:///{tmp_path / 'upgraded.db'}"]
        cleanup = []
    else:
        admin = sa.create_engine(PG_URL)
        names = [f"cs_mig_{i}_{abs(hash(tmp_path)) % 10**8}" for i in range(2)]
        with admin.begin() as conn:
            for n in names:
                conn.exec_driver_sql(f"CREATE SCHEMA {n}")
        urls = [f"{PG_URL}?options=-csearch_path%3D{n}" for n in names]
        cleanup = names
    try:
        fresh, upgraded = (make_engine(u) for u in urls)
        upgrade(fresh)
        command.upgrade(alembic_config(upgraded), "0001")
        with upgraded.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO outbox_message (channel, recipient, subject, body, due_at, status, attempts, created_at,"
                " dedupe_key) VALUES ('email', 'a@example.org', 's', 'b', '2026-01-01 00:00:00+00', 'failed', 3,"
                " '2026-01-01 00:00:00+00', 'k1')")
        upgrade(upgraded)
        assert _schema(upgraded) == _schema(fresh)
        with upgraded.connect() as conn:
            assert conn.exec_driver_sql("SELECT status, attempts FROM outbox_message").one() == ("failed", 3)
        fresh.dispose()
        upgraded.dispose()
    finally:
        if cleanup:
            with admin.begin() as conn:
                for n in cleanup:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {n} CASCADE")
            admin.dispose()
