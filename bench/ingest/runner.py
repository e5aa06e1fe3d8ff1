"""The bench's core: trials of both contestants against one simulator, and the search.

It takes endpoints (RABBITMQ_URL, and DATABASE_URL of a migrated database) and starts no
servers, so the smoke test runs it on the test services; `__main__` starts private ones.

A trial: N cameras, one contestant as its own process pinned to the SUT cores, started fresh
(so no trial inherits another's state); wait until every camera delivers, warm up, then a
timed window between two readings of the contestant's own counters and CPU time.
- ingest: the real role (`python -m ingest`) as a black box, through its environment (cameras
  in PostgreSQL with the target fps, a private ops port, INGEST_CAPACITY far above N) and its
  /metrics (frames decoded per camera, reconnects, capture-to-publish histogram, any drop
  counter). The bench consumes frames.ingress itself: published frames per camera and the
  capture-to-publish latency come from the batch headers (captured_at, frame_count).
- bare-pyav: bench/ingest/bare.py, reporting its frames, lag and CPU time on stdout.
The fixed-N trial of each contestant comes first; its CPU per frame estimates the count at
which the search starts. The two searches advance in turns, so slow drifts in the machine's
other load fall on both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.ingest.pin import pinned_argv
from bench.ingest.results import (
    BARE,
    OURS,
    TrialResult,
    histogram_p_le,
    lag_growth,
    next_cameras,
    next_listed,
    percentile,
    rate_from_batches,
)
from bench.ingest.rig import (
    NODE_PREFIX,
    Collector,
    Simulator,
    StreamSpec,
    all_cpus,
    core_times,
    cpu_seconds,
    free_port,
    open_collector,
    register_cameras,
    scrape,
    spread,
    wait_until,
)
from camcount import processes
from infra.db import create_engine

Say = Callable[[str], None]
T = TypeVar("T")
ESTIMATE_HEADROOM = 0.9  # the search starts at this fraction of the cameras the CPU allows


def say_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchConfig:
    stream: StreamSpec = field(default_factory=lambda: StreamSpec(None))
    target_fps: float = 5.0
    warmup_s: float = 3.0
    window_s: float = 10.0
    fixed_cameras: int = 4  # both contestants' CPU per frame is compared here
    cameras: tuple[int, ...] = ()  # step up through these; empty: search
    max_cameras: int = 40
    contestants: tuple[str, ...] = (OURS, BARE)
    sut_cpus: frozenset[int] | None = None  # None: contestants are not pinned
    ready_timeout_s: float = 60.0
    progress_every_s: float = 2.0
    profile_ingest: Path | None = None  # ingest's fixed-count trial runs under cProfile


@dataclass(frozen=True)
class _Mark:
    """One instant's readings: counters come with it per contestant."""

    t: float
    cpu_s: float
    sut: tuple[float, float]
    rig: tuple[float, float]
    late: int


