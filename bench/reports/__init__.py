"""Report query benchmark (python -m bench.reports)."""
