"""One measured video job: the balancer and W workers as processes, the video runner in this
process, the job created straight in the database; wall time from the runner's start to the
job's finalize."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.ingest.rig import free_port
from camcount import processes
from infra import db
from videos import jobs
from videos.service import VideoRunner
from videos.settings import VideoRunnerSettings


@dataclass(frozen=True)
class JobSpec:
    clip: Path
    line_x: float
    segment_s: float
    overlap_s: float


@dataclass(frozen=True)
class JobResult:
    workers: int
    seconds: float
    frames: int
    segments: int
    counts: dict[str, int]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


class Rig:
    """Role processes of the run; workers are added, never removed (a warm pool)."""

    def __init__(self, env: dict[str, str], logs: Path, worker_env: dict[str, str]) -> None:
        self.env, self.logs, self.worker_env = env, logs, worker_env
        self.children: list[processes.Child] = []
        self.workers = 0
        self.balancer_port = free_port()

    def start_balancer(self) -> None:
        self.children.append(processes.spawn(
            "balancer", processes.role_argv("balancer"),
            {**self.env, "LOG_LEVEL": "WARNING", "OPS_PORT": str(self.balancer_port)},
            self.logs / "balancer.log"))

    def add_worker(self) -> None:
        self.workers += 1
        worker_id = f"bench-video-{self.workers}"
        self.children.append(processes.spawn(
            worker_id, processes.role_argv("worker"),
            {**self.env, **self.worker_env, "WORKER_ID": worker_id, "LOG_LEVEL": "WARNING"},
            self.logs / f"{worker_id}.log"))

    def stop(self) -> None:
        processes.stop(self.children)


    async def live_workers(self) -> int:
        """Workers the balancer routes to (its /health)."""
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                health = (await http.get(f"http://127.0.0.1:{self.balancer_port}/health")).json()
        except (httpx.HTTPError, ValueError):
            return 0
        return len(health.get("live_workers", []))

    async def wait_for_workers(self, count: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.live_workers() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} workers up after {timeout_s:g} s")
            await asyncio.sleep(0.2)


async def run_job(database_url: str, rabbitmq_url: str, spec: JobSpec,
                  workers: int, capability: str) -> JobResult:
    engine = db.create_engine(database_url)
    try:
        job_id = jobs.new_job_id()
        values: dict[str, Any] = {
            "id": job_id, "name": f"bench {workers}w", "site": "default",
            "source_path": str(spec.clip), "uploaded": False, "capability": capability,
            "object_classes": ["person"], "segment_s": spec.segment_s,
            "overlap_s": spec.overlap_s, "batch_frames": 5,
            "lines": [{"name": "line", "a": {"x": spec.line_x, "y": 0.0},
                       "b": {"x": spec.line_x, "y": 1.0}}]}
        await jobs.create_job(engine, values)
        settings = VideoRunnerSettings(database_url=database_url, rabbitmq_url=rabbitmq_url,
                                       burst=True, log_every_s=30)
        started = time.perf_counter()
        await VideoRunner(settings).run(asyncio.Event())
        seconds = time.perf_counter() - started
        found = await jobs.read_job(engine, job_id)
        assert found is not None
        job, counts = found.job, found.counts
        if job.state != "done":
            raise RuntimeError(f"job {job_id} ended {job.state}: {job.error}")
        return JobResult(workers, seconds, job.frames_total, job.segments_total,
                         {f"{c.direction}:{c.object_class}": c._mapping["count"]
                          for c in counts})
    finally:
        await engine.dispose()
