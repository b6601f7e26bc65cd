"""Capacity planning: saved what-if scenarios (tables so far)."""
