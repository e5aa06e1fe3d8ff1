"""One camera's pipeline: RTSP -> sample -> JPEG -> batch -> confirmed publish; reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractExchange
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders
from contracts.secrets import mask_url
from infra.runner import cancel_and_wait
from ingest import metrics
from ingest.backoff import Backoff
from ingest.batching import Batcher, BatchPolicy
from ingest.cameras import CameraSpec, next_stream_epoch
from ingest.jpeg import encode_jpeg
from ingest.rtsp_client import RtspError
from ingest.rtsp_source import DecodedFrame, rtsp_frames
from ingest.sampling import Sampler
from ingest.settings import IngestSettings

log = logging.getLogger("camcount.ingest")


class CameraPipeline:
    def __init__(
        self, spec: CameraSpec, settings: IngestSettings, engine: AsyncEngine,
        exchange: AbstractExchange,
    ) -> None:
        self.spec, self.settings, self.engine, self.exchange = spec, settings, engine, exchange
        self.status = "connecting"
        self.backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._stream()
                reason = "ended"
            except RtspError as exc:
                reason = exc.reason
                log.warning("camera %s: %s", self.spec.id, exc)
            except OSError as exc:
                reason = "unreachable"
                log.warning("camera %s: %s", self.spec.id, exc)
            self.status = "connecting"
            metrics.RECONNECTS.labels(self.spec.id, reason).inc()
            delay = self.backoff.next_delay(time.monotonic() - started)
            log.info("camera %s: reconnecting in %.1fs (%s)", self.spec.id, delay, reason)
            await asyncio.sleep(delay)

    async def _stream(self) -> None:
        spec = self.spec
        epoch = await next_stream_epoch(self.engine, spec.id)
        log.info("camera %s: connecting to %s (stream epoch %d)", spec.id, mask_url(spec.url),
                 epoch)
        out = _Outbound(self, epoch, Batcher(BatchPolicy(
            spec.batch_frames, spec.batch_ms / 1000, self.settings.max_batch_bytes)))
        frames = rtsp_frames(spec.url, transport=self.settings.rtsp_transport,
                             timeout_s=self.settings.rtsp_timeout_s)
        ticker = asyncio.create_task(out.flush_due_forever())
        cancelled = False
        try:
            # aclosing: an error in this loop must TEARDOWN the session now, not at GC time.
            async with contextlib.aclosing(frames):
                await self._pump(frames, out)
        except asyncio.CancelledError:
            cancelled = True  # the camera was removed or changed: nobody waits for its frames
            raise
        finally:
            await cancel_and_wait(ticker)
            if not cancelled:
                # The stream ended or failed: what was batched so far still counts.
                await out.drain()

    async def _pump(self, frames: AsyncIterator[DecodedFrame], out: _Outbound) -> None:
        sampler = Sampler(self.spec.target_fps)
        async for frame in frames:
            if self.status != "live":
                self.status = "live"
                log.info("camera %s: live", self.spec.id)
            metrics.FRAMES_DECODED.labels(self.spec.id).inc()
            if not sampler.take(frame.pts_s):
                continue
            metrics.FRAMES_SAMPLED.labels(self.spec.id).inc()
            jpeg, width, height = await asyncio.to_thread(
                encode_jpeg, frame.image, self.settings.max_width, self.settings.jpeg_quality
            )
            await out.add(EncodedFrame(frame.received_at, width, height, jpeg))

    async def publish(self, epoch: int, seq: int, frames: list[EncodedFrame]) -> None:
        spec = self.spec
        captured_at = frames[0].captured_at
        headers = BatchHeaders(
            camera_id=spec.id, stream_epoch=epoch, seq=seq, priority=spec.priority,
            region=spec.region, capability=spec.capability, model=spec.model,
            captured_at=captured_at,
            deadline_at=captured_at + spec.deadline_s, frame_count=len(frames),
        )
        body = encode_batch(frames)
        # With publisher confirms on the channel, this returns once the broker has the batch.
        await self.exchange.publish(
            aio_pika.Message(body, headers=headers.to_amqp(), message_id=str(headers.batch_id),
                             priority=int(spec.priority), timestamp=captured_at,
                             content_type="application/x-camcount-batch",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=broker.FRAMES_INGRESS,
        )
        metrics.BATCHES.labels(spec.id).inc()
        metrics.PUBLISH_LATENCY.observe(time.time() - captured_at)


class _Outbound:
    """One stream epoch's batches: sequence numbers, the batcher, and a lock so that frame
    arrivals and the wait-time flush never publish concurrently (seq order = publish order)."""

    def __init__(self, pipeline: CameraPipeline, epoch: int, batcher: Batcher) -> None:
        self.pipeline, self.epoch, self.batcher = pipeline, epoch, batcher
        self.seq = 0
        self.lock = asyncio.Lock()

    async def add(self, frame: EncodedFrame) -> None:
        async with self.lock:
            await self._send(self.batcher.add(frame, time.monotonic()))

    async def flush_due_forever(self, interval_s: float = 0.05) -> None:
        # A stalled stream must not hold a partial batch until its deadline has passed.
        while True:
            await asyncio.sleep(interval_s)
            async with self.lock:
                await self._send(self.batcher.due(time.monotonic()))

    async def drain(self) -> None:
        async with self.lock:
            await self._send(self.batcher.drain())

    async def _send(self, batch: list[EncodedFrame] | None) -> None:
        if batch:
            await self.pipeline.publish(self.epoch, self.seq, batch)
            self.seq += 1
