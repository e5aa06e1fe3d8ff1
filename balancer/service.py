"""Balancer wiring: heartbeats in (fleet: liveness and breakers), frames.ingress in, each batch
routed by the policy (balancer/router.py), dead workers failed over (balancer/failover.py).

frames.ingress has a single active consumer: a second balancer is a hot standby that follows
the heartbeats and takes over the routing when the active one's connection dies. Routing is
sequential, one batch at a time under `_turn`, so each camera's batches keep their order; the
clock task takes the same turn to apply liveness timeouts (and fail over) while no batch
arrives.

The active balancer also records its verdicts in PostgreSQL (balancer/worker_state.py). It is
the one frames.ingress delivers to, or, before any batch, the one that finds itself that
queue's only consumer (single active consumer keeps the first one active while it lives).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError
from sqlalchemy.exc import SQLAlchemyError

from balancer import metrics
from balancer.failover import BROKER_ERRORS, Failover
from balancer.fleet import Fleet
from balancer.holdings import Holdings
from balancer.liveness import Liveness
from balancer.policy import make_policy
from balancer.router import Router
from balancer.settings import BalancerSettings
from balancer.worker_state import Record, Recorder, Writer
from contracts import broker
from contracts.messages import MessageError, WorkerHeartbeat
from infra import amqp, db, ops
from infra.runner import shutdown_step

ROUTE_RETRY_S = 0.5

log = logging.getLogger("camcount.balancer")


class Balancer:
    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.fleet = Fleet(Liveness(settings.liveness()), settings.breaker(),
                           settings.default_capacity_per_s)
        self.policy = make_policy(settings.balancer_policy, settings.hybrid())
        self.holdings = Holdings()
        self.router: Router | None = None
        self.failover: Failover | None = None
        self.consuming = False
        self._turn = asyncio.Lock()
        self._last_batch_mono = -float("inf")

    def health(self) -> dict[str, Any]:
        now_mono = time.monotonic()
        workers = self.fleet.snapshot(now_mono)
        return {
            "ok": self.consuming, "balancer_id": self.settings.balancer_id,
            "active": bool(self.failover and self.failover.active),
            "policy": self.policy.name,
            "live_workers": sorted(w["worker_id"] for w in workers if w["liveness"] != "down"),
            "workers": workers,
            "failed_over": self.failover.dead() if self.failover else [],
        }

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, self.settings.balancer_id)
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.ingress_prefetch)
            ingress = await amqp.declare_frames_topology(channel)
            router = Router(self.engine, channel, self.fleet, self.holdings, self.policy,
                            f"balancer:{self.settings.balancer_id}")
            failover = Failover(self.fleet, router, self.settings.dead_queue_watch_s,
                                self.settings.dead_queue_recheck_s)
            router.settle = failover.settle
            self.router, self.failover = router, failover

            def lost_turn(*_: object) -> None:
                # Consuming again after a reconnect, at the back of the single-active-consumer
                # line: until told otherwise, another balancer routes (and records).
                failover.active = False

            connection.reconnect_callbacks.add(lost_turn)
            queue: asyncio.Queue[Record] = asyncio.Queue(self.settings.worker_state_queue_size)
            recorder = Recorder(self.fleet, queue, lambda: failover.active,
                                self.settings.worker_state_refresh_s,
                                self.settings.worker_events_retention_s,
                                self.settings.worker_events_prune_s)
            self.fleet.listener = recorder.on_changes
            # Its own channel: a channel error publishing an event must not close routing's.
            events_channel = await connection.channel()
            events: AbstractExchange = await events_channel.get_exchange(broker.REGISTRY_EVENTS)
            writer = Writer(self.engine, queue, self.settings.balancer_id, lambda: events)
            await router.reload_assignments()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                tg.create_task(writer.run(stop))
                beats, beat_tag = await amqp.consume_heartbeats(channel, self._on_heartbeat)
                clock = tg.create_task(self._clock(failover, ingress, recorder, stop))
                async with ingress.iterator() as batches:
                    consumer = tg.create_task(self._route_all(router, failover, batches))
                    self.consuming = True
                    log.info("balancer ready id=%s policy=%s liveness=%s assignments=%d",
                             self.settings.balancer_id, self.policy.name,
                             self.settings.liveness_mode, len(router.assigned))
                    await stop.wait()
                    self.consuming = False
                    await amqp.stop_consuming(connection, batches, consumer, "ingress")
                # Mid-tick with the broker gone, its probe waits for a reconnect (no timeout).
                await shutdown_step(clock, "the liveness clock")
                await shutdown_step(beats.cancel(beat_tag),
                                    "cancelling the heartbeat consumer")
                server.should_exit = True
        finally:
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    def _on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        if self.failover is not None:
            self.failover.note(self.fleet.observe(beat, time.monotonic()))

    async def _clock(self, failover: Failover, ingress: AbstractQueue, recorder: Recorder,
                     stop: asyncio.Event) -> None:
        probed_mono = -float("inf")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.liveness_poll_s)
            if not self._turn.locked():  # a batch being routed applies the clock itself
                async with self._turn:
                    await failover.settle()
            now_mono = time.monotonic()
            if (not failover.active and self.consuming
                    and now_mono - probed_mono >= self.settings.standby_probe_s):
                probed_mono = now_mono
                await self._claim_if_alone(failover, ingress)
            recorder.tick()
            for worker_id, state in self.fleet.breaker_states(now_mono).items():
                metrics.BREAKER_STATE.labels(worker_id).set(metrics.BREAKER_STATE_VALUE[state])

    async def _claim_if_alone(self, failover: Failover, ingress: AbstractQueue) -> None:
        """Active without waiting for a batch: with no traffic a lone balancer would never
        learn it is the active one, nor record anything. Only called while we consume, so a
        count of one is us."""
        try:
            consumers = await ingress.declare(timeout=self.settings.standby_probe_s)
        except (AMQPError, ConnectionError, TimeoutError) as exc:
            log.debug("frames.ingress consumer count unknown: %s", exc)
            return
        if consumers.consumer_count == 1 and not failover.active:
            failover.active = True
            log.info("active: the only consumer of %s", broker.FRAMES_INGRESS)

    async def _route_all(self, router: Router, failover: Failover,
                         batches: AsyncIterator[AbstractIncomingMessage]) -> None:
        async for message in batches:
            # Only the single active consumer of frames.ingress gets here.
            failover.active = True
            async with self._turn:
                now_mono = time.monotonic()
                if now_mono - self._last_batch_mono > self.settings.assignments_reload_idle_s:
                    # After a pause (or on taking over from another balancer) our cached
                    # assignments may be stale; one query, not one per batch.
                    await router.reload_assignments()
                self._last_batch_mono = now_mono
                try:
                    await router.route(message)
                except MessageError as exc:
                    await router.dead_letter(message, exc)
                except (*BROKER_ERRORS, SQLAlchemyError, OSError) as exc:
                    # The broker or the database went while routing: give the batch back
                    # (after a pause: no busy loop while they are down) to be routed again,
                    # or recorded as a gap once past its deadline. Were the channel gone, the
                    # broker redelivers it anyway; a worker drops a copy it already applied.
                    log.warning("batch %s not routed, retried: %r", message.message_id, exc)
                    await asyncio.sleep(ROUTE_RETRY_S)
                    with contextlib.suppress(*BROKER_ERRORS):
                        await message.nack(requeue=True)
                self._last_batch_mono = time.monotonic()
