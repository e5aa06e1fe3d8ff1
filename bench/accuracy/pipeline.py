"""Our side of bench/accuracy: a clip played by the camera simulator over RTSP through every
role as its own process, on private RabbitMQ and PostgreSQL servers started for the bench.

The servers get a state folder and ports of their own (default .state/bench, 5695, 5455) and
are wiped at start, so a run never sees an earlier run's cameras, queues or counts, and never
touches the dev or test stacks.

The registry refuses camera URLs on loopback: the simulator serves on this machine's own
address (camcount/host_address.py), which the registry is told is a camera network, as
`camcount up` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.accuracy.truth import PixelLine
from camcount import processes, services
from camcount.host_address import host_address
from contracts.tables import camera_progress, coverage_gaps, crossing_events
from infra.db import create_engine, short_lived_engine
from migrations import upgrade
from registry import api_keys
from registry.camera_urls import DEFAULT_CAMERA_NETWORKS, DEFAULT_CAMERA_PORTS

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_TYPE = "onnx"
# The worker on a 2-core CPU is slower than the clip's real time, so a backlog builds up; a
# batch may wait far longer than the default 10 s deadline. Accuracy is what is measured here,
# so the deadline is set high, and any gap that still happens is reported beside the counts.
DEADLINE_S = 120.0
POLL_S = 0.1


@dataclass(frozen=True)
class Clip:
    name: str
    camera_id: str
    video: Path
    gt: Path
    line: PixelLine
    width: int
    height: int
    fps: float
    frames: int


@dataclass(frozen=True)
class BenchPorts:
    amqp: int = 5695
    pg: int = 5455


@dataclass
class OursResult:
    in_: int
    out: int
    frames: int  # frames of the committed batches
    seconds: float  # between the first and the last commit seen
    fps: float  # frames committed in that span / its seconds
    expected_frames: int
    gaps: list[dict[str, Any]] = field(default_factory=list)
    other_classes: dict[str, int] = field(default_factory=dict)
    worker_frames_metric: float | None = None
    # (first frame of the batch, 1-based; track id; direction) per committed crossing
    events: list[tuple[int, int, str]] = field(default_factory=list)
    # stage -> mean milliseconds per batch in the worker (camcount_worker_stage_seconds)
    stage_ms: dict[str, float] = field(default_factory=dict)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _admin_key(database_url: str) -> str:
    async with short_lived_engine(database_url) as engine:
        _, token = await api_keys.create(engine, name="bench accuracy", role="admin", site="*")
        return token


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The first sample of `name` whose labels include `labels`, from /metrics text."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


STAGES = ("decode", "detect", "commit")


def _stage_sums(text: str) -> dict[str, tuple[float, float]]:
    """stage -> (seconds, batches) so far, from camcount_worker_stage_seconds."""
    out = {}
    for stage in STAGES:
        total = _metric(text, "camcount_worker_stage_seconds_sum", stage=stage)
        count = _metric(text, "camcount_worker_stage_seconds_count", stage=stage)
        if total is not None and count is not None:
            out[stage] = (total, count)
    return out


def _stage_ms(before: dict[str, tuple[float, float]],
              after: dict[str, tuple[float, float]]) -> dict[str, float]:
    out = {}
    for stage, (total, count) in after.items():
        t0, c0 = before.get(stage, (0.0, 0.0))
        if count > c0:
            out[stage] = round((total - t0) / (count - c0) * 1000, 1)
    return out


class Stack:
    """Services, migrations, the simulator with one file mount per clip, and every role."""

    def __init__(self, clips: Sequence[Clip], model: Path, state_dir: Path, ports: BenchPorts,
                 *, batch_frames: int, speed: float) -> None:
        self.clips, self.model, self.batch_frames = clips, model, batch_frames
        # The simulator plays a clip `speed` times faster than recorded (every frame kept), so
        # the pipeline, not the clip's real-time rate, bounds the measured frames/s.
        self.speed = speed
        os.environ.update(CAMCOUNT_STATE_DIR=str(state_dir), CAMCOUNT_AMQP_PORT=str(ports.amqp),
                          CAMCOUNT_PG_PORT=str(ports.pg))
        self.cfg = services.ServicesConfig.from_env("dev")
        self.logs = self.cfg.state_dir.parent / f"{self.cfg.state_dir.name}-logs"
        self.camera_host = host_address()
        self.ports = {"rtsp": free_port(self.camera_host), "http": free_port(),
                      "ws": free_port(), "worker_ops": free_port()}
        self.api = f"http://127.0.0.1:{self.ports['http']}"
        self.children: list[processes.Child] = []
        self.database_url = ""
        self.api_key = ""

    def start(self) -> None:
        services.stop_all(self.cfg)
        shutil.rmtree(self.cfg.state_dir, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        endpoints = services.start_all(self.cfg)
        self.database_url = endpoints.database_url
        upgrade(endpoints.database_url)
        env = {
            **endpoints.as_env(), "HTTP_PORT": str(self.ports["http"]),
            "WS_PORT": str(self.ports["ws"]),
            "BROADCASTER_PUBLIC_URL": f"ws://127.0.0.1:{self.ports['ws']}/ws",
            "CAMERA_POLL_S": "0.5", "LOG_LEVEL": "INFO",
            "CAMERA_NETWORKS": ",".join((*DEFAULT_CAMERA_NETWORKS, f"{self.camera_host}/32")),
            "CAMERA_PORTS": ",".join(str(p) for p in (*DEFAULT_CAMERA_PORTS,
                                                       self.ports["rtsp"])),
            "WS_TICKET_SECRET": secrets.token_hex(32),
            # The simulator plays each clip once and ends the session; ingest would replay it
            # on reconnect and count it twice, so its first reconnect is pushed past the run.
            "RECONNECT_INITIAL_S": "3600", "RECONNECT_MAX_S": "3600",
        }
        worker_env = {
            **env, "WORKER_ID": "bench-worker", "WORKER_TYPE": WORKER_TYPE, "DETECTOR": "onnx",
            "MODEL_PATH": str(self.model), "DETECT_CLASSES": "person", "CONFIDENCE": "0.3",
            "OPS_PORT": str(self.ports["worker_ops"]),
        }
        mounts: list[str] = []
        for clip in self.clips:
            mounts += ["--mount",
                       f"{clip.camera_id}:file:path={clip.video},fps={clip.fps * self.speed:g}"]
        self._spawn("simulator", processes.cli_argv(
            "simulate", "--host", self.camera_host, "--port", str(self.ports["rtsp"]), *mounts),
            env)
        for role in ("registry", "broadcaster", "worker", "balancer", "ingest"):
            self._spawn(role, processes.role_argv(role), worker_env if role == "worker" else env)
        processes.wait_healthy(f"{self.api}/health", self.children, 90)
        self.api_key = asyncio.run(_admin_key(self.database_url))
        # The worker loads and warms up the model before it serves /health.
        worker_health = f"http://127.0.0.1:{self.ports['worker_ops']}/health"
        processes.wait_healthy(worker_health, self.children, 180)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.children.append(processes.spawn(name, argv, env, self.logs / f"{name}.log"))

    def stop(self) -> None:
        processes.stop(self.children)
        self.children.clear()
        services.stop_all(self.cfg)

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {log} -----\n" + "\n".join(tail))
        return "\n".join(out)

    def worker_metrics(self) -> str:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{self.ports['worker_ops']}/metrics",
                             timeout=5).text
        return ""

    async def run_clip(self, clip: Clip, *, quiet_s: float = 8.0) -> OursResult:
        (a_x, a_y), (b_x, b_y) = clip.line.relative(clip.width, clip.height)
        camera = {
            "id": clip.camera_id, "name": clip.name,
            "url": f"rtsp://{self.camera_host}:{self.ports['rtsp']}/{clip.camera_id}",
            "target_fps": clip.fps * self.speed, "batch_frames": self.batch_frames,
            "batch_ms": 1000,
            "deadline_s": DEADLINE_S, "capability": WORKER_TYPE,
            "lines": [{"name": "bench", "a": {"x": a_x, "y": a_y}, "b": {"x": b_x, "y": b_y}}],
        }
        expected_batches = math.ceil(clip.frames / self.batch_frames)
        engine = create_engine(self.database_url, pool_size=1)
        try:
            async with httpx.AsyncClient(base_url=self.api, timeout=10, headers={
                    "Authorization": f"Bearer {self.api_key}"}) as http:
                metrics_before = await asyncio.to_thread(self.worker_metrics)
                created = await http.post("/api/cameras", json=camera)
                if created.status_code != 201:
                    raise RuntimeError(f"registering {clip.camera_id} failed: {created.text}")
                line_id = created.json()["lines"][0]["id"]
                first, last = await self._follow(engine, clip, expected_batches, quiet_s)
                counts = (await http.get(f"/api/cameras/{clip.camera_id}/counts")).json()
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    select(crossing_events.c.seq, crossing_events.c.track_id,
                           crossing_events.c.direction)
                    .where(crossing_events.c.camera_id == clip.camera_id,
                           crossing_events.c.line_id == line_id)
                    .order_by(crossing_events.c.seq, crossing_events.c.id)
                )).all()
        finally:
            await engine.dispose()
        metrics_after = await asyncio.to_thread(self.worker_metrics)
        metric_before = _metric(metrics_before, "camcount_worker_frames_total")
        metric_after = _metric(metrics_after, "camcount_worker_frames_total")
        totals: dict[str, int] = counts["totals"]
        ours = {d: totals.get(f"{line_id}:{d}:person", 0) for d in ("in", "out")}
        others = {k: v for k, v in totals.items() if not k.endswith(":person")}
        # The first seen batch was done before the timed span began: its frames are left out.
        (seq0, at0), (seq1, at1) = first, last
        seconds = (at1 - at0).total_seconds()
        # The clip's last batch may be partial (ingest publishes it when the stream ends).
        committed = min((seq1 + 1) * self.batch_frames, clip.frames)
        span_frames = committed - (seq0 + 1) * self.batch_frames
        return OursResult(
            ours["in"], ours["out"], committed, seconds,
            span_frames / seconds if seconds > 0 else 0.0, clip.frames, counts["gaps"], others,
            None if metric_before is None or metric_after is None
            else metric_after - metric_before,
            [(int(r.seq) * self.batch_frames + 1, int(r.track_id), str(r.direction))
             for r in rows],
            _stage_ms(_stage_sums(metrics_before), _stage_sums(metrics_after)),
        )

    async def _follow(
        self, engine: AsyncEngine, clip: Clip, expected_batches: int, quiet_s: float
    ) -> tuple[tuple[int, datetime], tuple[int, datetime]]:
        """Poll the camera's progress until every batch of the clip is committed or lies in a
        gap, or until nothing has moved for `quiet_s` after the clip's duration."""
        started = time.monotonic()
        give_up = started + clip.frames / (clip.fps * self.speed) + 300
        first: tuple[int, datetime] | None = None
        last: tuple[int, datetime] | None = None
        moved = time.monotonic()
        while True:
            async with engine.connect() as conn:
                row = (await conn.execute(
                    select(camera_progress.c.last_seq, camera_progress.c.updated_at)
                    .where(camera_progress.c.camera_id == clip.camera_id)
                )).first()
                gap_batches = (await conn.execute(
                    select(func.coalesce(func.sum(coverage_gaps.c.seq_to
                                                  - coverage_gaps.c.seq_from + 1), 0))
                    .where(coverage_gaps.c.camera_id == clip.camera_id)
                )).scalar_one()
            now = time.monotonic()
            if row is not None:
                seen = (int(row.last_seq), row.updated_at)
                if first is None:
                    first = seen
                if last is None or seen[0] != last[0]:
                    last, moved = seen, now
            done = last is not None and last[0] + 1 + int(gap_batches) >= expected_batches
            played = now - started > clip.frames / (clip.fps * self.speed) + 2
            if done or (played and last is not None and now - moved > quiet_s):
                break
            if now > give_up:
                raise RuntimeError(f"{clip.camera_id}: no progress\n{self.log_tails()}")
            await asyncio.sleep(POLL_S)
        assert first is not None and last is not None
        return first, last


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:
        stack.start()
        yield stack
    except BaseException:
        print(stack.log_tails(), flush=True)
        raise
    finally:
        stack.stop()


def run_ours(clips: Sequence[Clip], model: Path, *, state_dir: Path | None = None,
             ports: BenchPorts = BenchPorts(), batch_frames: int = 5,
             speed: float = 4.0) -> dict[str, OursResult]:
    stack = Stack(clips, model, state_dir or REPO_ROOT / ".state" / "bench", ports,
                  batch_frames=batch_frames, speed=speed)
    results: dict[str, OursResult] = {}
    with running(stack):
        for clip in clips:
            results[clip.name] = asyncio.run(stack.run_clip(clip))
    return results
