"""Prometheus metrics of the balancer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUTED = Counter("camcount_balancer_routed_total", "Batches routed to a worker queue",
                 ["reason"])
GAPS = Counter("camcount_balancer_gaps_total", "Batches recorded as gaps", ["reason"])
SHED = Counter("camcount_balancer_shed_total", "Batches shed under overload", ["priority"])
DELAYED = Counter("camcount_balancer_delayed_total", "Routing decisions that waited",
                  ["reason"])
DEAD_LETTERED = Counter("camcount_balancer_dead_lettered_total", "Messages sent to the DLQ")
UNROUTABLE = Counter("camcount_balancer_unroutable_total",
                     "Batches the broker returned: their worker queue was gone")
REASSIGNMENTS = Counter("camcount_balancer_reassignments_total", "Camera assignment changes")
LIVE_WORKERS = Gauge("camcount_balancer_live_workers", "Workers considered live")
LIVENESS_EVENTS = Counter("camcount_balancer_liveness_events_total",
                          "worker.up / worker.suspect / worker.down", ["kind"])
FAILOVERS = Counter("camcount_balancer_failovers_total",
                    "Dead workers whose queues were drained")
FAILOVER_BATCHES = Counter("camcount_balancer_failover_batches_total",
                           "Batches drained from dead workers' queues")
BREAKER_TRANSITIONS = Counter("camcount_balancer_breaker_transitions_total",
                              "Circuit breaker state changes", ["to_state"])
# 0 closed, 1 half-open, 2 open; a worker's series is removed when it is judged down.
BREAKER_STATE = Gauge("camcount_balancer_breaker_state", "Circuit breaker state per worker",
                      ["worker"])
BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
WORKER_EVENTS_WRITTEN = Counter("camcount_balancer_worker_events_written_total",
                                "worker_events rows written by this (active) balancer", ["kind"])
WORKER_STATE_DROPPED = Counter(
    "camcount_balancer_worker_state_dropped_total",
    "Worker state records not written: the writer's queue was full, or shutdown met an outage")
WORKER_STATE_ERRORS = Counter("camcount_balancer_worker_state_errors_total",
                              "Failed worker state writes and event publishes", ["stage"])
