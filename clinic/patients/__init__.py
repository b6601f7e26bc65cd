"""Patients: registration, search, the patient page, flags, consent (and later eligibility, waitlist)."""
