"""Fixtures for the scheduling tests: a site with staff on shift, seeded protocols, ready patients."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from clinic.auth.models import StaffUser
from clinic.patients.models import Consent, EligibilityEvaluation, Patient
from clinic.sessions.models import Chair, Shift, Site
from clinic.sessions.protocols import seed_protocols
from tests.conftest import make_staff

NY = ZoneInfo("America/New_York")
DAY = date(2027, 1, 11)  # a Monday, far enough ahead


@pytest.fixture
def clinic(db):
    protocols = seed_protocols(db)
    prescriber = make_staff(db, "dr.pat", "prescriber")
    nurses = [make_staff(db, f"nurse.{i}", "nurse") for i in range(3)]
    site = db.exec(select(Site).where(Site.code == "HBR")).one()
    chairs = db.exec(select(Chair).where(Chair.site_id == site.id).order_by(Chair.label)).all()
    for i in range(40):
        d = DAY + timedelta(days=i)
        s = datetime.combine(d, time(7), NY).astimezone(UTC)
        e = datetime.combine(d, time(20), NY).astimezone(UTC)
        db.add(Shift(staff_user_id=prescriber.id, site_id=site.id, role="prescriber", starts_at=s, ends_at=e))
        for n in nurses:
            db.add(Shift(staff_user_id=n.id, site_id=site.id, role="nurse", starts_at=s, ends_at=e))
    db.commit()
    return {"protocols": protocols, "prescriber": prescriber, "site": site, "chairs": chairs}


def ready_patient(db, n: int, *, eligible: bool = True, consent: bool = True) -> Patient:
    now = datetime.now(UTC)
    p = Patient(mrn=f"RACE-{n}", given_name="Pat", family_name=f"Ient{n}", date_of_birth=date(1980, 1, 1),
                sex="female")
    db.add(p)
    db.commit()
    if eligible:
        prescriber = db.exec(select(StaffUser)).first()
        db.add(EligibilityEvaluation(patient_id=p.id, prescriber_id=prescriber.id, evaluated_at=now,
                                     diagnosis="Treatment-resistant depression", decision="eligible",
                                     reasons="Meets criteria", valid_until=(now + timedelta(days=180)).date()))
    if consent:
        db.add(Consent(patient_id=p.id, kind="ketamine", text_version="KET-1", signed_at=now - timedelta(days=1),
                       expires_at=now + timedelta(days=365)))
    db.commit()
    return p


