"""Helpers shared by test modules (importable as `helpers`: pytest puts tests/ on sys.path through
tests/conftest.py, in every xdist worker and under `python -m pytest` alike)."""
