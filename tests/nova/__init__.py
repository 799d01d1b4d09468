"""Nova, run in its own venv (.venv-nova) by tests/test_export_consumers.py: never imported here."""
