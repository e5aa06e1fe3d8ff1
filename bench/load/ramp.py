"""The camera ramp against a running stack (bench/stack.py): steps of N cameras, each held for a
warm-up and a timed window while a WebSocket client records every count event.

Cameras are added through the API as the ramp grows; a step below the cameras registered
disables the rest (PATCH enabled), so no camera is registered twice. After a failed step every
camera is paused until the queues are empty and events stop, so its backlog does not count
against the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from bench.load.latency import EventTimes, breakdown
from bench.load.search import Limits, StepResult, judge, next_cameras
from bench.stack import Stack
from contracts.tables import coverage_gaps
from infra.db import short_lived_engine

Say = Callable[[str], None]
DEPTH_EVERY_S = 1.0
FIRST_EVENT_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RampConfig:
    start: int = 2
    max_cameras: int = 256
    warmup_s: float = 5.0
    window_s: float = 20.0
    max_minutes: float = 20.0
    progress_every_s: float = 5.0
    limits: Limits = field(default_factory=Limits)
    counts: tuple[int, ...] = ()  # explicit steps instead of the search (stops at a failure)


@dataclass
class Probe:
    """One WebSocket client subscribed to every camera: each count event with its arrival."""

    ws: ClientConnection
    events: list[EventTimes] = field(default_factory=list)
    last_at: float = 0.0
    closed: bool = False

    async def run(self) -> None:
        try:
            async for raw in self.ws:
                received = time.time()
                message = json.loads(raw)
                if message.get("type") == "counts":
                    self.events.append(EventTimes.of(message, received))
                    self.last_at = received
        finally:
            self.closed = True

    def check(self) -> None:
        """The ramp's figures mean nothing once the probe is gone (e.g. dropped as too slow)."""
        if self.closed:
            raise RuntimeError(f"the probe's WebSocket closed ({self.ws.close_code} "
                               f"{self.ws.close_reason})")

    def take(self) -> list[EventTimes]:
        taken, self.events = self.events, []
        return taken

    def cameras_seen(self) -> set[str]:
        return {e.camera_id for e in self.events}


@contextlib.asynccontextmanager
async def open_probe(stack: Stack) -> AsyncIterator[Probe]:
    async with connect(await stack.ws_url(), origin=Origin(stack.origin),
                       max_queue=None) as ws:
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            raise RuntimeError(f"the broadcaster greeted with {hello}")
        await ws.send(json.dumps({"op": "subscribe", "cameras": "*", "alerts": False}))
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass
        probe = Probe(ws)
        task = asyncio.create_task(probe.run())
        try:
            yield probe
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_ramp(stack: Stack, config: RampConfig, say: Say) -> list[StepResult]:
    results: list[StepResult] = []
    tried: dict[int, bool] = {}
    ends_by = time.monotonic() + config.max_minutes * 60
    steps = iter(config.counts)
    async with open_probe(stack) as probe:
        while True:
            count = (next(steps, None) if config.counts
                     else next_cameras(tried, config.start, config.max_cameras))
            if count is None or count in tried:
                break
            if time.monotonic() > ends_by:
                say(f"ramp: --max-minutes {config.max_minutes:g} reached")
                break
            result = await _step(stack, probe, count, config, say)
            results.append(result)
            tried[count] = result.sustained
            verdict = "sustained" if result.sustained else f"NOT sustained: {result.failure}"
            say(f"[{count} cameras] {verdict}; p99 {result.p99_ms:.0f} ms over "
                f"{result.events} events, slowest camera {result.slowest_camera_per_s:.2f}/s, "
                f"queued {result.depth_first}->{result.depth_last} (max {result.depth_max})"
                + (f", gaps {dict(result.gaps)}" if result.gaps else ""))
            if not result.sustained:
                if config.counts:
                    break
                await _drain(stack, probe, say)
    return results


async def _step(stack: Stack, probe: Probe, count: int, config: RampConfig,
                say: Say) -> StepResult:
    missing = count - len(stack.camera_ids)
    if missing > 0:
        await stack.add_cameras(missing)
    active = stack.camera_ids[:count]
    await stack.set_enabled(stack.camera_ids[count:], False)
    await stack.set_enabled(active, True)
    say(f"[{count} cameras] waiting for every camera's first event")
    probe.take()
    deadline = time.monotonic() + FIRST_EVENT_TIMEOUT_S
    while not set(active) <= probe.cameras_seen():
        stack.check_alive()
        probe.check()
        if time.monotonic() > deadline:
            # Judged like any starved camera: the step fails, the ramp goes on.
            silent = sorted(set(active) - probe.cameras_seen())
            say(f"[{count} cameras] no event yet from {len(silent)} camera(s) "
                f"({', '.join(silent[:3])}...) after {FIRST_EVENT_TIMEOUT_S:.0f} s")
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(config.warmup_s)
    probe.take()
    started = time.time()
    depths: list[int] = []
    next_say = time.monotonic() + config.progress_every_s
    while (left := started + config.window_s - time.time()) > 0:
        depths.append(sum((await stack.queue_depths()).values()))
        stack.check_alive()
        probe.check()
        await asyncio.sleep(min(DEPTH_EVERY_S, left))
        if time.monotonic() >= next_say:
            next_say += config.progress_every_s
            say(f"[{count} cameras]   {len(probe.events) / (time.time() - started):6.1f} "
                f"events/s, {depths[-1]} batches queued")
    ended = time.time()
    depths.append(sum((await stack.queue_depths()).values()))
    events = [e for e in probe.take() if e.received < ended]
    gaps = await _gaps_between(stack.database_url, active, started, ended)
    expected = stack.config.target_fps / stack.config.batch_frames
    return judge(active, events, ended - started, expected, depths, gaps, breakdown(events),
                 config.limits)


async def _drain(stack: Stack, probe: Probe, say: Say) -> None:
    """Pause every camera until the backlog is gone and events stop for two seconds."""
    await stack.set_enabled(stack.camera_ids, False)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        quiet = time.time() - probe.last_at > 2.0
        if quiet and not any((await stack.queue_depths()).values()):
            break
        await asyncio.sleep(0.5)
    probe.take()
    say("ramp: drained after the failed step")


async def _gaps_between(database_url: str, cameras: list[str], start: float,
                        end: float) -> dict[str, int]:
    """The cameras' coverage gaps recorded in [start, end] (and a little after: a shed batch
    is recorded when it is noticed), by reason."""
    async with short_lived_engine(database_url) as engine, engine.connect() as conn:
        rows = await conn.execute(
            select(coverage_gaps.c.reason, func.count())
            .where(coverage_gaps.c.camera_id.in_(cameras))
            .where(coverage_gaps.c.recorded_at.between(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end + 1, UTC)))
            .group_by(coverage_gaps.c.reason))
        return dict(Counter({str(r[0]): int(r[1]) for r in rows}))
