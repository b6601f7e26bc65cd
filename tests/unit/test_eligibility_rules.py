"""The rules of the eligibility evaluation, without a database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.config import DEFAULT_CONTRAINDICATIONS, Contraindication, EligibilitySection
from clinic.patients.eligibility_rules import (
    INTERACTING_CLASSES,
    MEDICAL,
    PSYCHIATRIC,
    PSYCHOSIS,
    EvaluationValues,
    addresses,
    compose_sections,
    default_valid_until,
    evaluation_problems,
    evaluation_status,
    flags_to_set,
    interacting_answers,
    match_terms,
    medications_text,
    parse_sections,
)

TODAY = date(2026, 11, 23)
CATALOGUE = [Contraindication(**c) for c in DEFAULT_CONTRAINDICATIONS]
BY_CODE = {c.code: c for c in CATALOGUE}


def values(**changes) -> EvaluationValues:
    base = {"decision": "eligible", "reasons": "Meets criteria; risks discussed", "baseline_systolic": 128,
            "baseline_diastolic": 82}
    return EvaluationValues(**(base | changes))


def test_the_shipped_list_holds_the_contraindications_of_the_domain_note():
    codes = {c.code for c in EligibilitySection().contraindications}
    assert len(codes) == 12
    assert {"aneurysmal_vascular_disease", "arteriovenous_malformation", "intracerebral_haemorrhage",
            "hypersensitivity", "uncontrolled_hypertension", "psychosis_history", "active_substance_misuse",
            "pregnancy", "severe_cardiac_disease", "severe_liver_disease", "raised_intracranial_pressure",
            "raised_intraocular_pressure"} == codes


def test_an_eligible_decision_with_no_contraindication_needs_no_special_reasons():
    assert evaluation_problems(values(), CATALOGUE, today=TODAY) == {}


def test_eligible_despite_a_contraindication_is_refused_when_the_reasons_do_not_address_it():
    problems = evaluation_problems(values(contraindications=("uncontrolled_hypertension",)), CATALOGUE, today=TODAY)
    assert set(problems) == {"reasons"}
    assert "uncontrolled hypertension" in problems["reasons"]


def test_eligible_despite_a_contraindication_is_accepted_when_the_reasons_name_it():
    v = values(contraindications=("uncontrolled_hypertension",),
               reasons="Hypertension now controlled on amlodipine (128/82 today); benefits outweigh risk")
    assert evaluation_problems(v, CATALOGUE, today=TODAY) == {}


def test_each_contraindication_must_be_addressed_not_just_one():
    v = values(contraindications=("pregnancy", "severe_liver_disease"), reasons="Pregnancy test negative today")
    problems = evaluation_problems(v, CATALOGUE, today=TODAY)
    assert "severe liver disease" in problems["reasons"] and "pregnancy" not in problems["reasons"]


@pytest.mark.parametrize("decision", ["not_eligible", "deferred"])
def test_other_decisions_with_contraindications_need_no_explanation_of_them(decision):
    v = values(decision=decision, contraindications=("psychosis_history",), reasons="See history")
    assert evaluation_problems(v, CATALOGUE, today=TODAY) == {}


@pytest.mark.parametrize(("code", "reasons"), [
    ("intracerebral_haemorrhage", "Remote hemorrhage in 1998, neurology cleared"),  # US spelling
    ("intracerebral_haemorrhage", "Small bleed 20 years ago"),
    ("psychosis_history", "Single psychotic episode on cannabis at 19, none since"),
    ("raised_intraocular_pressure", "Glaucoma well controlled, ophthalmology agrees"),
    ("pregnancy", "Not pregnant (test today)"),
    ("uncontrolled_hypertension", "BP now 130/85 on treatment"),
])
def test_reasons_address_a_contraindication_by_any_of_its_words(code, reasons):
    assert addresses(reasons, BY_CODE[code])


def test_a_term_must_start_a_word():
    # "cardio" in "cardiovascular" counts for cardiac disease, but "heart" inside "sweetheart" does not.
    assert addresses("Cardiovascular review normal", BY_CODE["severe_cardiac_disease"])
    assert not addresses("Her sweetheart drives her home", BY_CODE["severe_cardiac_disease"])


def test_a_contraindication_given_only_as_a_label_is_matched_by_its_distinctive_words():
    c = Contraindication(code="epilepsy", label="Active epilepsy with recent seizures")
    assert "epilepsy" in match_terms(c) and "active" not in match_terms(c)
    assert addresses("Seizures controlled for 5 years", c)
    assert not addresses("Active and well", c)


def test_a_contraindication_not_on_the_clinics_list_is_refused():
    problems = evaluation_problems(values(contraindications=("gout",)), CATALOGUE, today=TODAY)
    assert "gout" in problems["contraindications"]


def test_blood_pressure_comes_as_a_pair_with_the_diastolic_below_the_systolic():
    assert "baseline_diastolic" in evaluation_problems(values(baseline_diastolic=None), CATALOGUE, today=TODAY)
    assert "baseline_systolic" in evaluation_problems(values(baseline_systolic=None), CATALOGUE, today=TODAY)
    problems = evaluation_problems(values(baseline_systolic=120, baseline_diastolic=120), CATALOGUE, today=TODAY)
    assert problems == {"baseline_diastolic": "The diastolic must be below the systolic."}


def test_eligible_needs_a_baseline_blood_pressure_but_a_deferral_does_not():
    no_bp = {"baseline_systolic": None, "baseline_diastolic": None}
    assert "baseline_systolic" in evaluation_problems(values(**no_bp), CATALOGUE, today=TODAY)
    assert evaluation_problems(values(decision="deferred", **no_bp), CATALOGUE, today=TODAY) == {}


def test_valid_until_is_today_or_later_and_at_most_two_years_ahead():
    assert evaluation_problems(values(valid_until=TODAY), CATALOGUE, today=TODAY) == {}
    assert "valid_until" in evaluation_problems(values(valid_until=TODAY - timedelta(days=1)), CATALOGUE, today=TODAY)
    assert "valid_until" in evaluation_problems(values(valid_until=TODAY + timedelta(days=731)), CATALOGUE,
                                                today=TODAY)


def test_default_validity_counts_from_today():
    assert default_valid_until(TODAY, 180) == date(2027, 5, 22)


@pytest.mark.parametrize(("score", "history", "expected"), [
    (None, None, []),
    (0, None, []),
    (2, None, []),
    (3, None, ["substance_use"]),
    (10, None, ["substance_use"]),
    (0, "Cannabis at weekends", ["substance_use"]),
    (None, "   ", []),
])
def test_substance_use_history_sets_a_flag_from_the_threshold_or_any_history(score, history, expected):
    v = values(substance_screen_score=score, substance_use_history=history)
    assert flags_to_set(v, open_kinds=[], substance_flag_score=3) == expected


def test_psychosis_history_sets_its_flag_and_open_flags_are_not_set_twice():
    v = values(psychosis_history=True, substance_screen_score=5)
    assert flags_to_set(v, open_kinds=[], substance_flag_score=3) == ["substance_use", "psychosis_history"]
    assert flags_to_set(v, open_kinds=["substance_use"], substance_flag_score=3) == ["psychosis_history"]
    assert flags_to_set(v, open_kinds=["substance_use", "psychosis_history"], substance_flag_score=3) == []


def test_an_evaluation_past_its_date_is_expired_whatever_it_decided():
    assert evaluation_status("eligible", TODAY, TODAY) == "eligible"
    assert evaluation_status("eligible", TODAY - timedelta(days=1), TODAY) == "expired"
    assert evaluation_status("not_eligible", TODAY - timedelta(days=1), TODAY) == "expired"


def test_sections_come_back_as_written():
    text = compose_sections({PSYCHIATRIC: "MDD since 2010\nTwo admissions", PSYCHOSIS: None, MEDICAL: "Asthma"})
    assert parse_sections(text, untitled=MEDICAL) == {PSYCHIATRIC: "MDD since 2010\nTwo admissions",
                                                      MEDICAL: "Asthma"}
    assert compose_sections({PSYCHIATRIC: "", MEDICAL: None}) is None


def test_text_written_without_headings_reads_as_the_untitled_section():
    assert parse_sections("Nil significant", untitled=MEDICAL) == {MEDICAL: "Nil significant"}


@given(st.dictionaries(st.sampled_from([PSYCHIATRIC, PSYCHOSIS, MEDICAL]),
                       st.text(alphabet=st.sampled_from("ab #\n"), max_size=40)))
def test_any_text_survives_the_sections_round_trip(sections):
    expected = {k: "\n".join(v.strip().splitlines()) for k, v in sections.items() if v.strip()}
    assert parse_sections(compose_sections(sections), untitled=MEDICAL) == expected


def test_each_interacting_class_is_recorded_yes_or_no():
    text = medications_text(["opioids", "benzodiazepines"], "Sertraline 100 mg daily")
    answers = interacting_answers(text)
    assert answers == {"benzodiazepines": True, "other_sedatives": False, "stimulants": False, "maois": False,
                       "opioids": True}
    assert set(answers) == set(INTERACTING_CLASSES)
    assert parse_sections(text, untitled="Other medications")["Other medications"] == "Sertraline 100 mg daily"


def test_older_medication_text_says_the_classes_were_not_asked():
    assert interacting_answers("sertraline 100 mg daily; trazodone 50 mg at night") is None
    assert interacting_answers(None) is None
