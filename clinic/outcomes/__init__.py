"""Symptom scales and outcomes: responses stored item by item (tables so far)."""
