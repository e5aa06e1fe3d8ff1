"""Prometheus metrics of the broadcaster."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RELAYED = Counter("camcount_broadcaster_relayed_total", "Outbox events relayed")
CLIENTS = Gauge("camcount_broadcaster_clients", "Connected WebSocket clients")
DROPPED = Counter("camcount_broadcaster_slow_clients_dropped_total", "Clients dropped as slow")
RELAY_LAG = Histogram(
    "camcount_broadcaster_commit_to_relay_seconds", "From a batch's commit to its relay",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
