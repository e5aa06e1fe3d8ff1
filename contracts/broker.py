"""Every broker name in one place, as data. Roles declare these through infra.amqp."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

MAX_PRIORITY = 4  # classic queues only: quorum queues in RabbitMQ 3.x have no priorities

FRAMES_INGRESS = "frames.ingress"
FRAMES_DLX = "frames.dlx"
FRAMES_DEAD = "frames.dead"
HEARTBEATS = "registry.heartbeats"
REGISTRY_EVENTS = "registry.events"
RESULTS_COUNTS = "results.counts"
RESULTS_ALERTS = "results.alerts"

HEADER_ERROR = "x-camcount-error"
HEADER_ERROR_STAGE = "x-camcount-error-stage"
# Failed processing attempts of a batch before this delivery, summed over the workers that
# handed it back (classic queues have no delivery count): bounds its retries fleet-wide.
HEADER_ATTEMPTS = "x-camcount-attempts"
# Set by a worker that hands a batch back to frames.ingress ("fenced:<id>", "failed:<id>"): the
# balancer re-reads the camera's assignment instead of trusting its cache.
HEADER_REROUTED = "x-camcount-rerouted"


class Priority(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: Literal["fanout", "topic", "direct"]
    durable: bool = True


@dataclass(frozen=True)
class QueueSpec:
    name: str
    durable: bool = True
    arguments: dict[str, Any] = field(default_factory=dict)


def _priority_queue(name: str, single_active_consumer: bool = False) -> QueueSpec:
    arguments: dict[str, Any] = {
        "x-max-priority": MAX_PRIORITY,
        "x-queue-type": "classic",
        "x-dead-letter-exchange": FRAMES_DLX,
        "x-dead-letter-routing-key": FRAMES_DEAD,
    }
    if single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return QueueSpec(name, arguments=arguments)


def worker_queue_name(worker_id: str) -> str:
    return f"frames.worker.{worker_id}"


def results_routing_key(region: str, camera_id: str) -> str:
    return f"{region}.{camera_id}"


# Stands in for the region and camera of a fleet-wide alert (a worker, a queue); ids are slugs
# starting with a letter or digit, so it names no real region or camera.
FLEET = "_fleet"


def alerts_routing_key(region: str | None, camera_id: str | None) -> str:
    """`<region>.<camera_id>` like counts; `_fleet._fleet` for a fleet-wide alert."""
    return results_routing_key(region or FLEET, camera_id or FLEET)


HEARTBEATS_EXCHANGE = ExchangeSpec(HEARTBEATS, "fanout")
RESULTS_COUNTS_EXCHANGE = ExchangeSpec(RESULTS_COUNTS, "topic")
RESULTS_ALERTS_EXCHANGE = ExchangeSpec(RESULTS_ALERTS, "topic")
EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(FRAMES_DLX, "direct"),
    HEARTBEATS_EXCHANGE,
    ExchangeSpec(REGISTRY_EVENTS, "topic"),
    RESULTS_COUNTS_EXCHANGE,
    RESULTS_ALERTS_EXCHANGE,
)
# One balancer consumes at a time (the others are hot standbys that take over when its
# connection dies): two routing at once would interleave a camera's batches out of order.
# Changing arguments of an existing queue is refused by the broker (PRECONDITION_FAILED): a
# frames.ingress declared by an older release must be deleted once, when empty.
INGRESS_QUEUE = _priority_queue(FRAMES_INGRESS, single_active_consumer=True)
DEAD_QUEUE = QueueSpec(FRAMES_DEAD, arguments={"x-queue-type": "classic"})


def worker_queue(worker_id: str) -> QueueSpec:
    return _priority_queue(worker_queue_name(worker_id))
