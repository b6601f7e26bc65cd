"""Session monitoring: checklist, doses, vitals, adverse events and alerts (tables so far)."""
