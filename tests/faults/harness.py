"""The full stack a fault scenario runs: simulated cameras (the project's RTSP simulator,
in-process, every session recorded) -> ingest -> balancer -> workers (motion detector) ->
PostgreSQL, each role a process of its own, with ingest's confirm history (CONFIRM_LOG) and the
workers' batch ledger (BATCH_LEDGER) on, memory sampled, and the checker at the end.

    async with FaultStack(isolated, management_url, tmp_path, workers=("w1", "w2")) as stack:
        ... inject faults: stack.kill_worker("w1"); stack.start_worker("w1"); services ...
        verdict = await stack.finish()     # stop ingest, drain, check, print the figures
    verdict.assert_ok(); stack.memory.assert_bounded()

Blocking calls (service restarts, waiting for processes) must go through asyncio.to_thread:
the simulator runs on this event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from camcount import processes
from contracts import broker
from contracts.tables import batch_ledger, cameras
from infra.db import create_engine
from simulator.mounts import parse_mount
from simulator.scenes import SyntheticScene
from tests.conftest import Isolated
from tests.faults.checker import Span, Verdict, check
from tests.faults.figures import report
from tests.faults.history import collect, confirmed_from_log
from tests.faults.memory import MemorySampler
from tests.integration.recording_simulator import RecordingSimulator, recording_simulator
from tests.integration.roles import Fleet
from tests.support import eventually, seed_camera

# 640x360 at 10 fps like the end-to-end test: the tracker is exact on these scenes, and their
# crossings are >= 3.6 s apart, which the checker's pairing relies on.
FPS, BATCH_FRAMES = 10, 5
INGEST_ENV = {"CAMERA_POLL_S": "0.5", "RECONNECT_INITIAL_S": "0.2", "RECONNECT_MAX_S": "2",
              "LEASE_TTL_S": "6", "LOG_LEVEL": "INFO", "SNAPSHOT_S": "0"}
# Queues whose messages wait for a person, not a consumer.
PARKED_QUEUES = frozenset({broker.FRAMES_DEAD})


@dataclass(frozen=True)
class CameraPlan:
    camera_id: str
    seed: int
    crossings: int = 8  # per loop of the scene; the scene loops forever

    def mount(self) -> str:
        return (f"{self.camera_id}:synthetic:seed={self.seed},crossings={self.crossings},"
                f"fps={FPS},loop=true,warmup_s=1")

    def scene(self) -> SyntheticScene:
        return parse_mount(self.mount()).scene()


def default_cameras(n: int, first_seed: int = 100) -> tuple[CameraPlan, ...]:
    return tuple(CameraPlan(f"cam-{i}", first_seed + i) for i in range(n))


class FaultStack:
    def __init__(
        self, isolated: Isolated, management_url: str, logs: Path, *,
        cameras: Sequence[CameraPlan] = default_cameras(3),
        workers: Sequence[str] = ("w1", "w2"), deadline_s: float = 10.0,
        worker_env: Mapping[str, str] | None = None,
        ingest_env: Mapping[str, str] | None = None,
        balancer_env: Mapping[str, str] | None = None,
    ) -> None:
        self.isolated, self.management_url, self.logs = isolated, management_url, logs
        self.cameras, self.worker_ids, self.deadline_s = tuple(cameras), tuple(workers), deadline_s
        self.worker_env = dict(worker_env or {})
        self.ingest_env = {**INGEST_ENV, **(ingest_env or {})}
        self.balancer_env = dict(balancer_env or {})
        self.confirm_log = logs / "confirmed.jsonl"
        self.fleet = Fleet(isolated, logs)
        self.engine = create_engine(isolated.database_url)
        self.memory = MemorySampler(self._pids)
        self.ingest_stopped_at: float | None = None
        self.figures: dict[str, object] = {}
        self.events: list[tuple[float, str]] = []  # (wall clock, "kill w1"), for the checker
        self._simulator: contextlib.AbstractAsyncContextManager[
            tuple[RecordingSimulator, int]] | None = None
        self._recorder: RecordingSimulator | None = None
        self._wall_offset = time.time() - time.monotonic()

    # --- lifecycle ---

    async def __aenter__(self) -> FaultStack:
        try:
            await self.start()
        except BaseException:
            await self.close()  # what did start must not outlive a failed start-up
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        simulator = recording_simulator([parse_mount(c.mount()) for c in self.cameras])
        self._recorder, port = await simulator.__aenter__()
        self._simulator = simulator
        for plan in self.cameras:
            await seed_camera(self.engine, plan.camera_id,
                              url=f"rtsp://127.0.0.1:{port}/{plan.camera_id}")
        async with self.engine.begin() as conn:
            await conn.execute(update(cameras).values(
                target_fps=FPS, batch_frames=BATCH_FRAMES, batch_ms=1000,
                deadline_s=self.deadline_s))
        self.fleet.balancer("b1", **self.balancer_env)
        for worker_id in self.worker_ids:
            self.start_worker(worker_id)
        self.fleet.start("ingest", "ingest", {**self.ingest_env, "NODE_ID": "ingest-f",
                                              "CONFIRM_LOG": str(self.confirm_log)})
        self.memory.start()
        await self.fleet.wait_live("b1", set(self.worker_ids), timeout_s=90)
        await eventually(self._confirmed_cameras,
                         lambda seen: seen >= {c.camera_id for c in self.cameras},
                         timeout_s=90, interval_s=0.5)
        print(f"stack ready: {len(self.cameras)} cameras, workers {list(self.worker_ids)}",
              flush=True)

    async def close(self) -> None:
        await self.memory.stop()
        children = list(self.fleet.children.values())
        try:
            for child in children:  # a stopped (SIGSTOP) process cannot drain
                if child.alive:
                    os.kill(child.proc.pid, signal.SIGCONT)
            await asyncio.to_thread(processes.stop, children)
        finally:
            for child in children:  # whatever happened above, no role outlives the test
                if child.alive:
                    child.proc.kill()
                    child.proc.wait(10)
            if self._simulator is not None:
                await self._simulator.__aexit__(None, None, None)
            await self.engine.dispose()
            for log in sorted(self.logs.glob("*.log")):
                text = log.read_text(errors="replace")
                print(f"----- {log.name} -----\n{text[-2500:]}")

    def _pids(self) -> dict[str, int]:
        return {name: c.proc.pid for name, c in self.fleet.children.items() if c.alive}

    async def _confirmed_cameras(self) -> set[str]:
        return {c.key.camera_id for c in confirmed_from_log(self.confirm_log)}

    # --- processes ---

    def start_worker(self, worker_id: str) -> processes.Child:
        """Start (or start again, same id and queue) a worker with the ledger on."""
        old = self.fleet.children.get(worker_id)
        if old is not None and old.log is not None and not old.alive:
            old.log.close()
        self.events.append((time.time(), f"start {worker_id}"))
        return self.fleet.worker(worker_id, BATCH_LEDGER="true", **self.worker_env)

    def kill_worker(self, worker_id: str, sig: signal.Signals = signal.SIGKILL) -> None:
        child = self.fleet.children[worker_id]
        self.events.append((time.time(), f"{sig.name.lower()} {worker_id}"))
        os.kill(child.proc.pid, sig)
        child.proc.wait(10)  # a SIGKILLed process exits at once

    async def busy_worker(self, candidates: Sequence[str], timeout_s: float) -> str | None:
        """The first of `candidates` seen (polling their health) holding a delivered, unsettled
        batch: the one to kill mid-batch. None when none did within the timeout (a restarted
        worker may have no cameras yet: the balancer keeps camera affinity)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for worker_id in candidates:
                if (await self.fleet.health(worker_id)).get("outstanding", 0) > 0:
                    return worker_id
            await asyncio.sleep(0.01)
        return None

    def worker_alive(self, worker_id: str) -> bool:
        return self.fleet.children[worker_id].alive

    async def stop_ingest(self) -> None:
        """Stop taking footage: ingest drains its confirms and exits; the sessions end."""
        child = self.fleet.children["ingest"]
        child.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(child.proc.wait, 60)
        self.ingest_stopped_at = time.time()

    # --- progress ---

    async def applied_count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(batch_ledger))).scalar_one())

    async def wait_applied(self, more: int, timeout_s: float = 90) -> None:
        """Recovered: `more` batches applied from now on (the pipeline flows again)."""
        target = await self._applied_or(0) + more
        await eventually(lambda: self._applied_or(-1), lambda n: n >= target,
                         timeout_s=timeout_s, interval_s=0.5)

    async def _applied_or(self, fallback: int) -> int:
        try:
            return await self.applied_count()
        except (OSError, SQLAlchemyError):  # the database is down or restarting
            return fallback

    # --- the broker's view ---

    async def queues(self) -> list[dict[str, Any]]:
        mgmt = urlsplit(self.management_url)
        base = urlunsplit(mgmt._replace(netloc=f"{mgmt.hostname}:{mgmt.port}"))
        auth = (mgmt.username or "guest", mgmt.password or "guest")
        async with httpx.AsyncClient(base_url=base, auth=auth, timeout=10) as http:
            response = await http.get(f"/api/queues/{quote(self.isolated.vhost, safe='')}")
            response.raise_for_status()
            return list(response.json())

    async def idle_queues(self) -> list[str]:
        """Queues that should have a consumer and have none: frames.ingress (the balancer), the
        queue of every running worker, and any other queue holding messages."""
        running = {broker.worker_queue_name(w) for w in self.worker_ids
                   if self.fleet.children[w].alive}
        problems = []
        try:
            listed = await self.queues()
        except httpx.HTTPError as exc:  # the broker is restarting
            return [f"management API: {exc!r}"]
        for q in listed:
            name, consumers = q["name"], q.get("consumers", 0)
            waiting = q.get("messages", 0)
            needs = name == broker.FRAMES_INGRESS or name in running or (
                waiting > 0 and name not in PARKED_QUEUES)
            if needs and consumers == 0:
                problems.append(f"{name} ({waiting} messages, no consumer)")
        return problems

    async def wait_consumers(self, timeout_s: float = 60) -> None:
        """No consumer left idle: every queue that needs one has one again. The management
        API's figures lag by its 5 s statistics interval, hence the generous poll."""
        await eventually(self.idle_queues, lambda idle: not idle, timeout_s=timeout_s,
                         interval_s=1.0)

    # --- the end ---

    def sessions(self) -> dict[str, list[Span]]:
        """Each camera's RTSP sessions in wall-clock time, none past ingest's stop."""
        end = self.ingest_stopped_at if self.ingest_stopped_at is not None else time.time()
        out: dict[str, list[Span]] = {}
        assert self._recorder is not None, "sessions() before start()"
        for mount, spans in self._recorder.intervals().items():
            out[mount] = [(s + self._wall_offset, min(e + self._wall_offset, end))
                          for s, e in spans]
        return out

    async def verdict(self) -> Verdict:
        scenes = {c.camera_id: c.scene() for c in self.cameras}
        return check(await collect(self.engine, self.confirm_log, scenes, self.sessions(),
                                   self.events))

    async def finish(self, drain_timeout_s: float = 120) -> Verdict:
        """Stop ingest, wait until every confirmed batch is applied or recorded as a gap (or
        the timeout: the verdict then shows what is lost), print the figures."""
        await self.stop_ingest()
        try:
            verdict = await eventually(self.verdict, lambda v: not v.lost,
                                       timeout_s=drain_timeout_s, interval_s=1.0)
        except AssertionError:
            verdict = await self.verdict()
        await self.memory.stop()
        lines = [verdict.summary(), self.memory.summary()]
        if self.figures:
            lines.append("figures: " + ", ".join(f"{k} {v}" for k, v in self.figures.items()))
        report(self.logs.name, "\n".join(lines))
        return verdict
