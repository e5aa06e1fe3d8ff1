"""The video runner: claims a job, plans its segments, publishes them (videos/publisher.py),
follows their progress, and finalizes the job once every segment is applied.

One job at a time per runner (its decoding is the runner's CPU work; run more runners for
more jobs at once). The runner holds a lease on its job, renewed with each progress write:
a runner that dies leaves the job to another after LEASE_S, which goes on from the segments'
progress (videos/jobs.py).

Like every role without a web app of its own, it serves /health (its id and the job it runs,
with progress) and /metrics (videos/metrics.py) on OPS_PORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractChannel
from sqlalchemy.exc import SQLAlchemyError

from infra import amqp, db, ops
from infra.runner import shutdown_step
from videos import jobs, metrics
from videos.finalize import finalize
from videos.frames import Probe, SegmentReader, VideoError, probe
from videos.jobs import JobRow, Layout
from videos.progress import JobProgress, job_progress, own_frames_done
from videos.publisher import ProgressGate, publish_batch
from videos.segments import batch_count, plan_segments, sample_stride
from videos.settings import VideoRunnerSettings

log = logging.getLogger("camcount.videos")


class VideoRunner:
    def __init__(self, settings: VideoRunnerSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self._slots = asyncio.Semaphore(settings.parallel_segments)
        self.ready = False
        self.running: dict[str, JobProgress | None] = {}  # job id: its last progress read
        self.server: ops.EmbeddedServer | None = None  # ops.bound_port(server) once serving

    def health(self) -> dict[str, Any]:
        return {"ok": self.ready, "runner_id": self.settings.runner_id,
                "jobs": [{"id": job_id, "segments_done": p.segments_done if p else 0,
                          "segments_total": p.segments_total if p else None,
                          "frames_done": p.frames_done if p else 0,
                          "frames_total": p.frames_total if p else None}
                         for job_id, p in sorted(self.running.items())]}

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, self.settings.runner_id)
        server = self.server = ops.ops_server(self.settings.ops_host, self.settings.ops_port,
                                              self.health)
        try:
            channel = await connection.channel()
            await amqp.declare_frames_topology(channel)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                observer = tg.create_task(self._observe_jobs())
                self.ready = True
                log.info("video runner ready id=%s burst=%s", self.settings.runner_id,
                         self.settings.burst)
                try:
                    await self._take_jobs(channel, stop)
                finally:
                    self.ready = False
                    observer.cancel()
                    server.should_exit = True
        finally:
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    async def _take_jobs(self, channel: AbstractChannel, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                job = await jobs.claim(self.engine, self.settings.runner_id, self.settings.lease_s)
            except (SQLAlchemyError, OSError) as exc:
                if self.settings.burst:  # a batch run fails loudly instead
                    raise
                # A database away for a while must not end a long-running runner.
                log.warning("cannot look for video jobs: %s", exc)
                job = None
            if job is None:
                if self.settings.burst:
                    log.info("no video job left: exiting (burst)")
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_s)
                continue
            metrics.JOBS_CLAIMED.inc()
            self.running[job.id] = None
            try:
                await self.run_job(channel, job, stop)
            finally:
                del self.running[job.id]
                with contextlib.suppress(KeyError):  # never set if it failed at once
                    metrics.PROGRESS.remove(job.id)

    async def _observe_jobs(self) -> None:
        while True:
            try:
                counts = await jobs.count_by_state(self.engine)
            except (SQLAlchemyError, OSError) as exc:  # the gauges wait for the database
                log.warning("job states unknown: %s", exc)
            else:
                for state in metrics.JOB_STATES:
                    metrics.JOBS.labels(state).set(counts.get(state, 0))
            await asyncio.sleep(self.settings.poll_s)

    async def _fail(self, job_id: str, reason: str, error: str) -> None:
        log.warning("video job %s failed: %s", job_id, error)
        metrics.JOBS_FAILED.labels(reason).inc()
        await jobs.fail(self.engine, job_id, error,
                        keep_upload=self.settings.keep_uploaded_videos)

    async def run_job(self, channel: AbstractChannel, job: JobRow, stop: asyncio.Event) -> None:
        try:
            found = await asyncio.to_thread(probe, Path(job.source_path))
        except VideoError as exc:
            await self._fail(job.id, "unreadable", str(exc))
            return
        stride = sample_stride(found.fps, job.target_fps)
        planned = plan_segments(found.frames_total, found.fps, job.segment_s, job.overlap_s)
        # Frames are timed as if the video had just ended: in the past, on an exact grid.
        base_at = math.floor(time.time() - found.frames_total / found.fps)
        layout = await jobs.start_segments(
            self.engine, job, found.fps, found.frames_total, base_at, planned,
            [batch_count(s, stride, job.batch_frames) for s in planned])
        log.info("video job %s started: %d frames at %.2f fps, %d segments of %.1f s "
                 "(overlap %.1f s), stride %d", job.id, layout.frames_total, layout.fps,
                 len(layout.segments), job.segment_s, job.overlap_s, stride)
        gate = ProgressGate(await jobs.applied_batches(self.engine, job.id),
                            self.settings.window_batches)
        source = Probe(layout.fps, layout.frames_total, found.first_time_s, found.timed)
        publishers = asyncio.gather(*(
            self._publish_segment(channel, job, layout, k, source, stride, gate)
            for k in range(len(layout.segments))))
        feeder = asyncio.create_task(self._feed_gate(job.id, gate))
        try:
            await self._follow(job, layout, stride, gate, publishers, stop)
        finally:
            publishers.cancel()
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await publishers
            with contextlib.suppress(asyncio.CancelledError):
                await feeder

    async def _feed_gate(self, job_id: str, gate: ProgressGate) -> None:
        """Publishers wait for their previous batch to be applied: read progress often."""
        while True:
            await gate.update(await jobs.applied_batches(self.engine, job_id))
            await asyncio.sleep(self.settings.gate_poll_s)

    async def _publish_segment(self, channel: AbstractChannel, job: JobRow, layout: Layout,
                               k: int, source: Probe, stride: int, gate: ProgressGate) -> None:
        segment = layout.segments[k]
        if gate.applied.get(k, 0) >= layout.batches[k]:
            return
        loop = asyncio.get_running_loop()
        camera_id = jobs.segment_camera_id(job.id, k)
        async with self._slots:
            # PyAV objects are not thread-safe: one thread opens, reads and closes the file.
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"video-{k}")
            reader: SegmentReader | None = None
            try:
                reader = await loop.run_in_executor(
                    executor, SegmentReader, Path(job.source_path), segment, source, stride,
                    layout.base_at, self.settings.max_width, self.settings.jpeg_quality)
                seq = 0
                while frames := await loop.run_in_executor(executor, reader.next_batch,
                                                           job.batch_frames):
                    if seq >= gate.applied.get(k, 0):  # a takeover skips what is applied
                        await gate.room_for(k, seq)
                        await publish_batch(channel, job, camera_id, seq, frames,
                                            self.settings.batch_deadline_s)
                        metrics.BATCHES_PUBLISHED.inc()
                        metrics.FRAMES_PUBLISHED.inc(len(frames))
                    seq += 1
                if seq < layout.batches[k]:
                    log.warning("video job %s segment %d ended after %d of %d batches "
                                "(damaged file?)", job.id, k, seq, layout.batches[k])
                    layout.batches[k] = seq
                    await jobs.set_batches(self.engine, job.id, k, seq)
            finally:
                if reader is not None:
                    executor.submit(reader.close)
                executor.shutdown(wait=False)

    async def _follow(self, job: JobRow, layout: Layout, stride: int, gate: ProgressGate,
                      publishers: asyncio.Future[list[None]], stop: asyncio.Event) -> None:
        """Read progress, write it, renew the lease, log; finalize at the end or fail on a
        gap or a publisher's error. Returns when the job is settled, lost, or on stop."""
        settings = self.settings
        logged_at, logged, logged_segments = 0.0, "", -1
        counted_segments: int | None = None  # segments done when last counted in metrics
        while not stop.is_set():
            applied = await jobs.applied_batches(self.engine, job.id)
            counts = [applied.get(k, 0) for k in range(len(layout.segments))]
            progress = job_progress(layout.segments, layout.batches, counts, stride,
                                    job.batch_frames, layout.frames_total)
            self.running[job.id] = progress
            metrics.PROGRESS.labels(job.id).set(
                progress.frames_done / progress.frames_total if progress.frames_total else 0)
            if counted_segments is not None:  # a taken-over job's earlier segments: not ours
                metrics.SEGMENTS_DONE.inc(max(0, progress.segments_done - counted_segments))
            counted_segments = progress.segments_done
            gaps = await jobs.segment_gaps(self.engine, job.id)
            if gaps:
                await self._fail(job.id, "gap", "batches lost: " + "; ".join(gaps[:5]))
                return
            if publishers.done() and not publishers.cancelled() and publishers.exception():
                await self._fail(job.id, "publish",
                                 f"reading or publishing failed: {publishers.exception()!r}")
                return
            await jobs.write_segment_progress(self.engine, job.id, {
                k: (own_frames_done(s, stride, job.batch_frames, counts[k]),
                    "done" if counts[k] >= layout.batches[k] else
                    "running" if counts[k] else "pending")
                for k, s in enumerate(layout.segments)})
            if not await jobs.renew(self.engine, job.id, settings.runner_id, settings.lease_s,
                                    frames_done=progress.frames_done,
                                    segments_done=progress.segments_done):
                log.warning("video job %s is no longer this runner's: stopping", job.id)
                metrics.JOBS_LOST.inc()
                return
            line = progress.line()
            now = time.monotonic()
            if line != logged and (now - logged_at >= settings.log_every_s
                                   or progress.segments_done != logged_segments):
                log.info("video job %s: %s", job.id, line)
                logged_at, logged, logged_segments = now, line, progress.segments_done
            if progress.segments_done == progress.segments_total:
                outcome = await finalize(self.engine, job.id,
                                         keep_upload=settings.keep_uploaded_videos)
                metrics.FINALIZE.labels(outcome.value).inc()
                log.info("video job %s finalized (%s): %s", job.id, outcome.value, line)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.progress_s)
