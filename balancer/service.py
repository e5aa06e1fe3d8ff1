"""Balancer wiring: heartbeats in, frames.ingress in, each batch republished untouched (body
and id) to the chosen worker's queue with the assignment epoch added to its headers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from balancer import metrics
from balancer.assignments import assign, load_all
from balancer.liveness import Liveness, LivenessEvent
from balancer.policy import Assignment, choose_worker
from balancer.settings import BalancerSettings
from contracts import broker
from contracts.gaps import GapReason, GapSpan
from contracts.messages import BatchHeaders, MessageError, WorkerHeartbeat
from infra import amqp, db, ops
from infra.gaps import record_dead_lettered, record_gaps

log = logging.getLogger("camcount.balancer")


class Balancer:
    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.liveness = Liveness(settings.liveness())
        self.assigned: dict[str, Assignment] = {}
        self.queues: dict[str, AbstractQueue] = {}
        self.consuming = False

    def health(self) -> dict[str, Any]:
        live = self.liveness.live(time.monotonic())
        return {"ok": self.consuming, "live_workers": sorted(live)}

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, self.settings.balancer_id)
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.ingress_prefetch)
            ingress = await amqp.declare_frames_topology(channel)
            self.assigned = await load_all(self.engine)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                beats, beat_tag = await amqp.consume_heartbeats(channel, self._on_heartbeat)
                async with ingress.iterator() as batches:
                    consumer = tg.create_task(self._route_all(channel, batches))
                    self.consuming = True
                    log.info("balancer ready id=%s assignments=%d",
                             self.settings.balancer_id, len(self.assigned))
                    await stop.wait()
                    self.consuming = False
                    await batches.close()
                    await consumer
                await beats.cancel(beat_tag)
                server.should_exit = True
        finally:
            await connection.close()
            await self.engine.dispose()

    def _on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        _log_events(self.liveness.observe(beat, time.monotonic()))

    async def _route_all(
        self, channel: AbstractChannel, batches: AsyncIterator[AbstractIncomingMessage]
    ) -> None:
        # Strictly one at a time in queue order, so each camera's batches keep their order.
        async for message in batches:
            try:
                await self._route(channel, message)
            except MessageError as exc:
                log.warning("dead-lettering message %s: %s", message.message_id, exc)
                await record_dead_lettered(self.engine, message.headers)
                await amqp.dead_letter(channel, message, str(exc),
                                       f"balancer:{self.settings.balancer_id}")
                metrics.DEAD_LETTERED.inc()

    async def _route(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        headers = BatchHeaders.from_amqp(message.headers)
        while True:
            if time.time() > headers.deadline_at:
                reason: GapReason = "stale"
                if not self.liveness.live(time.monotonic()):
                    reason = "no_worker"
                await self._gap(headers, reason)
                await message.ack()
                return
            now_mono = time.monotonic()
            _log_events(self.liveness.poll(now_mono))
            live = self.liveness.live(now_mono)
            metrics.LIVE_WORKERS.set(len(live))
            current = self.assigned.get(headers.camera_id)
            worker_id = choose_worker(headers.camera_id, headers.capability, headers.region,
                                      current, live, self.assigned,
                                      suspect=self.liveness.suspects(now_mono))
            if worker_id is not None:
                break
            await asyncio.sleep(self.settings.no_worker_poll_s)
        if current is None or current.worker_id != worker_id:
            current = await assign(self.engine, headers.camera_id, worker_id)
            self.assigned[headers.camera_id] = current
            metrics.REASSIGNMENTS.inc()
            log.info("camera %s assigned to %s (epoch %d)", headers.camera_id, worker_id,
                     current.epoch)
        queue = await self._worker_queue(channel, worker_id)
        routed = headers.model_copy(update={"assignment_epoch": current.epoch})
        await channel.default_exchange.publish(
            aio_pika.Message(
                message.body, headers=routed.to_amqp(), message_id=message.message_id,
                priority=int(headers.priority), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=message.content_type,
            ),
            routing_key=queue.name,
        )
        metrics.ROUTED.inc()
        await message.ack()

    async def _worker_queue(self, channel: AbstractChannel, worker_id: str) -> AbstractQueue:
        queue = self.queues.get(worker_id)
        if queue is None:
            # Declaring is idempotent; the worker may not have started consuming yet.
            queue = await amqp.declare_queue(channel, broker.worker_queue(worker_id))
            self.queues[worker_id] = queue
        return queue

    async def _gap(self, headers: BatchHeaders, reason: GapReason) -> None:
        async with self.engine.begin() as conn:
            await record_gaps(conn, headers.camera_id,
                              [GapSpan(headers.stream_epoch, headers.seq, headers.seq, reason)])
        metrics.GAPS.labels(reason).inc()


def _log_events(events: list[LivenessEvent]) -> None:
    for event in events:
        log.info("%s %s boot=%s (%s)", event.kind, event.worker_id, event.boot_id, event.reason)
