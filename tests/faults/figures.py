"""Each fault scenario's figures (the checker's totals, recovery times, memory), kept for the
end of the pytest run: tests/faults/conftest.py prints them in the terminal summary, so CI's
log shows them for passing scenarios too (pytest hides a passing test's output)."""

from __future__ import annotations

REPORTS: list[tuple[str, str]] = []


def report(scenario: str, text: str) -> None:
    """Keep `text` (lines) under `scenario` for the summary, and print it now (-s, failures)."""
    REPORTS.append((scenario, text))
    print(text, flush=True)
