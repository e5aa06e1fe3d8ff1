"""Worker wiring: its own queue, heartbeats, detect -> track/count -> one transaction -> ack.

Two stages. Each delivered batch starts its preparation at once (JPEG decode and, for
order-free detectors, detection), at most MAX_CONCURRENT_JOBS at a time; commits go one at a
time through the Sequencer, in each camera's order. So the next batch is being detected while
this one tracks, counts and commits, and no core idles during a database round trip.
"""

from __future__ import annotations

import asyncio
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
from contracts.messages import BatchHeaders, MessageError, WorkerHeartbeat
from infra import amqp, db, ops
from infra.gaps import record_dead_lettered
from infra.runner import cancel_and_wait, shutdown_step
from workers import backgrounds, metrics
from workers.backgrounds import BackgroundSchedule
from workers.detection import Detection
from workers.detectors import Detectors
from workers.frames import DecodedBatch, decode_frames
from workers.heartbeat import Outcomes, Vitals, VitalsSample, beat_forever, capacity_per_s
from workers.redeliveries import count_redelivery
from workers.reorder import ReorderWindow
from workers.repository import CachedState, Outcome, apply_batch, record_stale
from workers.retry import AttemptLog, GiveUp, HandBack, Retry, attempts_header
from workers.sequencer import Applied, Sequencer, Skipped, skipped
from workers.settings import WorkerSettings
from workers.tracking import TrackerConfig

log = logging.getLogger("camcount.worker")


