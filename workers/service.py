"""Worker wiring: its own queue, heartbeats, detect -> track/count -> one transaction -> ack.

Two stages. Each delivered batch starts its preparation at once (JPEG decode and, for
order-free detectors, detection), at most MAX_CONCURRENT_JOBS at a time; commits go one at a
time through the Sequencer, in each camera's order. So the next batch is being detected while
this one tracks, counts and commits, and no core idles during a database round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts import broker
from contracts.batch import decode_batch
from contracts.gaps import GapSpan
from contracts.messages import BatchHeaders, MessageError, WorkerHeartbeat
from infra import amqp, db, ops
from infra.gaps import record_dead_lettered, record_gaps
from infra.runner import cancel_and_wait
from workers import metrics
from workers.detection import Detection
from workers.detectors import Detectors
from workers.frames import DecodedBatch, decode_frames
from workers.reorder import ReorderWindow
from workers.repository import CachedState, Outcome, apply_batch
from workers.sequencer import Applied, Sequencer
from workers.settings import WorkerSettings
from workers.tracking import TrackerConfig

log = logging.getLogger("camcount.worker")


@dataclass(frozen=True)
class Prepared:
    """A batch made ready ahead of its turn. `decoded` is None for a batch past its deadline;
    `detections` is None where the detector must see batches in order (motion)."""

    decoded: DecodedBatch | None
    detections: list[list[Detection]] | None


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.boot_id = secrets.token_hex(8)
        self.queue_name = broker.worker_queue_name(settings.worker_id)
        self.engine = db.create_engine(settings.database_url)
        self.tracker_config = TrackerConfig()
        self.detectors = Detectors(settings)
        self.cache: dict[str, CachedState] = {}
        self._jobs = asyncio.Semaphore(settings.max_concurrent_jobs)
        self._prepared: dict[int, asyncio.Task[Prepared]] = {}  # by delivery tag
        self.in_flight = 0
        self.processed = 0
        self.latency_ema_s = 0.0
        self.consuming = False
        self.stopping = False
        self._failed: set[int] = set()  # fault injection: batches that already failed once

    def health(self) -> dict[str, Any]:
        return {"ok": self.consuming, "worker_id": self.settings.worker_id,
                "processed": self.processed, "in_flight": self.in_flight}

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.detectors.load)
        connection = await amqp.connect(self.settings.rabbitmq_url, self.settings.worker_id)
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch_count)
            await amqp.declare_frames_topology(channel)
            queue = await amqp.declare_queue(channel, broker.worker_queue(self.settings.worker_id))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                beats = tg.create_task(self._heartbeats(channel, stop))
                sequencer = Sequencer(
                    ReorderWindow(self.settings.reorder_window_batches,
                                  self.settings.reorder_window_s),
                    lambda m: self._handle(channel, m),
                )
                expiry = tg.create_task(sequencer.expire_forever())
                async with queue.iterator() as batches:
                    consumer = tg.create_task(self._consume(sequencer, batches))
                    self.consuming = True
                    log.info("worker ready id=%s queue=%s prefetch=%d",
                             self.settings.worker_id, self.queue_name,
                             self.settings.prefetch_count)
                    await stop.wait()
                    # Drain: stop taking deliveries, finish the batch in hand; what was
                    # prefetched but not started goes back to the queue when the channel closes.
                    self.consuming = False
                    await batches.close()
                    await consumer
                    await cancel_and_wait(expiry)
                await beats
                server.should_exit = True
        finally:
            await connection.close()
            await self.engine.dispose()

    async def _consume(
        self, sequencer: Sequencer, batches: AsyncIterator[AbstractIncomingMessage]
    ) -> None:
        """Start each delivery's preparation as it arrives; submit them for commit in delivery
        order from a second task, so a slow commit never holds up the next preparation."""
        ordered: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def commit_in_order() -> None:
            while True:
                await sequencer.submit(await ordered.get())

        committer = asyncio.create_task(commit_in_order())
        try:
            async for message in batches:
                self._start_preparing(message)
                ordered.put_nowait(message)
        finally:
            # Draining: the batch in hand finishes; what waits behind it goes back to the
            # queue unacked when the channel closes.
            await cancel_and_wait(committer)
            for task in self._prepared.values():
                task.cancel()
            await asyncio.gather(*self._prepared.values(), return_exceptions=True)
            self._prepared.clear()

    def _start_preparing(self, message: AbstractIncomingMessage) -> asyncio.Task[Prepared]:
        task = asyncio.create_task(self._prepare(message))
        if message.delivery_tag is not None:
            self._prepared[message.delivery_tag] = task
        return task

    async def _prepare(self, message: AbstractIncomingMessage) -> Prepared:
        headers = BatchHeaders.from_amqp(message.headers)
        frames = decode_batch(message.body)
        if time.time() > headers.deadline_at:
            return Prepared(None, None)  # not worth detecting: it becomes a 'stale' gap
        async with self._jobs:
            with metrics.STAGE.labels("decode").time():
                decoded = await asyncio.to_thread(decode_frames, frames)
            if not self.detectors.order_free:
                return Prepared(decoded, None)
            with metrics.STAGE.labels("detect").time():
                detections = await asyncio.to_thread(
                    self.detectors.detect, headers.camera_id, headers.model, decoded.images
                )
            return Prepared(decoded, detections)

    async def _heartbeats(self, channel: AbstractChannel, stop: asyncio.Event) -> None:
        exchange = await channel.get_exchange(broker.HEARTBEATS)
        while True:
            beat = WorkerHeartbeat(
                worker_id=self.settings.worker_id, boot_id=self.boot_id,
                worker_type=self.settings.worker_type, region=self.settings.region,
                capabilities=(self.settings.worker_type,), queue=self.queue_name,
                in_flight=self.in_flight, processed=self.processed,
                latency_ema_s=self.latency_ema_s, sent_at=time.time(), stopping=stop.is_set(),
            )
            await exchange.publish(
                aio_pika.Message(beat.model_dump_json().encode(),
                                 content_type="application/json", expiration=10),
                routing_key="",
            )
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.heartbeat_interval_s)

    async def _handle(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> Applied:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            return await asyncio.wait_for(self._process(channel, message),
                                          self.settings.job_timeout_s)
        except MessageError as exc:
            log.warning("dead-lettering message %s: %s", message.message_id, exc)
            await record_dead_lettered(self.engine, message.headers)
            await amqp.dead_letter(channel, message, str(exc), f"worker:{self.settings.worker_id}")
            metrics.DEAD_LETTERED.inc()
            return None
        except Exception:
            log.exception("batch %s failed; it will be redelivered", message.message_id)
            metrics.BATCHES.labels("error").inc()
            await asyncio.sleep(self.settings.retry_delay_s)
            await message.nack(requeue=True)
            return None
        finally:
            self.in_flight -= 1
            metrics.IN_FLIGHT.dec()

    async def _process(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> Applied:
        task = self._prepared.pop(message.delivery_tag or -1, None)
        # Awaited first, so its outcome (or its error) is always collected.
        prepared = await (task if task is not None else self._prepare(message))
        headers = BatchHeaders.from_amqp(message.headers)
        if headers.assignment_epoch is None:
            raise MessageError("batch reached a worker without an assignment_epoch header")
        decoded = prepared.decoded
        if decoded is None:
            async with self.engine.begin() as conn:
                await record_gaps(conn, headers.camera_id,
                                  [GapSpan(headers.stream_epoch, headers.seq, headers.seq,
                                           "stale")])
            metrics.BATCHES.labels("stale").inc()
            await message.ack()
            return None
        metrics.CORRUPT_FRAMES.inc(decoded.corrupt)
        metrics.FRAMES.inc(len(decoded.images))
        detections = prepared.detections
        if detections is None:  # a detector that must see the camera's batches in order
            with metrics.STAGE.labels("detect").time():
                detections = await asyncio.to_thread(
                    self.detectors.detect, headers.camera_id, headers.model, decoded.images
                )
        with metrics.STAGE.labels("commit").time():
            result = await apply_batch(
                self.engine, self.settings.worker_id, headers, decoded.captured_at, detections,
                self.cache.get(headers.camera_id), self.tracker_config,
                before_commit=self._fault_before_commit(headers.seq),
            )
        if self.settings.kills_at("after_commit", headers.seq):
            await self._die()
        if result.outcome is Outcome.APPLIED:
            assert result.state is not None and result.progress is not None
            self.cache[headers.camera_id] = CachedState(result.progress, result.state)
            metrics.CROSSINGS.inc(len(result.crossings))
            latency = time.time() - headers.captured_at
            metrics.LATENCY.observe(latency)
            self.latency_ema_s = 0.8 * self.latency_ema_s + 0.2 * latency
        elif result.outcome is Outcome.FENCED:
            # The camera moved to another worker: hand the batch back for re-routing.
            self.cache.pop(headers.camera_id, None)
            self.detectors.forget(headers.camera_id)
            await self._reroute(channel, message)
        metrics.BATCHES.labels(result.outcome.value).inc()
        self.processed += 1
        await message.ack()
        progress = result.progress
        if result.outcome in (Outcome.APPLIED, Outcome.DUPLICATE) and progress is not None:
            return headers.camera_id, progress.stream_epoch, progress.last_seq
        return None

    def _fault_before_commit(self, seq: int) -> Callable[[], Awaitable[None]] | None:
        if self.settings.kills_at("before_commit", seq):
            return self._die
        if self.settings.kills_at("fail_once", seq) and seq not in self._failed:
            self._failed.add(seq)

            async def fail() -> None:
                raise RuntimeError(f"fault injection: batch {seq} fails once")

            return fail
        return None

    async def _die(self) -> None:
        log.warning("fault injection: SIGKILL now (%s)", self.settings.fault_injection)
        os.kill(os.getpid(), signal.SIGKILL)

    async def _reroute(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        headers = {k: v for k, v in (message.headers or {}).items() if k != "assignment_epoch"}
        await channel.default_exchange.publish(
            aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                             priority=message.priority,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=broker.FRAMES_INGRESS,
        )
