"""The clinic's controlled vocabularies: the codes stored in the database and their plain words.

Pure data, shared by models (CHECK constraints), the core rules and the templates.
"""

from __future__ import annotations

ROLES = {
    "nurse": "Nurse",
    "prescriber": "Prescriber",
    "manager": "Clinic manager",
    "admin": "Administrator",
}

CREDENTIAL_KINDS = {
    "nursing_licence": "Nursing licence",
    "prescriber_licence": "Prescriber licence",
    "controlled_substance_registration": "Controlled-substance registration",
    "acls": "ACLS",
    "bls": "BLS",
}

SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Not stated"}

PATIENT_FLAG_KINDS = {
    "substance_use": "Substance-use history",
    "psychosis_history": "Psychosis history",
    "hypertension": "Hypertension",
    "pregnancy": "Pregnancy",
    "fall_risk": "Fall risk",
    "other": "Other",
}

CONSENT_KINDS = {
    "ketamine": "Ketamine treatment (IV / IM)",
    "esketamine": "Esketamine (Spravato) treatment",
    "rems_enrolment": "Spravato REMS enrolment",
    "data_sharing": "Data sharing",
}

ROUTES = {"iv": "IV infusion", "im": "IM injection", "intranasal": "Intranasal"}
DOSE_RULES = {"mg_per_kg": "mg/kg of body weight", "fixed_mg": "Fixed dose (mg)"}

COURSE_KINDS = {"induction": "Induction", "maintenance": "Maintenance", "booster": "Booster"}
COURSE_STATUSES = {
    "planned": "Planned",
    "active": "Active",
    "on_hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
}

SESSION_STATUSES = {
    "booked": "Booked",
    "checked_in": "Checked in",
    "dosing": "Dosing",
    "recovery": "Recovery",
    "discharged": "Discharged",
    "cancelled": "Cancelled",
    "no_show": "No-show",
}
INACTIVE_SESSION_STATUSES = ("cancelled", "no_show")

VITALS_PHASES = {"baseline": "Baseline", "dosing": "Dosing", "recovery": "Recovery", "discharge": "Discharge"}

SCALES = {
    # code: (label, number of items, item minimum, item maximum)
    "GAD-7": ("GAD-7 (anxiety)", 7, 0, 3),
    "PHQ-9": ("PHQ-9 (depression)", 9, 0, 3),
    "PCL-5": ("PCL-5 (PTSD)", 20, 0, 4),
    "MADRS": ("MADRS (depression, clinician)", 10, 0, 6),
    "HAM-A": ("HAM-A (anxiety, clinician)", 14, 0, 4),
    "C-SSRS": ("C-SSRS screener", 6, 0, 1),
    "CADSS": ("CADSS (dissociation, 23 items)", 23, 0, 4),
    "CADSS-6": ("CADSS-6 (dissociation, short form)", 6, 0, 4),
    "MOAA/S": ("MOAA/S (sedation)", 1, 0, 5),
    "DAST-10": ("DAST-10 (substance use)", 10, 0, 1),
}
SCALE_SOURCES = {"staff": "Staff", "self_report": "Self-report"}

ADVERSE_EVENT_KINDS = {
    "hypertension": "Hypertension",
    "tachycardia": "Tachycardia",
    "bradycardia": "Bradycardia",
    "hypotension": "Hypotension",
    "arrhythmia": "Arrhythmia",
    "respiratory_depression": "Low SpO2 / respiratory depression",
    "over_sedation": "Over-sedation / loss of consciousness",
    "nausea": "Nausea",
    "vomiting": "Vomiting",
    "dizziness": "Dizziness / vertigo",
    "headache": "Headache",
    "anxiety": "Anxiety / panic",
    "emergence_reaction": "Emergence reaction / agitation",
    "hallucinations": "Hallucinations",
    "allergic_reaction": "Allergic reaction",
    "iv_site_problem": "IV site problem",
    "other": "Other",
}
SEVERITIES = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe", "life_threatening": "Life-threatening"}
# What makes an adverse event serious, as a regulator's voluntary report asks (FDA MedWatch 3500, B.2).
SERIOUSNESS_CRITERIA = {
    "death": "Death",
    "life_threatening": "Life-threatening",
    "hospitalisation": "Hospitalisation (initial or prolonged)",
    "disability": "Disability or permanent damage",
    "congenital_anomaly": "Congenital anomaly / birth defect",
    "required_intervention": "Required intervention to prevent permanent impairment or damage",
    "other": "Other serious (important medical event)",
}
AE_OUTCOMES = {
    "resolved": "Resolved",
    "resolving": "Resolving",
    "ongoing": "Not resolved",
    "resolved_with_sequelae": "Resolved with sequelae",
    "fatal": "Fatal",
    "unknown": "Unknown",
}

ALERT_PRIORITIES = {"high": "High", "medium": "Medium", "low": "Low"}
ALERT_ACTIONS = {
    "continue_recheck": "Continue and recheck in 5 minutes",
    "pause_or_slow": "Pause or slow the infusion",
    "medication_given": "Medication given",
    "prescriber_called": "Prescriber called",
    "stop": "Stop the session",
    "dismissed": "Reviewed, no action needed",
}

CHECKLIST_ITEMS = {
    "consent_current": "Consent current",
    "escort_confirmed": "Adult escort confirmed",
    "fasting_confirmed": "Fasting confirmed",
    "interacting_medications": "Interacting medications asked",
    "weight_today": "Weight today",
    "baseline_vitals": "Baseline vitals",
    "baseline_cadss": "Baseline CADSS-6",
    "baseline_moaas": "Baseline MOAA/S",
    "symptom_scale": "Symptom scale (when due)",
    "bp_gate_decision": "Prescriber decision on pre-dose blood pressure",
    # before discharge
    "nausea_controlled": "Nausea controlled",
    "escort_present": "Adult escort present",
    "instructions_given": "Discharge instructions given",
    # Spravato REMS: entered by the nurse at discharge
    "rems_ready_minutes": "Minutes until ready to leave without the 2-hour rule (REMS)",
}

DOSE_EVENT_KINDS = {"pause": "Paused", "resume": "Resumed", "stop": "Stopped", "device": "Nasal device given"}

ELIGIBILITY_DECISIONS = {"eligible": "Eligible", "not_eligible": "Not eligible", "deferred": "Deferred"}
WAITLIST_STATUSES = {"waiting": "Waiting", "offered": "Offered", "scheduled": "Scheduled", "removed": "Removed"}
SHIFT_EXCEPTION_KINDS = {"leave": "Leave", "swap": "Swap", "extra": "Extra shift"}
OUTBOX_STATUSES = {"pending": "Pending", "sent": "Sent", "failed": "Failed", "skipped": "Not needed"}