@dataclass(frozen=True)
class Prepared:
    """A batch made ready ahead of its turn. `decoded` is None for a batch past its deadline;
    `detections` is None where the detector must see batches in order (motion)."""

    decoded: DecodedBatch | None
    detections: list[list[Detection]] | None
    started_mono: float = 0.0  # when its decoding began
    prepare_s: float = 0.0  # how long decoding (and order-free detection) took


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.boot_id = secrets.token_hex(8)
        self.queue_name = broker.worker_queue_name(settings.worker_id)
        self.engine = db.create_engine(settings.database_url)
        self.tracker_config = TrackerConfig()
        self.detectors = Detectors(settings)
        self.cache: dict[str, CachedState] = {}
        self.backgrounds = BackgroundSchedule(settings.background_every_s)
        self._jobs = asyncio.Semaphore(settings.max_concurrent_jobs)
        self._prepared: dict[int, asyncio.Task[Prepared]] = {}  # by delivery tag
        self.in_flight = 0  # being handled now
        self.outstanding = 0  # delivered and not yet settled (prefetched, held, handled)
        self.processed = 0
        self.latency_ema_s = 0.0
        self.outcomes = Outcomes()
        self.retry = settings.retry_policy()
        self.attempts = AttemptLog()
        self.vitals = Vitals(settings.gpu_device if settings.use_gpu else None)
        self.consuming = False
        self.stopping = False
        self.started_mono = time.monotonic()
        self._failed: set[int] = set()  # fault injection: batches that already failed once

    def health(self) -> dict[str, Any]:
        return {"ok": self.consuming, "worker_id": self.settings.worker_id,
                "processed": self.processed, "in_flight": self.in_flight,
                "outstanding": self.outstanding, "batches_ok": self.outcomes.ok,
                "failed": self.outcomes.failed, "timed_out": self.outcomes.timed_out}

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
                beats = tg.create_task(beat_forever(
                    channel, queue, stop, self.settings.heartbeat_interval_s,
                    lambda depth, vitals: self._beat(depth, vitals, stop.is_set()),
                    self.vitals, self.settings.fault_seconds("beat_jitter")))
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
                    await amqp.stop_consuming(connection, batches, consumer, "batch")
                    await cancel_and_wait(expiry)
                # The goodbye beat tells the balancer at once; with the broker gone its declare
                # and publish would wait for a reconnect that never comes.
                await shutdown_step(beats, "the last heartbeat")
                server.should_exit = True
        finally:
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    async def _consume(
        self, sequencer: Sequencer, batches: AsyncIterator[AbstractIncomingMessage]
    ) -> None:
        """Start each delivery's preparation as it arrives; submit them for commit in delivery
        order from a second task, so a slow commit never holds up the next preparation."""
        ordered: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

        async def commit_in_order() -> None:
            while (message := await ordered.get()) is not None:
                await sequencer.submit(message)

        committer = asyncio.create_task(commit_in_order())
        try:
            async for message in batches:
                self.outstanding += 1
                self._start_preparing(message)
                ordered.put_nowait(message)
        finally:
            # Draining: the batch in hand finishes (never cancelled: a cancellation between
            # commit and ack would only cost a redelivery, but one swallowed by wait_for hung
            # the drain); what waits behind it goes back unacked when the channel closes.
            while not ordered.empty():
                ordered.get_nowait()
            ordered.put_nowait(None)
            await committer
            for task in self._prepared.values():
                task.cancel()
            await asyncio.gather(*self._prepared.values(), return_exceptions=True)
            self._prepared.clear()

    def _start_preparing(self, message: AbstractIncomingMessage) -> None:
        if message.redelivered or message.delivery_tag is None:
            # Its last holder died or gave it back: it is prepared in its turn, alone, so a
            # batch that crashes workers is counted (workers/redeliveries.py) without the
            # batches that happened to be in flight beside it.
            return
        self._prepared[message.delivery_tag] = asyncio.create_task(self._prepare(message))

    async def _prepare(self, message: AbstractIncomingMessage) -> Prepared:
        headers = BatchHeaders.from_amqp(message.headers)
        if message.redelivered:
            # Before any work on it: a poison batch may crash this process too.
            deliveries = await count_redelivery(self.engine, headers)
            if deliveries >= self.settings.max_redeliveries:
                raise MessageError(f"batch redelivered {deliveries} times: its holders died "
                                   "or gave it back each time (a poison batch?)")
        frames = decode_batch(message.body)
        if time.time() > headers.deadline_at:
            return Prepared(None, None)  # not worth detecting: it becomes a 'stale' gap
        async with self._jobs:
            started_mono = time.monotonic()
            with metrics.STAGE.labels("decode").time():
                decoded = await asyncio.to_thread(decode_frames, frames)
            if not self.detectors.order_free:
                return Prepared(decoded, None, started_mono, time.monotonic() - started_mono)
            with metrics.STAGE.labels("detect").time():
                detections = await asyncio.to_thread(
                    self.detectors.detect, headers.camera_id, headers.model, decoded.images
                )
            return Prepared(decoded, detections, started_mono, time.monotonic() - started_mono)

    def _beat(self, queue_depth: int, vitals: VitalsSample, stopping: bool) -> WorkerHeartbeat:
        settings, outcomes = self.settings, self.outcomes
        metrics.OUTSTANDING.set(self.outstanding)
        return WorkerHeartbeat(
            worker_id=settings.worker_id, boot_id=self.boot_id,
            worker_type=settings.worker_type, region=settings.region,
            capabilities=(settings.worker_type,), queue=self.queue_name,
            in_flight=self.outstanding, processed=self.processed,
            latency_ema_s=self.latency_ema_s, sent_at=time.time(), stopping=stopping,
            heartbeat_interval_s=settings.heartbeat_interval_s, queue_depth=queue_depth,
            processing_ema_s=outcomes.processing_ema_s,
            capacity_per_s=capacity_per_s(outcomes.prepare_ema_s, outcomes.serial_ema_s,
                                          settings.max_concurrent_jobs),
            max_jobs=settings.max_concurrent_jobs, batches_ok=outcomes.ok,
            batches_failed=outcomes.failed, batches_timed_out=outcomes.timed_out,
            batches_data_errors=outcomes.data_errors, rss_bytes=vitals.rss_bytes,
            cpu_percent=vitals.cpu_percent, gpu_name=vitals.gpu_name,
            gpu_memory_used_bytes=vitals.gpu_memory_used_bytes,
            gpu_memory_total_bytes=vitals.gpu_memory_total_bytes,
            gpu_utilisation_percent=vitals.gpu_utilisation_percent,
            models=self.detectors.served_models(), max_batch=self.detectors.max_batch,
        )

    async def _handle(self, channel: AbstractChannel,
                      message: AbstractIncomingMessage) -> Applied | Skipped:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            applied = await asyncio.wait_for(self._process(channel, message),
                                             self.settings.job_timeout_s)
            self.outcomes.ok += 1
            self.attempts.forget(message.message_id or "")
            return applied
        except MessageError as exc:
            self.outcomes.data_errors += 1
            await self._dead_letter(channel, message, str(exc))
            return skipped(message)
        except TimeoutError:
            self.outcomes.timed_out += 1
            log.warning("batch %s timed out after %.1f s", message.message_id,
                        self.settings.job_timeout_s)
            metrics.BATCHES.labels("timeout").inc()
            return await self._after_failure(channel, message, "timed out")
        except Exception as exc:
            self.outcomes.failed += 1
            log.exception("batch %s failed", message.message_id)
            metrics.BATCHES.labels("error").inc()
            return await self._after_failure(channel, message, repr(exc))
        finally:
            self.in_flight -= 1
            self.outstanding -= 1
            metrics.IN_FLIGHT.dec()

    async def _after_failure(self, channel: AbstractChannel, message: AbstractIncomingMessage,
                             error: str) -> Skipped | None:
        """Retry here with back-off, hand back to the balancer, or give up (workers/retry.py).
        A batch given up on is Skipped: the camera's batches behind it need not wait for it."""
        message_id = message.message_id or ""
        before = attempts_header((message.headers or {}).get(broker.HEADER_ATTEMPTS))
        verdict = self.retry.decide(self.attempts.failed(message_id), before)
        if isinstance(verdict, Retry):
            # Sleeping holds this worker's commit turn: the back-off is also a brake on a
            # worker that fails everything, while the balancer's breaker moves its cameras.
            await asyncio.sleep(verdict.delay_s)
            await message.nack(requeue=True)
            return None
        self.attempts.forget(message_id)
        if isinstance(verdict, HandBack):
            log.warning("batch %s failed %d times here; handed back for another worker",
                        message_id, self.settings.max_attempts)
            metrics.RETRY_VERDICTS.labels("hand_back").inc()
            await self._reroute(channel, message, "failed", verdict.attempts_total)
            await message.ack()
            return None
        assert isinstance(verdict, GiveUp)
        metrics.RETRY_VERDICTS.labels("give_up").inc()
        await self._dead_letter(
            channel, message, f"failed {verdict.attempts_total} attempts; last: {error}")
        return skipped(message)

    async def _dead_letter(self, channel: AbstractChannel, message: AbstractIncomingMessage,
                           reason: str) -> None:
        log.warning("dead-lettering message %s: %s", message.message_id, reason)
        await record_dead_lettered(self.engine, message.headers)
        await amqp.dead_letter(channel, message, reason, f"worker:{self.settings.worker_id}")
        metrics.DEAD_LETTERED.inc()

    async def _process(self, channel: AbstractChannel,
                       message: AbstractIncomingMessage) -> Applied | Skipped:
        task = self._prepared.pop(message.delivery_tag or -1, None)
        # Awaited first, so its outcome (or its error) is always collected.
        prepared = await (task if task is not None else self._prepare(message))
        serial_mono = time.monotonic()
        headers = BatchHeaders.from_amqp(message.headers)
        failing_s = self.settings.fault_seconds("fail_until")
        if failing_s and serial_mono - self.started_mono < failing_s:
            raise RuntimeError(f"fault injection: failing every batch for {failing_s} s")
        if headers.assignment_epoch is None:
            raise MessageError("batch reached a worker without an assignment_epoch header")
        decoded = prepared.decoded
        if decoded is None:
            stale = await record_stale(self.engine, headers)
            metrics.BATCHES.labels("stale" if stale else "duplicate").inc()
            await message.ack()
            return Skipped(headers.camera_id, headers.stream_epoch, headers.seq)
        metrics.CORRUPT_FRAMES.inc(decoded.corrupt)
        if decoded.corrupt:
            self.outcomes.data_errors += 1  # the camera's fault: the breaker ignores these
        metrics.FRAMES.inc(len(decoded.images))
        detections = prepared.detections
        if detections is None:  # a detector that must see the camera's batches in order
            if self.detectors.needs_background(headers.camera_id):
                stored = await backgrounds.load(self.engine, headers.camera_id)
                primer = None if stored is None else backgrounds.decode(stored)
                self.detectors.prime(headers.camera_id, primer)
                metrics.BACKGROUNDS.labels("unprimed" if primer is None else "primed").inc()
            with metrics.STAGE.labels("detect").time():
                detections = await asyncio.to_thread(
                    self.detectors.detect, headers.camera_id, headers.model, decoded.images
                )
        background = self._background_due(headers)
        with metrics.STAGE.labels("commit").time():
            result = await apply_batch(
                self.engine, self.settings.worker_id, headers, decoded.captured_at, detections,
                self.cache.get(headers.camera_id), self.tracker_config,
                before_commit=self._fault_before_commit(headers.seq),
                ledger=self.settings.batch_ledger,
                started_at=time.time() - (time.monotonic() - prepared.started_mono),
                background=background,
            )
        if self.settings.kills_at("after_commit", headers.seq):
            await self._die()
        done_mono = time.monotonic()
        self.outcomes.processed(done_mono - prepared.started_mono, prepared.prepare_s,
                                done_mono - serial_mono)
        if result.outcome is Outcome.APPLIED:
            assert result.state is not None and result.progress is not None
            self.cache[headers.camera_id] = CachedState(result.progress, result.state)
            if background is not None:
                self.backgrounds.saved(headers.camera_id, headers.captured_at)
                metrics.BACKGROUNDS.labels("stored").inc()
            metrics.CROSSINGS.inc(len(result.crossings))
            latency = time.time() - headers.captured_at
            metrics.LATENCY.observe(latency)
            self.latency_ema_s = 0.8 * self.latency_ema_s + 0.2 * latency
        elif result.outcome is Outcome.FENCED:
            # The camera moved to another worker: hand the batch back for re-routing.
            self.cache.pop(headers.camera_id, None)
            self.detectors.forget(headers.camera_id)
            self.backgrounds.forget(headers.camera_id)
            await self._reroute(channel, message, "fenced")
        metrics.BATCHES.labels(result.outcome.value).inc()
        self.processed += 1
        await message.ack()
        progress = result.progress
        if result.outcome in (Outcome.APPLIED, Outcome.DUPLICATE) and progress is not None:
            return headers.camera_id, progress.stream_epoch, progress.last_seq
        return None

    def _background_due(self, headers: BatchHeaders) -> bytes | None:
        if not self.backgrounds.due(headers.camera_id, headers.captured_at,
                                    self.detectors.frames_seen(headers.camera_id)):
            return None
        image = self.detectors.background(headers.camera_id)
        return None if image is None else backgrounds.encode(image)

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

    async def _reroute(self, channel: AbstractChannel, message: AbstractIncomingMessage,
                       why: str, attempts_total: int | None = None) -> None:
        """Hand a batch back to frames.ingress for the balancer to route again: the camera moved
        (fenced), or this worker keeps failing it."""
        headers = {k: v for k, v in (message.headers or {}).items() if k != "assignment_epoch"}
        headers[broker.HEADER_REROUTED] = f"{why}:{self.settings.worker_id}"
        if attempts_total is not None:
            headers[broker.HEADER_ATTEMPTS] = attempts_total
        await channel.default_exchange.publish(
            aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                             priority=message.priority,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=broker.FRAMES_INGRESS,
        )
