"""The fault suite (issue 7): full-stack scenarios under injected faults, judged by a
Jepsen-style checker.

- checker.py: pure; sorts every confirmed batch into applied once / gap / lost / applied twice
  and compares counts with the simulator's truth over covered time (`check(History)`).
- history.py: builds a History from the DB (batch_ledger, coverage_gaps, crossing_events),
  ingest's CONFIRM_LOG and the simulator's sessions.
- harness.py: `FaultStack`, the full stack of processes with the ledger and confirm log on.
- servers.py: private RabbitMQ/PostgreSQL for scenarios that restart them (never the shared
  test services). memory.py: RSS sampling and the "bounded" judgement.
"""
