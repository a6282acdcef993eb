"""Evaluation: cross-validation (and its resumable report), CV tables, claim sensitivity."""
