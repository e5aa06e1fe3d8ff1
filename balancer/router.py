"""Routing one batch: ask the policy, follow its decision, and only then ack.

Route: record a changed assignment with a new epoch (fencing) before publishing, then
republish the body untouched, with the epoch added to the headers, to the worker's queue.
Delay: wait (never past the batch's deadline) and decide again; the caller routes one batch at
a time, so a camera's later batches wait behind it and keep their order.
Shed: record a 'shed' gap and ack (invariant 2: nothing disappears silently).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.abc import DeliveredMessage
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from balancer import metrics
from balancer.assignments import assign, load_all, load_one
from balancer.fleet import Fleet
from balancer.holdings import Holdings
from balancer.policy import Assignment, BatchRequest, Delay, Policy, Route, Shed
from contracts import broker
from contracts.gaps import GapReason, GapSpan
from contracts.messages import BatchHeaders, MessageError
from infra import amqp
from infra.gaps import record_dead_lettered, record_gaps

log = logging.getLogger("camcount.balancer")

Origin = Literal["ingress", "failover"]
# Headers a batch keeps on its way through the balancer besides its BatchHeaders.
_KEPT = (broker.HEADER_ATTEMPTS,)


async def _nothing() -> None:
    return None


class Router:
    def __init__(self, engine: AsyncEngine, channel: AbstractChannel, fleet: Fleet,
                 holdings: Holdings, policy: Policy, stage: str) -> None:
        self.engine = engine
        self.channel = channel
        self.fleet = fleet
        self.holdings = holdings
        self.policy = policy
        self.stage = stage
        self.assigned: dict[str, Assignment] = {}
        # Run before every decision: failover drains a dead worker's queue here first, so
        # its older batches are routed ahead of this one (per-camera order).
        self.settle: Callable[[], Awaitable[None]] = _nothing
        self._queues: dict[str, AbstractQueue] = {}

    async def reload_assignments(self) -> None:
        self.assigned = await load_all(self.engine)
        self.holdings.load({c: a.worker_id for c, a in self.assigned.items()}, time.monotonic())

    async def route(self, message: AbstractIncomingMessage, origin: Origin = "ingress") -> str:
        """Route, shed or gap one batch and ack it; returns what happened (for logs and tests).
        Raises MessageError for a message that is no batch (the caller dead-letters it)."""
        headers = BatchHeaders.from_amqp(message.headers)
        rate = self.holdings.observe(headers.camera_id, headers.priority, headers.stream_epoch,
                                     headers.seq, headers.captured_at)
        if message.headers and broker.HEADER_REROUTED in message.headers:
            # A worker handed it back (fenced, or failing): our cached assignment may be the
            # stale one that sent it there.
            await self._refresh(headers.camera_id)
        while True:
            await self.settle()
            now_mono = time.monotonic()
            time_left_s = headers.deadline_at - time.time()
            views = self.fleet.views(now_mono, self.holdings.held)
            metrics.LIVE_WORKERS.set(len(views))
            if time_left_s <= 0:
                reason: GapReason = ("failover" if origin == "failover"
                                     else "stale" if views else "no_worker")
                return await self._gap(message, headers, reason)
            current = self.assigned.get(headers.camera_id)
            request = BatchRequest(
                headers.camera_id, headers.capability, headers.region, headers.priority,
                time_left_s, current.worker_id if current else None, rate_per_s=rate,
                model=headers.model,
                held_since_mono=self.holdings.held_since(headers.camera_id))
            decision = self.policy.decide(request, views, now_mono)
            if isinstance(decision, Route):
                break
            if isinstance(decision, Shed):
                metrics.SHED.labels(headers.priority.name.lower()).inc()
                return await self._gap(message, headers, "shed")
            assert isinstance(decision, Delay)
            metrics.DELAYED.labels(decision.reason).inc()
            await asyncio.sleep(min(decision.retry_after_s, max(time_left_s, 0.001)))
        worker_id = decision.worker_id
        if current is None or current.worker_id != worker_id:
            current = await self._assign(headers.camera_id, worker_id, current)
        self.fleet.routed(worker_id, time.monotonic(), probe=decision.reason == "probe")
        if not await self._publish(message, headers, worker_id, current.epoch):
            return await self._gap(message, headers, "no_worker")
        metrics.ROUTED.labels(decision.reason).inc()
        await message.ack()
        return f"routed:{worker_id}"

    async def dead_letter(self, message: AbstractIncomingMessage, exc: MessageError) -> None:
        log.warning("dead-lettering message %s: %s", message.message_id, exc)
        await record_dead_lettered(self.engine, message.headers)
        await amqp.dead_letter(self.channel, message, str(exc), self.stage)
        metrics.DEAD_LETTERED.inc()

    async def worker_queue(self, worker_id: str) -> AbstractQueue:
        queue = self._queues.get(worker_id)
        if queue is None:
            # Declaring is idempotent; the worker may not have started consuming yet.
            queue = await amqp.declare_queue(self.channel, broker.worker_queue(worker_id))
            self._queues[worker_id] = queue
        return queue

    def forget_queue(self, worker_id: str) -> None:
        self._queues.pop(worker_id, None)

    async def _assign(self, camera_id: str, worker_id: str,
                      previous: Assignment | None) -> Assignment:
        try:
            current = await assign(self.engine, camera_id, worker_id)
        except IntegrityError:
            raise MessageError(f"batch of unknown camera {camera_id!r}") from None
        self.assigned[camera_id] = current
        self.holdings.place(camera_id, worker_id, time.monotonic())
        metrics.REASSIGNMENTS.inc()
        log.info("camera %s assigned to %s (epoch %d, was %s)", camera_id, worker_id,
                 current.epoch, previous.worker_id if previous else "none")
        return current

    async def _refresh(self, camera_id: str) -> None:
        current = await load_one(self.engine, camera_id)
        if current is None:
            self.assigned.pop(camera_id, None)
            return
        self.assigned[camera_id] = current
        self.holdings.place(camera_id, current.worker_id, time.monotonic())

    async def _publish(self, message: AbstractIncomingMessage, headers: BatchHeaders,
                       worker_id: str, epoch: int) -> bool:
        """Publishes mandatory, so a batch the broker routes nowhere comes back instead of
        vanishing: that happens when the worker's queue was deleted under us (by an operator,
        or lost with a broker node). The queue is declared again, which its worker re-consumes,
        and the batch sent once more; False if it is still unroutable (recorded as a gap)."""
        table: dict[str, Any] = {k: v for k, v in (message.headers or {}).items() if k in _KEPT}
        table |= headers.model_copy(update={"assignment_epoch": epoch}).to_amqp()
        for attempt in (1, 2):
            queue = await self.worker_queue(worker_id)
            result = await self.channel.default_exchange.publish(
                aio_pika.Message(
                    message.body, headers=table, message_id=message.message_id,
                    priority=int(headers.priority),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type=message.content_type,
                ),
                routing_key=queue.name, mandatory=True,
            )
            if not isinstance(result, DeliveredMessage):
                return True
            log.warning("batch %s returned unroutable by the broker (attempt %d): queue %s "
                        "is gone; declaring it again", message.message_id, attempt, queue.name)
            metrics.UNROUTABLE.inc()
            self.forget_queue(worker_id)
        return False

    async def _gap(self, message: AbstractIncomingMessage, headers: BatchHeaders,
                   reason: GapReason) -> str:
        try:
            async with self.engine.begin() as conn:
                await record_gaps(conn, headers.camera_id,
                                  [GapSpan(headers.stream_epoch, headers.seq, headers.seq,
                                           reason)])
        except IntegrityError:
            log.warning("gap of unknown camera %s not recorded", headers.camera_id)
        metrics.GAPS.labels(reason).inc()
        await message.ack()
        return f"gap:{reason}"
