"""Prometheus metrics of the balancer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUTED = Counter("camcount_balancer_routed_total", "Batches routed to a worker queue")
GAPS = Counter("camcount_balancer_gaps_total", "Batches recorded as gaps", ["reason"])
DEAD_LETTERED = Counter("camcount_balancer_dead_lettered_total", "Messages sent to the DLQ")
REASSIGNMENTS = Counter("camcount_balancer_reassignments_total", "Camera assignment changes")
LIVE_WORKERS = Gauge("camcount_balancer_live_workers", "Workers considered live")
