"""Pure rules of the eligibility evaluation before a first course. No database, no clock, no Flask.

- An "eligible" decision despite a contraindication must say why: the reasons have to mention each
  contraindication chosen (its label, or one of its `terms`).
- A substance-use history (a DAST-10 score from the clinic's threshold, or any history written down)
  sets a "substance_use" flag; a psychosis history sets "psychosis_history" — unless one is open.
- Some answers have no column of their own in `eligibility_evaluation`; they are kept as headed
  sections of a text column (`compose_sections` / `parse_sections`), so they read well as plain text:

  `medical_history`:      ## Psychiatric history / ## Psychosis / ## Medical history
  `current_medications`:  ## Interacting medicines (asked) / ## Other medications
  The interacting-medicines section is one line, e.g. ``Benzodiazepines: no; Opioids: yes; ...``.
  Text written without headings (older rows, imports) reads as the last section of its column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

# The medicine classes that interact with ketamine/esketamine; each is asked about explicitly.
INTERACTING_CLASSES = {
    "benzodiazepines": "Benzodiazepines",
    "other_sedatives": "Other sedatives",
    "stimulants": "Stimulants",
    "maois": "MAOIs",
    "opioids": "Opioids",
}

PSYCHIATRIC, PSYCHOSIS, MEDICAL = "Psychiatric history", "Psychosis", "Medical history"
INTERACTING, OTHER_MEDICATIONS = "Interacting medicines (asked)", "Other medications"

SYSTOLIC_RANGE = (50, 300)  # plausibility (domain note §3): a typo guard, not a clinical threshold
DIASTOLIC_RANGE = (20, 200)
MAX_VALID_DAYS = 730
_HEADING_LIKE = re.compile(r"^ *## ")

# Words that say nothing about which contraindication is meant.
_GENERIC = frozenset({"active", "history", "the", "and", "with", "from", "severe", "disease", "raised", "pressure",
                      "uncontrolled", "or", "of", "to", "a", "an", "any", "other", "known"})


class ContraindicationLike(Protocol):
    code: str
    label: str
    terms: list[str]


@dataclass(frozen=True)
class EvaluationValues:
    """The answers of one evaluation that the rules look at."""

    decision: str
    reasons: str
    contraindications: tuple[str, ...] = ()
    substance_use_history: str | None = None
    substance_screen_score: int | None = None
    psychosis_history: bool = False
    baseline_systolic: int | None = None
    baseline_diastolic: int | None = None
    valid_until: date | None = None


def match_terms(contraindication: ContraindicationLike) -> list[str]:
    """The words whose mention shows that reasons address a contraindication.

    The configured `terms` when given, else the label's distinctive words (generic words such as
    "active", "history" or "severe" are left out). The label itself always counts too.
    """
    terms = list(contraindication.terms)
    if not terms:
        terms = [w for w in re.findall(r"[A-Za-z]+", contraindication.label)
                 if len(w) >= 3 and w.lower() not in _GENERIC]
    return [contraindication.label, *terms]


def addresses(reasons: str, contraindication: ContraindicationLike) -> bool:
    """Whether `reasons` mention the contraindication (a term matches at the start of a word, any case)."""
    text = reasons or ""
    return any(re.search(r"(?<![A-Za-z])" + re.escape(term), text, re.IGNORECASE)
               for term in match_terms(contraindication) if term.strip())


def unaddressed(reasons: str, chosen: Iterable[str], catalogue: Iterable[ContraindicationLike]
                ) -> list[ContraindicationLike]:
    """The chosen contraindications that `reasons` do not mention, in catalogue order."""
    chosen = set(chosen)
    return [c for c in catalogue if c.code in chosen and not addresses(reasons, c)]


def evaluation_problems(values: EvaluationValues, catalogue: Iterable[ContraindicationLike], *,
                        today: date) -> dict[str, str]:
    """What is wrong with an evaluation as a whole, as {field: message}; empty when it can be saved.

    Checks that need several answers together (single fields are checked by the input model):
    contraindications come from the clinic's list; "eligible" despite a contraindication needs reasons
    that address each one; "eligible" needs a baseline blood pressure; systolic and diastolic come as
    a pair, the diastolic below the systolic; the evaluation is valid from today for at most two years.
    """
    catalogue = list(catalogue)
    problems: dict[str, str] = {}
    known = {c.code for c in catalogue}
    unknown = [c for c in values.contraindications if c not in known]
    if unknown:
        problems["contraindications"] = f"Not on the clinic's list: {', '.join(unknown)}."
    elif values.decision == "eligible":
        missing = unaddressed(values.reasons, values.contraindications, catalogue)
        if missing:
            names = "; ".join(c.label.lower() for c in missing)
            problems["reasons"] = (f"The patient is found eligible despite: {names}. Say in the reasons why "
                                   "that is acceptable (mention each one), or change the decision.")
    sys_, dia = values.baseline_systolic, values.baseline_diastolic
    if (sys_ is None) != (dia is None):
        problems["baseline_diastolic" if dia is None else "baseline_systolic"] = \
            "Enter both numbers of the blood pressure."
    elif sys_ is not None and dia is not None and dia >= sys_:
        problems["baseline_diastolic"] = "The diastolic must be below the systolic."
    if values.decision == "eligible" and sys_ is None and dia is None:
        problems["baseline_systolic"] = "Record the baseline blood pressure before finding the patient eligible."
    if values.valid_until is not None:
        if values.valid_until < today:
            problems["valid_until"] = "Must be today or later."
        elif values.valid_until > today + timedelta(days=MAX_VALID_DAYS):
            problems["valid_until"] = f"At most {MAX_VALID_DAYS} days ahead; evaluate the patient again then."
    return problems


def default_valid_until(today: date, valid_days: int) -> date:
    """How long an evaluation is current when the prescriber does not say."""
    return today + timedelta(days=valid_days)


def flags_to_set(values: EvaluationValues, *, open_kinds: Iterable[str], substance_flag_score: int) -> list[str]:
    """The patient flags an evaluation opens: substance use (DAST-10 ≥ threshold or a history written
    down) and psychosis history; none that is already open."""
    open_kinds = set(open_kinds)
    kinds = []
    history = (values.substance_use_history or "").strip()
    score = values.substance_screen_score
    if history or (score is not None and score >= substance_flag_score):
        kinds.append("substance_use")
    if values.psychosis_history:
        kinds.append("psychosis_history")
    return [k for k in kinds if k not in open_kinds]


def evaluation_status(decision: str, valid_until: date, today: date) -> str:
    """"expired" once `valid_until` has passed; else the decision ("eligible", "not_eligible", "deferred")."""
    return "expired" if valid_until < today else decision


# --- text columns with headed sections ----------------------------------------------------------


def compose_sections(sections: Mapping[str, str | None]) -> str | None:
    """Join non-empty sections as ``## Heading`` blocks (None when every one is empty)."""
    parts = []
    for heading, text in sections.items():
        text = (text or "").strip()
        if text:
            # A line of the text that looks like a heading would split the section when read back:
            # every line of the form " *## " gets one more leading space, which reading takes off again.
            text = "\n".join(" " + line if _HEADING_LIKE.match(line) else line for line in text.splitlines())
            parts.append(f"## {heading}\n{text}")
    return "\n".join(parts) or None


