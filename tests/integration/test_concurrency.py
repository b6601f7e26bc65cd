"""Several tablets saving at once: every write lands, none is lost to a lock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlmodel import select

from clinic.audit import AuditEvent
from clinic.patients.models import Patient
from tests.conftest import csrf_token, login


def test_concurrent_registrations_all_land_with_their_audit_events(app, db, nurse):
    clients = []
    for _ in range(8):
        c = app.test_client()
        login(c, "nina.nurse")
        clients.append((c, csrf_token(c, "/patients/new")))

    def register(i: int) -> int:
        c, token = clients[i % len(clients)]
        r = c.post("/patients/new", data={"given_name": f"Par{i}", "family_name": "Allel", "sex": "other",
                                          "date_of_birth": f"1970-01-{i + 1:02d}", "csrf_token": token})
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(register, range(24)))
    assert codes == [302] * 24
    patients = db.exec(select(Patient)).all()
    assert len(patients) == 24 and len({p.mrn for p in patients}) == 24
    creates = db.exec(select(AuditEvent).where(AuditEvent.action == "create", AuditEvent.entity == "patient")).all()
    assert len(creates) == 24
