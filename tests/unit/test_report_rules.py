"""Regulatory paperwork from the session record, worked by hand without a database: the Spravato REMS
monitoring form (every field), what it still lacks, its CSV, which adverse events are reportable, and
an adverse-event report that never names the patient.

The hand-built session: esketamine 56 mg for Zelda Quimby at Harbourview; the first device at 10:00 New
York time (15:00 UTC) on Monday 11 January 2027, the second 5 minutes later; the nurse is asked at
125 minutes whether the form is complete. Default thresholds (pre-dose 140/90, SpO2 92 %, RR 8).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clinic.config import DEFAULT_CONFIG, ConfigError, load_settings
from clinic.outcomes.models import ScaleResponse
from clinic.patients.eligibility_rules import medications_text
from clinic.patients.models import Patient
from clinic.sessions.models import Chair, Protocol, Site, TreatmentCourse, TreatmentSession
from clinic.vitals import rules
from clinic.vitals.models import AdverseEvent, ChecklistEntry, DoseAdministration, DoseEvent, VitalsReading
from clinic.vitals.reports import (
    RemsForm,
    ReportReporter,
    ae_report,
    concomitant_medications,
    interacting_answer,
    is_reportable,
    rems_csv,
    rems_form,
    rems_missing,
)
from clinic.vitals.service import MonitorState, discharge_criteria

NY = ZoneInfo("America/New_York")
T0 = datetime(2027, 1, 11, 15, 0, tzinfo=UTC)  # the first device: 10:00 in New York
_ids = iter(range(1, 10_000))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def reading(minutes: float, sys_: int, dia: int, *, phase: str = "recovery", hr: int = 72, spo2: int | None = 98,
            rr: int | None = 14) -> VitalsReading:
    return VitalsReading(id=next(_ids), session_id=7, patient_id=1, phase=phase, measured_at=at(minutes),
                         recorded_by_id=3, systolic=sys_, diastolic=dia, heart_rate=hr, spo2=spo2,
                         respiratory_rate=rr, client_key=f"r{next(_ids)}")


def score(scale: str, minutes: float, total: int) -> ScaleResponse:
    return ScaleResponse(id=next(_ids), patient_id=1, session_id=7, scale=scale, measured_at=at(minutes), total=total,
                         client_key=f"s{next(_ids)}")


def entry(item: str, answer: str) -> ChecklistEntry:
    return ChecklistEntry(id=next(_ids), session_id=7, item=item, answer=answer, recorded_by_id=3, recorded_at=at(-12),
                          client_key=f"c{next(_ids)}")


def adverse(kind: str, severity: str = "mild", minutes: float = 30, **kw) -> AdverseEvent:
    return AdverseEvent(id=next(_ids), session_id=7, patient_id=1, kind=kind, severity=severity, onset_at=at(minutes),
                        recorded_by_id=3, client_key=f"a{next(_ids)}", **kw)


def nasal_state(*, now_minutes: float = 125, checklist: dict[str, str] | None = None,
                readings: list[VitalsReading] | None = None, scores: list[ScaleResponse] | None = None,
                devices: int = 2, events: list[AdverseEvent] | None = None, route: str = "intranasal") -> MonitorState:
    protocol = Protocol(id=3, code="esketamine-nasal", name="Esketamine nasal spray induction", route=route,
                        dose_rule="fixed_mg", dose_default=56, dose_min=28, dose_max=84, infusion_minutes=10,
                        min_observation_minutes=120)
    site = Site(id=1, code="HBR", name="Harbourview", time_zone="America/New_York")
    patient = Patient(id=1, mrn="MRN-0042", given_name="Zelda", family_name="Quimby", date_of_birth=date(1980, 5, 6),
                      sex="female", allergies="NKDA")
    course = TreatmentCourse(id=5, patient_id=1, protocol_id=3, prescriber_id=2, site_id=1, earliest_start=T0.date())
    session = TreatmentSession(id=7, course_id=5, patient_id=1, site_id=1, chair_id=1, number_in_course=1,
                               starts_at=at(-15), ends_at=at(135), status="recovery", nurse_id=3,
                               checked_in_at=at(-20), dosing_started_at=T0, dosing_ended_at=at(6))
    dose = DoseAdministration(id=11, session_id=7, route=route, dose_mg=56, lot_number="ESK-771", started_at=T0,
                              stopped_at=at(6), administered_by_id=3, client_key="dose-1")
    dose_events = [DoseEvent(id=20 + n, dose_id=11, kind="device", at=at(5 * n), device_number=n + 1,
                             recorded_by_id=3, client_key=f"dev{n}") for n in range(devices)]
    answers = {"interacting_medications": "taking: benzodiazepines, MAOIs (lorazepam at night)",
               "rems_ready_minutes": "95", "escort_present": "yes", "nausea_controlled": "yes",
               "instructions_given": "yes"}
    if checklist is not None:
        answers = checklist
    state = MonitorState(
        session=session, course=course, protocol=protocol, patient=patient, site=site,
        chair=Chair(id=1, site_id=1, label="H1"), zone=NY,
        checklist={k: entry(k, v) for k, v in answers.items()},
        readings=readings if readings is not None else [
            reading(-10, 132, 84, phase="baseline"),
            reading(38, 150, 92),  # nearest to 40 minutes
            reading(47, 148, 90),
            reading(118, 128, 80, phase="discharge", hr=72, spo2=97),
        ],
        amended={},
        scores=scores if scores is not None else [
            score("CADSS-6", -8, 0), score("MOAA/S", -7, 5),
            score("CADSS-6", 40, 6), score("MOAA/S", 41, 4),
            score("CADSS-6", 115, 0), score("MOAA/S", 116, 5),
        ],
        dose=dose, dose_events=dose_events,
        adverse_events=events if events is not None else [adverse("nausea")],
        alerts=[], thresholds=rules.Thresholds(),
        cadence=rules.Cadence(dosing_every_minutes=None, recovery_every_minutes=30, at_minutes=[40],
                              observation_from="dosing_start"),
        consent="current", weight_kg=None, now=at(now_minutes),
    )
    state.discharge = discharge_criteria(state)
    return state


FACTS = {"first_treatment": True, "enrolled": True, "clinician": "Nina Nurse"}


# --- the REMS form ------------------------------------------------------------------------------


def test_the_rems_form_is_filled_field_by_field_from_an_esketamine_session():
    form = rems_form(nasal_state(), **FACTS)
    assert form == RemsForm(
        session_id=7, patient_name="Zelda Quimby", date_of_birth=date(1980, 5, 6), sex="Female",
        first_treatment=True, enrolled=True,
        benzodiazepines=True, other_sedatives=False, stimulants=False, maois=True,
        monitoring_clinician="Nina Nurse", site="Harbourview", date=date(2027, 1, 11),
        dose_mg=56.0, dose="56", lot_number="ESK-771",
        first_device_at=T0, end_of_monitoring_at=at(125), total_minutes=125, ready_minutes=95,
        vitals_ok_before_dosing=True, vitals_ok_before_leaving=True,
        bp_before_dosing="132/84", bp_at_40_minutes="150/92", bp_at_40_measured_minute=38,
        bp_before_leaving="128/80",
        sedation=True, dissociation=True, respiratory_depression=False,
        other_adverse_events=True, other_adverse_events_described="Nausea (mild)",
    )
    assert rems_missing(form) == []


def test_the_form_of_a_discharged_session_ends_at_the_discharge():
    state = nasal_state(now_minutes=300)
    state.session.status, state.session.discharged_at = "discharged", at(130)
    form = rems_form(state, **FACTS)
    assert (form.end_of_monitoring_at, form.total_minutes) == (at(130), 130)
    assert rems_form(state, **FACTS, end_of_monitoring=at(122)).total_minutes == 122


def test_the_date_is_the_sites_day_not_utc():
    state = nasal_state()
    shift = T0.replace(hour=3) - T0  # the first device at 22:00 the evening before in New York
    for e in state.dose_events:
        e.at = e.at + shift
    assert rems_form(state, **FACTS).date == date(2027, 1, 10)


def test_nothing_is_missing_only_when_every_field_is_known():
    state = nasal_state(checklist={"escort_present": "yes"}, readings=[reading(-10, 132, 84, phase="baseline")],
                        scores=[], now_minutes=100)
    state.session.nurse_id = None
    form = rems_form(state)
    missing = rems_missing(form)
    expected_starts = [
        "First treatment with Spravato", "Patient enrolled in the Spravato REMS",
        "Concomitant benzodiazepines (ask about interacting medications)",
        "Concomitant non-benzodiazepine sedative hypnotics", "Concomitant psychostimulants", "Concomitant MAOIs",
        "Monitoring clinician", "Minutes from first device to end of monitoring (100; at least 120 are needed)",
        "Minutes until ready to leave without the 2-hour rule (enter it on the discharge form)",
        "Vital signs acceptable before leaving", "Blood pressure at about 40 minutes", "Blood pressure before leaving",
        "Sedation (score MOAA/S after dosing)", "Dissociation (score CADSS-6 after dosing)",
        "Respiratory depression (record SpO2 after dosing)",
    ]
    assert len(missing) == len(expected_starts)
    for got, want in zip(missing, expected_starts, strict=True):
        assert got.startswith(want), (got, want)


def test_ready_minutes_beyond_the_time_monitored_are_refused():
    form = rems_form(nasal_state(checklist={"interacting_medications": "none", "rems_ready_minutes": "140"}), **FACTS)
    assert (form.benzodiazepines, form.maois) == (False, False)
    assert rems_missing(form) == ["Minutes until ready to leave without the 2-hour rule (140 is more than the 125 "
                                  "minutes the patient was monitored)"]


def test_the_40_minute_pressure_is_the_nearest_reading_within_ten_minutes():
    base = [reading(-10, 132, 84, phase="baseline"), reading(118, 128, 80, phase="discharge")]
    assert rems_form(nasal_state(readings=[*base, reading(29, 160, 95), reading(51, 150, 90)])).bp_at_40_minutes is None
    form = rems_form(nasal_state(readings=[*base, reading(31, 160, 95), reading(44, 150, 90), reading(48, 140, 88)]))
    assert (form.bp_at_40_minutes, form.bp_at_40_measured_minute) == ("150/90", 44)


def test_the_pressure_before_leaving_must_be_recent():
    stale = [reading(-10, 132, 84, phase="baseline"), reading(40, 150, 92), reading(100, 128, 80)]
    form = rems_form(nasal_state(readings=stale), **FACTS)
    assert form.bp_before_leaving is None
    assert form.vitals_ok_before_leaving is False  # the discharge criterion asks for vitals within 20 minutes
    assert any(m.startswith("Blood pressure before leaving") for m in rems_missing(form))


def test_a_high_predose_pressure_is_acceptable_only_with_a_prescribers_dose_decision():
    readings = [reading(-10, 152, 94, phase="baseline"), reading(40, 150, 92), reading(118, 128, 80)]
    held = rems_form(nasal_state(readings=readings), **FACTS)
    assert (held.bp_before_dosing, held.vitals_ok_before_dosing) == ("152/94", False)
    answers = {"interacting_medications": "none", "bp_gate_decision": "dose: usual for this patient"}
    assert rems_form(nasal_state(readings=readings, checklist=answers), **FACTS).vitals_ok_before_dosing is True


@pytest.mark.parametrize(("spo2", "rr", "events", "expected"), [
    (97, 14, [], False),
    (91, 14, [], True),  # below 92 %
    (97, 7, [], True),  # below 8 breaths/min
    (None, None, [], None),  # nothing measured after dosing: unknown
    (None, None, ["respiratory_depression"], True),
])
def test_respiratory_depression(spo2, rr, events, expected):
    readings = [reading(-10, 132, 84, phase="baseline"), reading(40, 150, 92, spo2=spo2, rr=rr),
                reading(118, 128, 80, spo2=spo2, rr=rr)]
    form = rems_form(nasal_state(readings=readings, events=[adverse(k) for k in events]), **FACTS)
    assert form.respiratory_depression is expected
    assert form.other_adverse_events is False


def test_sedation_and_dissociation_are_judged_after_dosing_against_the_baseline():
    calm = [score("CADSS-6", -8, 3), score("MOAA/S", -7, 5), score("CADSS-6", 40, 3), score("MOAA/S", 40, 5)]
    form = rems_form(nasal_state(scores=calm), **FACTS)
    assert (form.sedation, form.dissociation) == (False, False)
    form = rems_form(nasal_state(scores=calm, events=[adverse("over_sedation")]), **FACTS)
    assert (form.sedation, form.other_adverse_events) == (True, False)


def test_the_dose_is_the_devices_given():
    form = rems_form(nasal_state(devices=1), **FACTS)
    assert (form.dose_mg, form.dose) == (28.0, "other")
    assert rems_form(nasal_state(devices=3), **FACTS).dose == "84"


def test_the_rems_form_is_for_nasal_sessions_only():
    with pytest.raises(ValueError, match="intranasal"):
        rems_form(nasal_state(route="iv"))


def test_the_csv_has_one_header_row_of_field_names_and_one_row():
    text = rems_csv(rems_form(nasal_state(), **FACTS), NY)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 2
    assert rows[0] == RemsForm.field_names()
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["patient_name"] == "Zelda Quimby" and row["date_of_birth"] == "1980-05-06"
    assert (row["benzodiazepines"], row["other_sedatives"], row["maois"]) == ("yes", "no", "yes")
    assert (row["dose"], row["dose_mg"], row["lot_number"]) == ("56", "56", "ESK-771")
    assert (row["first_device_at"], row["total_minutes"], row["ready_minutes"]) == ("2027-01-11 10:00", "125", "95")
    assert (row["bp_at_40_minutes"], row["respiratory_depression"]) == ("150/92", "no")


@pytest.mark.parametrize(("answer", "expected"), [
    ("none", ({"benzodiazepines": False, "other_sedatives": False, "stimulants": False, "maois": False,
               "opioids": False}, None)),
    ("taking: other sedatives, opioids", ({"benzodiazepines": False, "other_sedatives": True, "stimulants": False,
                                          "maois": False, "opioids": True}, None)),
    ("none (patient unsure, (checking))", ({"benzodiazepines": False, "other_sedatives": False, "stimulants": False,
                                            "maois": False, "opioids": False}, "patient unsure, (checking)")),
    ("yes", None),
    ("taking: aspirin", None),
    (None, None),
])
def test_the_interacting_medications_answer_is_read_class_by_class(answer, expected):
    assert interacting_answer(answer) == expected


# --- adverse events -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "severity", "serious", "expected"), [
    ("nausea", "mild", False, False),
    ("nausea", "severe", False, True),
    ("nausea", "life_threatening", False, True),
    ("headache", "moderate", True, True),
    ("over_sedation", "mild", False, True),  # the clinic's policy names it
    ("allergic_reaction", "mild", False, True),
])
def test_serious_severe_and_policy_kinds_are_reportable(kind, severity, serious, expected):
    policy = ["over_sedation", "respiratory_depression", "allergic_reaction"]
    assert is_reportable(kind=kind, severity=severity, serious=serious, always_report=policy) is expected


def test_the_reporting_policy_is_configured_and_checked_against_the_event_list(tmp_path: Path):
    assert load_settings(env={}).reporting.always_report == ["over_sedation", "respiratory_depression",
                                                             "allergic_reaction"]
    with pytest.raises(ConfigError, match=r"reporting\.always_report.*'fainting'"):
        load_settings(env={}, overrides={"reporting.always_report": ["nausea", "fainting"]})
    text = DEFAULT_CONFIG.read_text().replace('always_report = ["over_sedation", "respiratory_depression", '
                                              '"allergic_reaction"]', 'always_report = ["hypotension"]')
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_settings(path, env={}).reporting.always_report == ["hypotension"]


REPORTER = ReportReporter(name="Nina Nurse", role="Nurse", site="Harbourview", clinic="Harbourview Infusion Clinic")


def test_an_adverse_event_report_never_names_the_patient():
    event = adverse("over_sedation", "severe", minutes=42, description="MOAA/S 2, roused with stimulation",
                    action_taken="airway supported", outcome="resolved", serious=True, reportable=True,
                    seriousness_json=json.dumps(["required_intervention"]))
    state = nasal_state(events=[event])
    report = ae_report(event, state, reporter=REPORTER, weight_kg=71.5, indication="Treatment-resistant depression",
                       evaluation_medications=medications_text(["stimulants"], "sertraline 100 mg\nlisinopril"))
    text = json.dumps(asdict(report), default=str)
    assert "Zelda" not in text and "Quimby" not in text
    p = report.patient
    assert (p.identifier, p.initials, p.age_years, p.sex, p.weight_kg) == ("MRN-0042", "Z.Q.", 46, "Female", 71.5)
    e = report.event
    assert (e.kind_label, e.onset_date, e.serious, e.seriousness) == (
        "Over-sedation / loss of consciousness", date(2027, 1, 11), True, ["required_intervention"])
    assert e.relevant_vitals == ["10:38: BP 150/92 mmHg, HR 72 bpm, SpO2 98 %, RR 14/min",
                                 "10:47: BP 148/90 mmHg, HR 72 bpm, SpO2 98 %, RR 14/min"]
    d = report.product
    assert (d.name, d.route, d.dose_mg, d.lot_number, d.started_at, d.indication) == (
        "Esketamine nasal spray (Spravato)", "Intranasal", 56.0, "ESK-771", T0, "Treatment-resistant depression")
    assert report.concomitant_medications == [
        "Benzodiazepines (asked at this session)", "MAOIs (asked at this session)",
        "Note at this session: lorazepam at night", "Stimulants (eligibility evaluation)",
        "sertraline 100 mg", "lisinopril"]
    assert report.reporter == REPORTER


def test_concomitant_medications_are_not_repeated():
    meds = concomitant_medications("taking: benzodiazepines", medications_text(["benzodiazepines"], None))
    assert meds == ["Benzodiazepines (asked at this session)"]
    assert concomitant_medications(None, None) == []
