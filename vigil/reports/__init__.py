"""Regulator-ready incident reports: builders (data) and renderers (PDF)."""