async def run_bench(config: BenchConfig, rabbitmq_url: str, database_url: str, logs_dir: Path,
                    say: Say = say_stderr) -> list[TrialResult]:
    simulator = Simulator(config.stream, logs_dir / "simulator.log")
    engine = create_engine(database_url, pool_size=1)
    try:
        say(f"simulator: encoding {config.stream.describe()}")
        await simulator.start()
        async with open_collector(rabbitmq_url) as collector:
            bench = _Bench(config, simulator, engine, collector,
                           {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": database_url},
                           logs_dir, say)
            return await bench.run()
    finally:
        await asyncio.to_thread(simulator.stop)
        await engine.dispose()


class _Bench:
    def __init__(self, config: BenchConfig, simulator: Simulator, engine: AsyncEngine,
                 collector: Collector, endpoints: dict[str, str], logs_dir: Path,
                 say: Say) -> None:
        self.config, self.simulator, self.engine = config, simulator, engine
        self.collector, self.endpoints, self.logs_dir, self.say = (collector, endpoints,
                                                                    logs_dir, say)
        self.sut = config.sut_cpus or all_cpus()
        # Busy % of everything but the contestant's cores: where the simulator, the broker and
        # this process run (all cores when nothing is pinned).
        self.rig = (all_cpus() - self.sut) or self.sut

    async def run(self) -> list[TrialResult]:
        config = self.config
        done: dict[str, dict[int, TrialResult]] = {c: {} for c in config.contestants}
        for contestant in config.contestants:
            done[contestant][config.fixed_cameras] = await self.trial(contestant,
                                                                      config.fixed_cameras)
        starts = {c: self._estimate(done[c][config.fixed_cameras]) for c in config.contestants}
        while True:
            ran = False
            for contestant in config.contestants:
                outcomes = {n: t.sustained for n, t in done[contestant].items()}
                if config.cameras:
                    listed = {n: ok for n, ok in outcomes.items() if n in config.cameras}
                    n = next_listed(listed, config.cameras)
                else:
                    n = next_cameras(outcomes, starts[contestant], config.max_cameras)
                if n is not None:
                    done[contestant][n] = await self.trial(contestant, n)
                    ran = True
            if not ran:
                return [t for by_n in done.values() for t in by_n.values()]

    def _estimate(self, fixed: TrialResult) -> int:
        per_frame_s = fixed.cpu_ms_per_frame / 1000
        if not fixed.sustained or not per_frame_s > 0:
            return fixed.cameras
        per_core = len(self.sut) / (per_frame_s * self.config.stream.fps)
        return max(1, math.floor(per_core * ESTIMATE_HEADROOM))

    async def trial(self, contestant: str, cameras: int) -> TrialResult:
        run = self._ours if contestant == OURS else self._bare
        try:
            result = await run(cameras)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            result = TrialResult.failed(contestant, cameras, self.config.stream.fps,
                                        self.config.target_fps, str(exc))
        verdict = "sustained" if result.sustained else "NOT sustained: " + "; ".join(
            result.reasons())
        self.say(f"[{contestant} x{cameras}] {verdict} (core {result.core_pct:.0f}%, "
                 f"{result.cpu_ms_per_frame:.2f} CPU ms/frame, others on its core "
                 f"{result.other_pct:.0f}%)")
        await asyncio.sleep(0.5)  # the simulator closes the last trial's sessions
        return result

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return pinned_argv(self.sut, argv) if self.config.sut_cpus else list(argv)

    def _mark(self, t: float, cpu_s: float) -> _Mark:
        return _Mark(t, cpu_s, core_times(self.sut), core_times(self.rig),
                     self.simulator.late_count())

    def _result(self, contestant: str, cameras: int, m0: _Mark, m1: _Mark,
                **measured: Any) -> TrialResult:
        window = m1.t - m0.t
        rig_busy, rig_total = (a - b for a, b in zip(m1.rig, m0.rig, strict=True))
        return TrialResult(
            contestant=contestant, cameras=cameras, fps=self.config.stream.fps,
            target_fps=self.config.target_fps, window_s=window, cpu_s=m1.cpu_s - m0.cpu_s,
            sut_busy_s=m1.sut[0] - m0.sut[0], rig_busy_pct=rig_busy * 100 / max(rig_total, 1e-9),
            rig_late=m1.late - m0.late, sut_cores=len(self.sut), **measured)

    async def _window(self, progress: Callable[[float], str]) -> None:
        """Sleep through the timed window, saying how it goes every few seconds."""
        end = time.monotonic() + self.config.window_s
        while (left := end - time.monotonic()) > 0:
            step = min(self.config.progress_every_s, left)
            await asyncio.sleep(step)
            self.say(progress(step))

    # --- ingest, the real role ------------------------------------------------------------

    async def _ours(self, n: int) -> TrialResult:
        config, name = self.config, f"{OURS} x{n}"
        ids = await register_cameras(self.engine, n, self.simulator.url, config.target_fps)
        await self.collector.reset()
        port = free_port()
        env = {**self.endpoints, "NODE_ID": f"{NODE_PREFIX}{n}", "OPS_PORT": str(port),
               "CAMERA_POLL_S": "0.5", "INGEST_CAPACITY": str(max(1000, 10 * n)),
               "LOG_LEVEL": "INFO"}
        argv = processes.role_argv("ingest")
        if config.profile_ingest is not None and n == config.fixed_cameras:
            argv = [sys.executable, "-m", "cProfile", "-o", str(config.profile_ingest),
                    "-m", "ingest"]
        child = processes.spawn(f"ingest-{n}", self._argv(argv), env,
                                self.logs_dir / f"ingest-x{n:03d}.log")
        pid = child.proc.pid
        try:
            waited = await wait_until(lambda: set(ids) <= self.collector.cameras_seen(),
                                      lambda: child.alive, f"{name}: a batch from every camera",
                                      config.ready_timeout_s)
            self.say(f"[{name}] every camera published after {waited:.1f} s; warm-up "
                     f"{config.warmup_s:g} s, then {config.window_s:g} s timed")
            await asyncio.sleep(config.warmup_s)
            t0, before = await _timed(scrape(port))
            m0 = self._mark(t0, cpu_seconds(pid))
            await self._window(lambda step: self._ours_progress(name, n, step))
            t1, after = await _timed(scrape(port))
            m1 = self._mark(t1, cpu_seconds(pid))
        finally:
            await asyncio.to_thread(processes.stop, [child])
        window = t1 - t0
        decoded = [(after.decoded[c] - before.decoded.get(c, 0.0)) / window
                   for c in ids if c in after.decoded]
        deliveries = self.collector.between(t0, t1)
        rates = [rate_from_batches([(d.captured_at, d.frames) for d in deliveries
                                    if d.camera_id == c]) for c in ids]
        latencies = [d.latency_s for d in deliveries]
        dec_min, dec_mean = spread(decoded)
        complete = len(decoded) == n
        return self._result(
            OURS, n, m0, m1,
            frames=round(sum(decoded) * window),
            decoded_fps_min=dec_min if complete else None,
            decoded_fps_mean=dec_mean if complete else None,
            published_fps_min=None if None in rates else min(r for r in rates if r is not None),
            lag_growth_s=lag_growth([(d.arrived_at, d.latency_s) for d in deliveries]),
            p50_s=percentile(latencies, 0.5) if latencies else None,
            p99_s=percentile(latencies, 0.99) if latencies else None,
            histogram_p99_le_s=histogram_p_le(before.latency_buckets, after.latency_buckets,
                                              0.99),
            restarts=round(after.reconnects - before.reconnects),
            reported_drops=after.drops - before.drops,
        )

    def _ours_progress(self, name: str, n: int, step: float) -> str:
        now = time.time()
        recent = self.collector.between(now - step, now)
        frames = sum(d.frames for d in recent)
        latency = percentile([d.latency_s for d in recent], 0.5) if recent else math.nan
        return (f"[{name}]   {frames / step / n:5.2f} frames/s per camera published, "
                f"capture-to-publish p50 {latency * 1000:.0f} ms")

    # --- the bare PyAV loop ---------------------------------------------------------------

    async def _bare(self, n: int) -> TrialResult:
        config, name = self.config, f"{BARE} x{n}"
        argv = [sys.executable, "-m", "bench.ingest.bare", "--url", self.simulator.url,
                "--streams", str(n), "--fps", f"{config.stream.fps:g}"]
        with (self.logs_dir / f"bare-x{n:03d}.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(argv), stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True)
        lines: list[dict[str, Any]] = []
        reader = asyncio.create_task(_read_lines(proc, lines))
        try:
            alive = lambda: proc.returncode is None  # noqa: E731
            waited = await wait_until(lambda: bool(lines) and all(lines[-1]["frames"]), alive,
                                      f"{name}: a frame from every stream",
                                      config.ready_timeout_s)
            self.say(f"[{name}] every stream decoding after {waited:.1f} s; warm-up "
                     f"{config.warmup_s:g} s, then {config.window_s:g} s timed")
            await asyncio.sleep(config.warmup_s)
            s0 = await _next_line(lines, time.time(), alive)
            m0 = self._mark(s0["t"], s0["cpu_s"])
            await self._window(lambda step: _bare_progress(name, lines, step))
            s1 = await _next_line(lines, time.time(), alive)
            m1 = self._mark(s1["t"], s1["cpu_s"])
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
            await reader
        window = s1["t"] - s0["t"]
        frames = [b - a for a, b in zip(s0["frames"], s1["frames"], strict=True)]
        dec_min, dec_mean = spread(f / window for f in frames)
        received = sum(b - a for a, b in zip(s0["bytes"], s1["bytes"], strict=True))
        return self._result(
            BARE, n, m0, m1, frames=sum(frames), decoded_fps_min=dec_min,
            decoded_fps_mean=dec_mean, published_fps_min=None,
            lag_growth_s=max(b - a for a, b in zip(s0["lag_s"], s1["lag_s"], strict=True)),
            p50_s=None, p99_s=None, histogram_p99_le_s=None,
            restarts=sum(s1["errors"]) - sum(s0["errors"]), reported_drops=0.0,
            stream_bits_per_s=received * 8 / window / n,
        )


async def _timed(reading: Awaitable[T]) -> tuple[float, T]:
    """A reading and the instant it stands for: the middle of the request, since the counters
    are read somewhere inside it (ingest's loop may be busy before it answers)."""
    started = time.time()
    value = await reading
    return (started + time.time()) / 2, value


async def _read_lines(proc: asyncio.subprocess.Process, into: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        with contextlib.suppress(ValueError):
            into.append(json.loads(line))


async def _next_line(lines: list[dict[str, Any]], after: float,
                     alive: Callable[[], bool]) -> dict[str, Any]:
    """The first report made at or after `after` (the bare loop reports every 0.25 s)."""
    await wait_until(lambda: bool(lines) and lines[-1]["t"] >= after, alive,
                     "the bare loop's next report", 10.0)
    return next(line for line in lines if line["t"] >= after)


def _bare_progress(name: str, lines: list[dict[str, Any]], step: float) -> str:
    last = lines[-1]
    earlier = next((line for line in reversed(lines) if line["t"] <= last["t"] - step), lines[0])
    span = max(last["t"] - earlier["t"], 1e-9)
    fps = (sum(last["frames"]) - sum(earlier["frames"])) / span / len(last["frames"])
    lag = max(lag for lag in last["lag_s"] if lag is not None)
    return f"[{name}]   {fps:5.2f} frames/s per camera decoded, lag {lag:+.2f} s"
