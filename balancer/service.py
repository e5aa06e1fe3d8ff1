"""Balancer wiring: heartbeats in (fleet: liveness and breakers), frames.ingress in, each batch
routed by the policy (balancer/router.py), dead workers failed over (balancer/failover.py).

frames.ingress has a single active consumer: a second balancer is a hot standby that follows
the heartbeats and takes over the routing when the active one's connection dies. Routing is
sequential, one batch at a time under `_turn`, so each camera's batches keep their order; the
clock task takes the same turn to apply liveness timeouts (and fail over) while no batch
arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from balancer import metrics
from balancer.failover import Failover
from balancer.fleet import Fleet
from balancer.holdings import Holdings
from balancer.liveness import Liveness
from balancer.policy import make_policy
from balancer.router import Router
from balancer.settings import BalancerSettings
from contracts.messages import MessageError, WorkerHeartbeat
from infra import amqp, db, ops

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
            await router.reload_assignments()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                beats, beat_tag = await amqp.consume_heartbeats(channel, self._on_heartbeat)
                clock = tg.create_task(self._clock(failover, stop))
                async with ingress.iterator() as batches:
                    consumer = tg.create_task(self._route_all(router, failover, batches))
                    self.consuming = True
                    log.info("balancer ready id=%s policy=%s liveness=%s assignments=%d",
                             self.settings.balancer_id, self.policy.name,
                             self.settings.liveness_mode, len(router.assigned))
                    await stop.wait()
                    self.consuming = False
                    await batches.close()
                    await consumer
                await clock
                await beats.cancel(beat_tag)
                server.should_exit = True
        finally:
            await connection.close()
            await self.engine.dispose()

    def _on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        if self.failover is not None:
            self.failover.note(self.fleet.observe(beat, time.monotonic()))

    async def _clock(self, failover: Failover, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.liveness_poll_s)
            if not self._turn.locked():  # a batch being routed applies the clock itself
                async with self._turn:
                    await failover.settle()
            now_mono = time.monotonic()
            for worker_id, state in self.fleet.breaker_states(now_mono).items():
                metrics.BREAKER_STATE.labels(worker_id).set(metrics.BREAKER_STATE_VALUE[state])

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
                self._last_batch_mono = time.monotonic()
