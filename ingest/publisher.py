"""One camera's batches on their way to the broker: bounded, pipelined, republished, fenced.

- The frame loop never waits on the broker: `offer` queues a finished batch and returns.
- The sender gives a batch its sequence number only when it hands it to the broker, so a batch
  dropped before that leaves no hole in the sequence: it is recorded as a `dropped` gap of
  capture time instead, and the worker sees an unbroken run of seqs.
- Up to `window` publishes await their confirms at once (one channel keeps their order). A
  publish that fails (channel or connection lost) is sent again with the same message id, in
  seq order, once the robust connection is back; the worker drops duplicates by progress.
- When the broker blocks publishers (memory or disk alarm) or confirms stall, the queue fills;
  then the oldest queued batch is dropped, so memory stays bounded and what is published when
  the alarm clears is the newest footage. A batch whose deadline passed is dropped too: the
  worker would only record it as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from contracts import broker
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders
from infra.runner import cancel_and_wait
from ingest import metrics
from ingest.cameras import CameraSpec

log = logging.getLogger("camcount.ingest")

RETRY_MAX_S = 5.0


class BrokerLink(Protocol):
    exchange: AbstractExchange

    def blocked(self) -> bool:
        """True while the broker has told this connection it blocks publishers."""
        ...


@dataclass(frozen=True)
class Batch:
    epoch: int
    frames: list[EncodedFrame]

    @property
    def captured_at(self) -> float:
        return self.frames[0].captured_at

    @property
    def last_captured_at(self) -> float:
        return self.frames[-1].captured_at


@dataclass
class _DropSpan:
    epoch: int
    started_at: float
    ended_at: float
    batches: int = 0
    frames: int = 0
    why: str = ""


@dataclass
class OutboxEvents:
    """What the outbox tells its pipeline (status and coverage)."""

    backpressure: Callable[[str], None]
    cleared: Callable[[], None]
    dropped: Callable[[int, float, float, str], None]  # epoch, started_at, ended_at, detail


@dataclass
class Outbox:
    spec: CameraSpec
    link: BrokerLink
    events: OutboxEvents
    max_queued: int = 8
    window: int = 4
    _queue: deque[Batch] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: deque[tuple[BatchHeaders, aio_pika.Message, asyncio.Task[object]]] = field(
        default_factory=deque)
    _drops: _DropSpan | None = None
    _epoch: int = -1
    _seq: int = 0
    dropped_frames: int = 0
    # Called with each batch the broker confirmed (CONFIRM_LOG, tests only).
    on_confirmed: Callable[[BatchHeaders], None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def offer(self, batch: Batch) -> None:
        self._queue.append(batch)
        self._idle.clear()
        while len(self._queue) > self.max_queued:
            why = ("the broker blocks publishers (resource alarm)" if self.link.blocked()
                   else "publisher confirms are not keeping up")
            self._drop(self._queue.popleft(), why)
        self._ready.set()

    async def run(self) -> None:
        """The sender; runs until cancelled (the camera stopped) and then stops its publishes."""
        try:
            while True:
                await self._reap()
                while self._queue and len(self._in_flight) < self.window:
                    batch = self._queue.popleft()
                    if time.time() > batch.captured_at + self.spec.deadline_s:
                        self._drop(batch, "past its deadline before the broker took it")
                        continue
                    self._close_drops()
                    self._send(batch)
                if not self._queue and not self._in_flight:
                    self._idle.set()
                    if self._drops is None:
                        self.events.cleared()
                await self._next_event()
        finally:
            # The camera stopped (handed over, disabled, lease lost): what never reached the
            # broker is recorded as a gap, not lost silently.
            while self._queue:
                self._drop(self._queue.popleft(), "the camera stopped before the broker took it")
            self._close_drops()
            for _, _, task in self._in_flight:
                if task.done():
                    if not task.cancelled():
                        task.exception()  # retrieved: the camera stopped, nobody resends it
                else:
                    await cancel_and_wait(task)

    async def drain(self, timeout_s: float) -> None:
        """Publish what is queued and wait for every confirm (a session ending normally)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()

    # --- sending ---

    async def _next_event(self) -> None:
        """Sleep until a batch is offered or the oldest publish completes."""
        ready = asyncio.ensure_future(self._ready.wait())
        waiting: set[asyncio.Future[Any]] = {ready}
        if self._in_flight:
            waiting.add(self._in_flight[0][2])
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        self._ready.clear()

    def _send(self, batch: Batch) -> None:
        if batch.epoch != self._epoch:
            self._epoch, self._seq = batch.epoch, 0
        headers, message = self._message(batch, self._seq)
        self._seq += 1
        self._in_flight.append((headers, message, self._publish(message)))

    def _publish(self, message: aio_pika.Message) -> asyncio.Task[object]:
        # Tasks created in seq order reach the channel's lock in that order (FIFO): one
        # channel writes them to the broker in seq order while their confirms overlap.
        return asyncio.create_task(self.link.exchange.publish(
            message, routing_key=broker.FRAMES_INGRESS))

    async def _reap(self) -> None:
        """Retire confirmed publishes from the head; resend everything after a failed one."""
        delay = 0.1
        while self._in_flight and self._in_flight[0][2].done():
            headers, _, task = self._in_flight[0]
            error = task.exception() if not task.cancelled() else asyncio.CancelledError()
            if error is not None:
                # Lost with the channel (or nacked): send it and everything after it again,
                # in order, with the same ids, once the connection is back.
                log.warning("camera %s: publish of %s failed (%s: %s); resending %d in %.1fs",
                            self.spec.id, headers.batch_id, type(error).__name__, error,
                            len(self._in_flight), delay)
                metrics.REPUBLISHED.labels(self.spec.id).inc(len(self._in_flight))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                await self._resend_all()
                continue
            self._in_flight.popleft()
            if self.on_confirmed is not None:
                self.on_confirmed(headers)
            metrics.BATCHES.labels(self.spec.id).inc()
            metrics.PUBLISH_LATENCY.observe(time.time() - headers.captured_at)

    async def _resend_all(self) -> None:
        pending = list(self._in_flight)
        self._in_flight.clear()
        for _, _, task in pending:
            if not task.done():
                await cancel_and_wait(task)
        for headers, message, _ in pending:
            self._in_flight.append((headers, message, self._publish(message)))
            await asyncio.sleep(0)  # let each reach the channel before the next: seq order

    def _message(self, batch: Batch, seq: int) -> tuple[BatchHeaders, aio_pika.Message]:
        spec = self.spec
        headers = BatchHeaders(
            camera_id=spec.id, stream_epoch=batch.epoch, seq=seq, priority=spec.priority,
            region=spec.region, capability=spec.capability, model=spec.model,
            captured_at=batch.captured_at, deadline_at=batch.captured_at + spec.deadline_s,
            frame_count=len(batch.frames), published_at=time.time(),
        )
        message = aio_pika.Message(
            encode_batch(batch.frames), headers=headers.to_amqp(),
            message_id=str(headers.batch_id), priority=int(spec.priority),
            timestamp=batch.captured_at, content_type="application/x-camcount-batch",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        return headers, message

    # --- dropping ---

    def _drop(self, batch: Batch, why: str) -> None:
        metrics.FRAMES_DROPPED.labels(self.spec.id, "backpressure").inc(len(batch.frames))
        self.dropped_frames += len(batch.frames)
        span = self._drops
        if span is None or span.epoch != batch.epoch:
            self._close_drops()
            span = self._drops = _DropSpan(batch.epoch, batch.captured_at,
                                           batch.last_captured_at, why=why)
            log.warning("camera %s: dropping frames: %s", self.spec.id, why)
            self.events.backpressure(f"dropping frames: {why}")
        span.ended_at = max(span.ended_at, batch.last_captured_at)
        span.batches += 1
        span.frames += len(batch.frames)

    def _close_drops(self) -> None:
        span, self._drops = self._drops, None
        if span is not None:
            log.warning("camera %s: dropped %d frames in %d batches (%s)", self.spec.id,
                        span.frames, span.batches, span.why)
            self.events.dropped(span.epoch, span.started_at, span.ended_at,
                                f"{span.frames} frames in {span.batches} batches: {span.why}")


@dataclass
class ConnectionLink:
    """The node's broker connection as the outboxes see it."""

    connection: AbstractRobustConnection
    exchange: AbstractExchange

    def blocked(self) -> bool:
        # aiormq tracks Connection.Blocked/Unblocked but keeps the flag private; reading it
        # only sharpens the reason an operator sees, so a missing attribute is harmless.
        transport = getattr(self.connection, "transport", None)
        underlay = getattr(transport, "connection", None)
        unblocked = getattr(underlay, "_Connection__connection_unblocked", None)
        return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()