def parse_sections(text: str | None, *, untitled: str) -> dict[str, str]:
    """The sections of a text written by `compose_sections`; text before any heading goes to `untitled`."""
    out: dict[str, list[str]] = {}
    current = untitled
    for line in (text or "").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            continue
        out.setdefault(current, []).append(line[1:] if line.startswith(" ") and _HEADING_LIKE.match(line) else line)
    return {k: "\n".join(v).strip() for k, v in out.items() if "\n".join(v).strip()}


def medications_text(taking: Iterable[str], other: str | None) -> str:
    """The `current_medications` column: each interacting class answered yes/no, then the rest."""
    taking = set(taking)
    asked = "; ".join(f"{label}: {'yes' if code in taking else 'no'}" for code, label in INTERACTING_CLASSES.items())
    return compose_sections({INTERACTING: asked, OTHER_MEDICATIONS: other}) or ""


def interacting_answers(current_medications: str | None) -> dict[str, bool] | None:
    """Each interacting class → taking it?, as recorded; None when the classes were not asked."""
    line = parse_sections(current_medications, untitled=OTHER_MEDICATIONS).get(INTERACTING)
    if not line:
        return None
    by_label = {label.lower(): code for code, label in INTERACTING_CLASSES.items()}
    answers: dict[str, bool] = {}
    for part in line.split(";"):
        label, _, answer = part.partition(":")
        code = by_label.get(label.strip().lower())
        if code:
            answers[code] = answer.strip().lower() == "yes"
    return answers
