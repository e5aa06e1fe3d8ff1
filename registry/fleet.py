"""The fleet at a glance: the worker pool as the registry and the active balancer see it, and
the queues between them. Pure: built from the workers' rows and the queue depths."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from infra.broker_admin import QueueDepth
from registry.models import WorkerOut


class QueueOut(BaseModel):
    name: str
    messages: int
    ready: int
    unacked: int
    consumers: int


class BalancerOut(BaseModel):
    active_id: str | None = Field(description="the balancer whose verdicts are newest; null "
                                  "when none has judged a worker yet")
    last_judged_at: datetime | None


class FleetOut(BaseModel):
    workers: int
    by_status: dict[str, int] = Field(description="up | stopping | down (heartbeat age)")
    by_liveness: dict[str, int] = Field(description="the active balancer's verdicts")
    breakers: dict[str, int] = Field(description="closed | open | half_open")
    in_flight: int
    queue_depth: int = Field(description="batches waiting in workers' queues (heartbeats)")
    processed: int
    failed: int
    capacity_per_s: float
    balancer: BalancerOut
    queues: list[QueueOut] | None = Field(
        description="frames.* queues from the broker; null when the management API is not "
                    "configured or not answering")
    queues_error: str | None = None


def summarise(workers: Sequence[WorkerOut], queues: Sequence[QueueDepth] | None,
              queues_error: str | None = None) -> FleetOut:
    judged = [w for w in workers if w.judged_at is not None]
    newest = max(judged, key=lambda w: w.judged_at or datetime.min) if judged else None
    live = [w for w in workers if w.status != "down"]
    return FleetOut(
        workers=len(workers),
        by_status=dict(Counter(w.status for w in workers)),
        by_liveness=dict(Counter(w.liveness for w in workers if w.liveness is not None)),
        breakers=dict(Counter(w.breaker.state for w in workers if w.breaker is not None)),
        in_flight=sum(w.load.in_flight for w in live),
        queue_depth=sum(w.load.queue_depth for w in live),
        processed=sum(w.load.batches_ok for w in workers),
        failed=sum(w.load.batches_failed + w.load.batches_timed_out for w in workers),
        capacity_per_s=round(sum(w.load.capacity_per_s for w in live), 3),
        balancer=BalancerOut(active_id=newest.judged_by if newest else None,
                             last_judged_at=newest.judged_at if newest else None),
        queues=None if queues is None else [
            QueueOut(name=q.name, messages=q.messages, ready=q.ready, unacked=q.unacked,
                     consumers=q.consumers)
            for q in sorted(queues, key=lambda q: q.name) if q.name.startswith("frames.")],
        queues_error=queues_error,
    )
