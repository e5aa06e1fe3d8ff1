"""Pool wiring: the API server, the spawn loop, the health polls and one watcher per worker
process, all in one TaskGroup. Decisions come from PoolState (supervision.py); this module
only carries them out and reports back what the processes did."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, BinaryIO

import httpx
import uvicorn

from infra.ops import EmbeddedServer, bound_port
from infra.runner import cancel_and_wait
from workers.pool import children, metrics
from workers.pool.app import UnknownType, UnknownWorker, create_app
from workers.pool.gpus import explicit_gpu, pinning_env
from workers.pool.models import StatusOut, TypeCounts, WorkerOut
from workers.pool.settings import PoolSettings
from workers.pool.supervision import (
    BackoffPolicy,
    Clock,
    PoolState,
    Slot,
    SystemClock,
    WorkerStatus,
)
from workers.pool.worker_types import WorkerType

log = logging.getLogger("camcount.pool")


def _utc(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC)


class WorkerPool:
    def __init__(
        self, settings: PoolSettings, types: Mapping[str, WorkerType], *,
        manager_env: Mapping[str, str], gpus: Sequence[str], clock: Clock | None = None,
        argv: Sequence[str] = children.WORKER_ARGV, output: BinaryIO | None = None,
    ) -> None:
        self.settings = settings
        self.types = dict(types)
        self.manager_env = dict(manager_env)
        self.argv = tuple(argv)
        self.output = output if output is not None else sys.stderr.buffer
        self.gpus = list(gpus)
        # Raises ValueError for a GPU_DEVICE the machine does not have: a start-up error.
        self.pinned = {name: explicit_gpu(t.env, self.manager_env, self.gpus)
                       for name, t in self.types.items()}
        self.state = PoolState(
            settings.pool_id,
            BackoffPolicy(settings.restart_backoff_initial_s, settings.restart_backoff_max_s,
                          settings.restart_backoff_multiplier, settings.restart_backoff_jitter,
                          settings.restart_reset_after_s, settings.restart_limit),
            stagger_s=settings.start_stagger_s, max_workers=settings.max_workers,
            clock=clock or SystemClock(), gpus=self.gpus,
            ops_port_base=settings.worker_ops_port_base,
        )
        self.poll_host = children.poll_host(settings.ops_host)
        self.serving = False
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    # -- the API's side ----------------------------------------------------------------------

    def _type(self, type_name: str) -> WorkerType:
        found = self.types.get(type_name)
        if found is None:
            raise UnknownType(f"no worker type {type_name!r}; known: "
                              f"{', '.join(sorted(self.types))}")
        return found

    def start(self, type_name: str, count: int, idle_timeout_s: float | None,
              idle_from_type: bool) -> list[str]:
        kind = self._type(type_name)
        idle = kind.idle_timeout_s if idle_from_type else idle_timeout_s
        started = self.state.start(type_name, count, idle, self.pinned[type_name])
        self._log_change("starting", type_name, started)
        return started

    def ensure(self, type_name: str, count: int, idle_timeout_s: float | None,
               idle_from_type: bool) -> list[str]:
        kind = self._type(type_name)
        idle = kind.idle_timeout_s if idle_from_type else idle_timeout_s
        started = self.state.ensure(type_name, count, idle, self.pinned[type_name])
        self._log_change("ensure: starting", type_name, started)
        return started

    def stop_worker(self, worker_id: str) -> list[str]:
        if self.state.get(worker_id) is None:
            raise UnknownWorker(f"no worker {worker_id!r} in this pool")
        self._stop(worker_id, "on request")
        return [worker_id]

    def stop_type(self, type_name: str, count: int) -> list[str]:
        self._type(type_name)
        chosen = self.state.choose_to_stop(type_name, count)
        for worker_id in chosen:
            self._stop(worker_id, "on request")
        return chosen

    def _log_change(self, what: str, type_name: str, worker_ids: list[str]) -> None:
        if worker_ids:
            log.info("%s %d worker(s) of type %s: %s", what, len(worker_ids), type_name,
                     ", ".join(worker_ids))
            self._wake.set()

    def _stop(self, worker_id: str, why: str) -> None:
        if self.state.request_stop(worker_id):
            log.info("[%s] stopping %s: SIGTERM, it drains", worker_id, why)
            children.send(self._procs[worker_id], signal.SIGTERM)
        else:
            log.info("[%s] stopped %s (no process running)", worker_id, why)

    def health(self) -> dict[str, Any]:
        return {"ok": self.serving and not self.state.draining, "role": "pool",
                "pool_id": self.settings.pool_id, "workers": len(self.state.live()),
                "draining": self.state.draining}

    def status(self) -> StatusOut:
        slots = list(self.state.slots.values())
        kept = [s for s in slots if s.status is not WorkerStatus.STOPPED]
        by_type = {name: TypeCounts(
            total=sum(1 for s in kept if s.type_name == name),
            active=sum(1 for s in kept if s.type_name == name
                       and s.status is WorkerStatus.RUNNING),
        ) for name in sorted({*self.types, *(s.type_name for s in slots)})}
        return StatusOut(
            total=len(kept), active=sum(1 for s in kept if s.status is WorkerStatus.RUNNING),
            draining=self.state.draining, by_type=by_type,
            workers=[self._worker_out(s) for s in slots],
        )

    def _worker_out(self, slot: Slot) -> WorkerOut:
        return WorkerOut(
            worker_id=slot.worker_id, type=slot.type_name, pid=slot.pid, status=slot.status,
            created_at=_utc(slot.created_at), last_activity=_utc(slot.last_activity_at),
            job_count=slot.job_count, in_flight=slot.in_flight,
            max_jobs=self.types[slot.type_name].max_jobs, restarts=slot.restarts,
            gpu=slot.gpu, ops_port=slot.ops_port, idle_timeout_s=slot.idle_timeout_s,
            last_exit_code=slot.last_exit_code,
        )

    def refresh_metrics(self) -> None:
        slots = list(self.state.slots.values())
        for name in self.types:
            for st in WorkerStatus:
                metrics.WORKERS.labels(name, st.value).set(
                    sum(1 for s in slots if s.type_name == name and s.status is st))
            metrics.RUNNING.labels(name).set(
                sum(1 for s in slots if s.type_name == name and s.status is WorkerStatus.RUNNING))

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        server = EmbeddedServer(uvicorn.Config(
            create_app(self), host=self.settings.pool_http_host,
            port=self.settings.pool_http_port, log_level="warning", lifespan="off",
        ))
        try:
            async with httpx.AsyncClient(timeout=1.0) as http, asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(server.serve())
                await server.ready.wait()
                self.start(self.settings.worker_type, self.settings.num_workers, None, False)
                control = tg.create_task(self._spawn_when_due())
                polls = tg.create_task(self._poll_forever(http))
                self.serving = True
                log.info("worker pool ready http://%s:%s pool_id=%s workers=%d types=%s gpus=%s",
                         self.settings.pool_http_host, bound_port(server),
                         self.settings.pool_id, self.settings.num_workers,
                         ",".join(sorted(self.types)), ",".join(self.gpus) or "none")
                await stop.wait()
                await self._drain(control)
                await cancel_and_wait(polls)
                server.should_exit = True
        finally:
            # Cancelled (a second signal) or failed: no worker outlives the manager.
            for proc in self._procs.values():
                children.kill_group(proc)
        log.info("worker pool stopped")

    async def _spawn_when_due(self) -> None:
        """Spawns what PoolState says is due (start stagger, back-off), sleeping until the next
        due time or a wake-up (a start request, an exit). Ends once the pool drains, after the
        spawn in hand, so no process is half-started."""
        while not self.state.draining:
            self._wake.clear()
            for slot in self.state.due_spawns():
                await self._spawn(slot)
            next_due = self.state.next_due_mono()
            timeout = None if next_due is None else max(0.0, next_due - self.state.clock.mono())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _spawn(self, slot: Slot) -> None:
        assert self._tg is not None
        kind = self.types[slot.type_name]
        # Without a port base, a new free port for each process: the old one may be taken now.
        port = (slot.ops_port if self.settings.worker_ops_port_base and slot.ops_port
                else children.free_port(self.poll_host))
        env = {**self.manager_env, **kind.env, "WORKER_TYPE": kind.capability,
               "WORKER_ID": slot.worker_id, "OPS_PORT": str(port), **pinning_env(slot.gpu)}
        try:
            proc = await children.spawn(self.argv, env)
        except OSError:
            log.exception("[%s] could not spawn a worker process", slot.worker_id)
            self.state.spawn_failed(slot.worker_id)
            return
        keep = self.state.spawned(slot.worker_id, proc.pid, port)
        self._procs[slot.worker_id] = proc
        self._watchers[slot.worker_id] = self._tg.create_task(self._watch(slot.worker_id, proc))
        if slot.restarts:
            metrics.RESTARTS.labels(slot.type_name).inc()
        log.info("[%s] spawned pid=%d type=%s gpu=%s ops_port=%d restarts=%d", slot.worker_id,
                 proc.pid, slot.type_name, slot.gpu or "-", port, slot.restarts)
        if not keep:  # stopped while it was being spawned
            children.send(proc, signal.SIGTERM)

    async def _watch(self, worker_id: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        relay = asyncio.create_task(children.relay_output(proc.stdout, worker_id, self.output))
        code = await proc.wait()
        # The last lines; something the worker started may hold the pipe open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(relay, 2.0)
        self._procs.pop(worker_id, None)
        self._watchers.pop(worker_id, None)
        self.state.exited(worker_id, code)
        slot = self.state.get(worker_id)
        if slot is None or slot.status is WorkerStatus.STOPPED:
            log.info("[%s] exited code=%s (stopped)", worker_id, code)
        elif slot.status is WorkerStatus.CRASHED:
            log.error("[%s] exited code=%s: %d crashes in a row, not restarting it", worker_id,
                      code, slot.failures)
        else:
            delay_s = (slot.due_mono or 0.0) - self.state.clock.mono()
            log.warning("[%s] exited code=%s unexpectedly: restart in %.1fs", worker_id, code,
                        max(0.0, delay_s))
        self._wake.set()

    async def _poll_forever(self, http: httpx.AsyncClient) -> None:
        interval_s = self.settings.poll_interval_s
        while True:
            await self._poll_once(http)
            for worker_id in self.state.reap_due(fresh_within_s=2 * interval_s + 1.0):
                slot = self.state.slots[worker_id]
                metrics.REAPED.labels(slot.type_name).inc()
                self._stop(worker_id, f"idle for {slot.idle_timeout_s:g}s")
            self.refresh_metrics()
            await asyncio.sleep(interval_s)

    async def _poll_once(self, http: httpx.AsyncClient) -> None:
        live = [s for s in self.state.live() if s.ops_port is not None]
        reports = await asyncio.gather(*(
            children.poll_health(http, self.poll_host, s.ops_port or 0) for s in live))
        for slot, report in zip(live, reports, strict=True):
            if report is None or report.get("worker_id") not in (None, slot.worker_id):
                continue  # not up yet, or another process on that port
            # `outstanding` (where the worker reports it) also counts batches prefetched or
            # held for reordering: a worker holding any is not idle.
            held = max(int(report.get("in_flight", 0)), int(report.get("outstanding", 0)))
            if self.state.observed(slot.worker_id, ok=bool(report.get("ok")),
                                   processed=int(report.get("processed", 0)), in_flight=held):
                log.info("[%s] running pid=%s", slot.worker_id, slot.pid)

    async def _drain(self, control: asyncio.Task[None]) -> None:
        """SIGTERM every worker (each finishes the batch in hand and deregisters), wait up to
        DRAIN_TIMEOUT_S, then SIGKILL what is left; what it held unacked goes back to its
        queue, so nothing is lost either way."""
        to_signal = self.state.drain()
        self._wake.set()
        await control  # a spawn in hand completes (and is SIGTERMed) before we go on
        log.info("draining: SIGTERM to %d worker(s), up to %.0fs", len(to_signal),
                 self.settings.drain_timeout_s)
        for worker_id in to_signal:
            if worker_id in self._procs:
                children.send(self._procs[worker_id], signal.SIGTERM)
        watchers = list(self._watchers.values())
        if watchers:
            await asyncio.wait(watchers, timeout=self.settings.drain_timeout_s)
        for worker_id, proc in list(self._procs.items()):
            log.warning("[%s] did not drain within %.0fs: SIGKILL", worker_id,
                        self.settings.drain_timeout_s)
            metrics.KILLED.labels(self.state.slots[worker_id].type_name).inc()
            children.kill_group(proc)
        await asyncio.gather(*self._watchers.values())
