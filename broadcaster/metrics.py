"""Prometheus metrics of the broadcaster."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RELAYED = Counter("camcount_broadcaster_relayed_total", "Outbox events relayed")
LATE = Counter("camcount_broadcaster_late_total",
               "Outbox rows relayed after later ones (committed after their gap was given up)")
GAPS_GIVEN_UP = Counter("camcount_broadcaster_gaps_given_up_total",
                        "Missing outbox ids waited for until the timeout")
BAD_ROWS = Counter("camcount_broadcaster_bad_rows_total", "Outbox rows that could not be relayed")
CLIENTS = Gauge("camcount_broadcaster_clients", "Connected WebSocket clients")
REFUSED = Counter("camcount_broadcaster_refused_total", "WebSocket upgrades refused",
                  ["reason"])
DROPPED = Counter("camcount_broadcaster_slow_clients_dropped_total", "Clients dropped as slow")
REPLAYED = Counter("camcount_broadcaster_replayed_total", "Events sent to resuming clients")
RELAY_LAG = Histogram(
    "camcount_broadcaster_commit_to_relay_seconds", "From a batch's commit to its relay",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
