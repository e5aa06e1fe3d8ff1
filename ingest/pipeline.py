"""One camera on one node: source -> sample -> JPEG -> batch -> outbox, with a watchdog.

The pipeline runs sessions one after another (reconnecting with back-off) while this node
holds the camera's lease. Around each session a watchdog, outside the decoder, ticks on its own
clock: it sees a stall even when the source hangs inside a read, flushes partial batches when
frames slow down, and ends the session when the lease is no longer held. Health judgements come
from the pure `CameraHealth`; writes go through the `StatusBoard`, publishing through the
`Outbox`: the frame loop waits on neither PostgreSQL nor the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.batch import EncodedFrame
from contracts.secrets import mask_url
from infra.runner import cancel_and_wait
from ingest import metrics
from ingest.backoff import Backoff
from ingest.batching import Batcher, BatchPolicy
from ingest.cameras import CameraSpec, next_stream_epoch
from ingest.confirm_log import confirm_recorder
from ingest.health import CameraHealth, Effect, HealthPolicy
from ingest.jpeg import prepare_frame
from ingest.leases import Fence, LeaseLost
from ingest.publisher import Batch, BrokerLink, Outbox, OutboxEvents
from ingest.sampling import Sampler
from ingest.settings import IngestSettings
from ingest.source import DecodedFrame, SourceError
from ingest.sources import camera_frames
from ingest.status_store import StatusBoard

log = logging.getLogger("camcount.ingest")

TICK_S = 0.1


class _Restart(Exception):
    """The watchdog or the health judgement ends this session (stalled, frozen)."""


class CameraPipeline:
    def __init__(
        self, spec: CameraSpec, settings: IngestSettings, engine: AsyncEngine,
        link: BrokerLink, fence: Fence, board: StatusBoard,
    ) -> None:
        self.spec, self.settings, self.engine = spec, settings, engine
        self.fence, self.board = fence, board
        self.health = CameraHealth(HealthPolicy(settings.stall_s, settings.frozen_s))
        self.outbox = Outbox(
            spec, link,
            OutboxEvents(self._backpressure, self._cleared, self._dropped),
            max_queued=settings.outbox_batches, window=settings.publish_window,
            on_confirmed=(confirm_recorder(settings.confirm_log, spec)
                          if settings.confirm_log is not None else None))
        self.backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s,
                               settings.reconnect_healthy_s)
        self.epoch = 0
        self.counters = {"decoded": 0, "sampled": 0, "sessions": 0}
        self._delivered = False
        self._latest: EncodedFrame | None = None  # the newest sampled frame, for snapshots
        self._snapshot_of: EncodedFrame | None = None
        self._snapshot_mono = -float("inf")

    @property
    def status(self) -> str:
        return self.health.status or "connecting"

    async def run(self) -> None:
        adopted = await self.board.adopt(self.spec.id)
        self.health.last_frame_at, self.health.gap_open = adopted.last_frame_at, adopted.gap_open
        sender = asyncio.create_task(self.outbox.run(), name=f"outbox-{self.spec.id}")
        refresher = asyncio.create_task(self._refresh_forever())
        try:
            while self.fence.held():
                started = time.monotonic()
                await self._one_session()
                delay = self.backoff.next_delay(time.monotonic() - started)
                log.info("camera %s: reconnecting in %.1fs (%s: %s)", self.spec.id, delay,
                         self.health.status, self.health.reason)
                await asyncio.sleep(delay)
        except LeaseLost:
            log.warning("camera %s: lease not renewed in time: stopped reading", self.spec.id)
        finally:
            await cancel_and_wait(refresher)
            await cancel_and_wait(sender)

    async def _one_session(self) -> None:
        spec = self.spec
        self.epoch = await next_stream_epoch(self.engine, spec.id, self.fence)
        self.counters["sessions"] += 1
        self._apply(self.health.on_connecting(time.time(), "opening a session"))
        log.info("camera %s: connecting to %s (stream epoch %d)", spec.id, mask_url(spec.url),
                 self.epoch)
        batcher = Batcher(BatchPolicy(spec.batch_frames, spec.batch_ms / 1000,
                                      self.settings.max_batch_bytes))
        frames = camera_frames(spec.url, pinned_address=spec.pinned_address,
                               transport=self.settings.rtsp_transport,
                               timeout_s=self.settings.rtsp_timeout_s)
        self._delivered = False  # set by the first frame: a failure after it is mid-stream
        session = asyncio.create_task(self._pump(frames, batcher), name=f"session-{spec.id}")
        try:
            await self._watch(session, batcher)
        except SourceError as exc:
            metrics.RECONNECTS.labels(spec.id, exc.reason).inc()
            log.warning("camera %s: %s", spec.id, exc)
            self._apply(self.health.on_failure(time.time(), exc.reason, str(exc),
                                               mid_stream=self._delivered))
        except _Restart as exc:
            metrics.RECONNECTS.labels(spec.id, str(exc)).inc()
        finally:
            try:
                if not session.done():
                    await cancel_and_wait(session)
            finally:
                # Closed even when we are cancelled: it ends the camera session (TEARDOWN).
                with contextlib.suppress(Exception):
                    await frames.aclose()
                self._offer(batcher.drain())  # what was batched so far still counts

    async def _watch(self, session: asyncio.Task[None], batcher: Batcher) -> None:
        """Tick beside the session until it ends, then raise what ended it."""
        restart_after_s = max(2 * self.settings.stall_s, self.settings.rtsp_timeout_s) + 1.0
        while True:
            done, _ = await asyncio.wait({session}, timeout=TICK_S)
            if done:
                session.result()  # raises the session's SourceError/_Restart/LeaseLost
                return
            now, mono = time.time(), time.monotonic()
            self._apply(self.health.on_tick(now, mono))
            self._offer(batcher.due(mono))
            if not self.fence.held():
                raise LeaseLost(self.spec.id, self.fence.token)
            if self.health.stalled_for_s(mono) >= restart_after_s:
                # The source's own timeouts should have fired; a read hung past them anyway.
                raise _Restart("stalled")

    async def _pump(self, frames: AsyncIterator[DecodedFrame], batcher: Batcher) -> None:
        sampler = Sampler(self.spec.target_fps)
        async for frame in frames:
            if not self._delivered:
                self._delivered = True
                self.health.on_session_open(time.monotonic())
            if not self.fence.held():
                raise LeaseLost(self.spec.id, self.fence.token)
            self.counters["decoded"] += 1
            self.health.on_decoded(time.monotonic())
            metrics.FRAMES_DECODED.labels(self.spec.id).inc()
            if not sampler.take(frame.pts_s):
                continue
            self.counters["sampled"] += 1
            metrics.FRAMES_SAMPLED.labels(self.spec.id).inc()
            jpeg, width, height, signature = await asyncio.to_thread(
                prepare_frame, frame.image, self.settings.max_width, self.settings.jpeg_quality)
            now, mono = time.time(), time.monotonic()
            self._apply(self.health.on_frame(now, mono, frame.received_at, frame.pts_s,
                                             signature))
            if self.health.status == "frozen":
                # A still picture counts nothing and is not coverage: try a fresh session.
                raise _Restart("frozen")
            self._latest = EncodedFrame(frame.received_at, width, height, jpeg)
            self._offer(batcher.add(self._latest, mono))
        raise SourceError("ended", f"{mask_url(self.spec.url)}: the source ended")

    def _offer(self, frames: list[EncodedFrame] | None) -> None:
        if frames:
            self.outbox.offer(Batch(self.epoch, frames))
            metrics.QUEUED.labels(self.spec.id).set(self.outbox.queued + self.outbox.in_flight)

    def _apply(self, effects: list[Effect]) -> None:
        if effects:
            self.board.apply(self.spec.id, self.epoch, effects)

    async def _refresh_forever(self) -> None:
        period_s = self.settings.status_refresh_s
        sampled = self.counters["sampled"]
        while True:
            await asyncio.sleep(period_s)
            fps, sampled = (self.counters["sampled"] - sampled) / period_s, self.counters["sampled"]
            # The five counters the registry shows (registry/status_models.py).
            self.board.refresh(self.spec.id, self.health.last_frame_at, {
                "fps": round(fps, 2), "decoded": float(self.counters["decoded"]),
                "sampled": float(sampled), "dropped": float(self.outbox.dropped_frames),
                "reconnects": float(max(0, self.counters["sessions"] - 1)),
            })
            self._snapshot(time.monotonic())

    def _snapshot(self, now_mono: float) -> None:
        """Store the newest frame now and then: the first one at once, then every SNAPSHOT_S."""
        latest, every_s = self._latest, self.settings.snapshot_s
        if latest is None or latest is self._snapshot_of or every_s <= 0:
            return
        if now_mono - self._snapshot_mono < every_s:
            return
        self._snapshot_of, self._snapshot_mono = latest, now_mono
        self.board.snapshot(self.spec.id, latest.jpeg, latest.width, latest.height,
                            latest.captured_at)

    # --- outbox events ---

    def _backpressure(self, reason: str) -> None:
        self._apply(self.health.on_backpressure(time.time(), reason))

    def _cleared(self) -> None:
        self._apply(self.health.on_backpressure_cleared(time.time()))

    def _dropped(self, epoch: int, started_at: float, ended_at: float, detail: str) -> None:
        self.board.dropped(self.spec.id, epoch, started_at, ended_at, detail)

