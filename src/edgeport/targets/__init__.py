"""Targets: one module per runtime family; one registry (registry.py)."""
