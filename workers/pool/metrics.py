"""Prometheus metrics of the pool manager."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WORKERS = Gauge("camcount_pool_workers", "Workers of the pool, by type and status",
                ["type", "status"])
RUNNING = Gauge("camcount_pool_workers_running", "Workers running, by type", ["type"])
RESTARTS = Counter("camcount_pool_restarts_total", "Workers restarted after a crash, by type",
                   ["type"])
REAPED = Counter("camcount_pool_reaped_total", "Idle on-demand workers stopped, by type",
                 ["type"])
KILLED = Counter("camcount_pool_killed_total",
                 "Workers SIGKILLed for not draining within DRAIN_TIMEOUT_S, by type", ["type"])
