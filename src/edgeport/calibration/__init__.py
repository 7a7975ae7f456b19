"""Calibration: data files -> tokenized feeds; ranges; sensitivity; accuracy budgets."""
