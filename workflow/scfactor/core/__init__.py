"""Shared code of every step; imports nothing analysis-specific (see docs/CONVENTIONS.md for each module's job)."""
