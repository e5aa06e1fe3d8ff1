"""The soak's faults, each injected and then waited out: a fault counts as recovered when its
own damage is repaired (the killed worker runs again, the closed connection is back, ...) AND
every camera's progress moved on after it, so a fault that leaves one camera stuck fails the
soak even if every process looks healthy.

Targets are drawn from the seeded generator the runner passes in; what was hit is recorded
(kind, target, detail, time to recover) and logged with the time.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.soak.pool import Pool
from bench.soak.schedule import FaultKind
from bench.stack import Stack

POLL_S = 0.5
# Connections the bench itself holds: closing them tests nothing of camcount.
BENCH_CONNECTIONS = ("bench-", "soak-")


class NotRecovered(RuntimeError):
    """The fault's damage was still there when the recovery timeout ran out."""


@dataclass(frozen=True)
class FaultRecord:
    at_s: float  # since the soak started
    wall: float  # time.time() at injection
    kind: str
    target: str
    detail: str
    recovered_s: float | None  # injection to recovery; None: it did not recover
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.recovered_s is not None and not self.error


@dataclass
class FaultContext:
    stack: Stack
    pool: Pool
    broker_http: httpx.AsyncClient
    engine: AsyncEngine
    broker_ctl: Callable[..., str]  # rabbitmqctl against the soak's own node
    pg_owner: Callable[[int], str]  # a backend's client port -> the process that holds it
    rng: random.Random
    recovery_timeout_s: float = 90.0
    alarm_s: float = 4.0
    camera_off_s: float = 2.0


async def inject(ctx: FaultContext, kind: FaultKind, at_s: float) -> FaultRecord:
    """Inject one fault and wait for recovery; never raises for the fault's own failures
    (they are the record's error), so one bad fault does not end the soak's sampling."""
    wall, started = time.time(), time.monotonic()
    target, detail = "", ""
    try:
        before = await camera_positions(ctx.engine)
        target, detail, repaired = await INJECTORS[kind](ctx)
        await _until(repaired, ctx.recovery_timeout_s, f"{kind} on {target}")
        await _until(lambda: _all_moved(ctx.engine, before), ctx.recovery_timeout_s,
                     "every camera counting again")
        return FaultRecord(at_s, wall, kind, target, detail, time.monotonic() - started)
    except Exception as exc:
        return FaultRecord(at_s, wall, kind, target, detail, None,
                           f"{type(exc).__name__}: {exc}")


Repaired = Callable[[], Awaitable[bool]]


async def kill_worker(ctx: FaultContext) -> tuple[str, str, Repaired]:
    running = await ctx.pool.running_pids()
    if not running:
        raise RuntimeError("no running worker to kill")
    worker_id = ctx.rng.choice(sorted(running))
    pid = running[worker_id]
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> bool:
        again = (await ctx.pool.running_pids()).get(worker_id)
        return again is not None and again != pid

    return worker_id, f"SIGKILL pid {pid}", restarted


async def close_connections(ctx: FaultContext) -> tuple[str, str, Repaired]:
    connections = await _connections(ctx.broker_http)
    names = sorted({n for n, _ in connections if not n.startswith(BENCH_CONNECTIONS)})
    if not names:
        raise RuntimeError("no role connection to close")
    name = ctx.rng.choice(names)
    closed = [c for n, c in connections if n == name]
    for connection in closed:
        response = await ctx.broker_http.delete(
            f"/api/connections/{quote(connection, safe='')}",
            headers={"X-Reason": "camcount soak: injected fault"})
        if response.status_code not in (204, 404):
            response.raise_for_status()

    async def reconnected() -> bool:
        return any(n == name and c not in closed for n, c in await _connections(
            ctx.broker_http))

    return name, f"closed {len(closed)} connection(s)", reconnected


async def restart_camera(ctx: FaultContext) -> tuple[str, str, Repaired]:
    camera_id = ctx.rng.choice(sorted(ctx.stack.camera_ids))
    epoch = await _stream_epoch(ctx.engine, camera_id)
    await ctx.stack.set_enabled([camera_id], False)
    await asyncio.sleep(ctx.camera_off_s)
    await ctx.stack.set_enabled([camera_id], True)

    async def new_stream_counted() -> bool:
        # A batch of the new session (a new stream epoch) applied.
        applied = (await camera_positions(ctx.engine)).get(camera_id)
        return applied is not None and applied[0] > epoch

    return camera_id, f"disabled for {ctx.camera_off_s:g} s (stream epoch was {epoch})", \
        new_stream_counted


async def terminate_backend(ctx: FaultContext) -> tuple[str, str, Repaired]:
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT pid, client_port, state FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() ORDER BY pid"))).all()
        owned = [(int(r.pid), ctx.pg_owner(int(r.client_port or 0)), str(r.state))
                 for r in rows]
        # A role's session, not one of the bench's own; one in the middle of a statement or
        # a transaction when there is one (an apply cut short), else an idle one.
        roles = [o for o in owned if o[1] != "other"] or owned
        candidates = [o for o in roles if o[2] != "idle"] or roles
        if not candidates:
            raise RuntimeError("no backend to terminate")
        pid, owner, state = ctx.rng.choice(candidates)
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()

    async def done() -> bool:
        return True  # the roles' pools reconnect; "every camera counting" is the proof

    return owner, f"backend {pid} ({state})", done


async def memory_alarm(ctx: FaultContext) -> tuple[str, str, Repaired]:
    await asyncio.to_thread(ctx.broker_ctl, "set_vm_memory_high_watermark", "0")
    try:
        await asyncio.sleep(ctx.alarm_s)
    finally:
        await asyncio.to_thread(ctx.broker_ctl, "set_vm_memory_high_watermark", "0.4")

    async def cleared() -> bool:
        response = await ctx.broker_http.get("/api/health/checks/alarms")
        return response.status_code == 200

    return "rabbitmq", f"memory alarm for {ctx.alarm_s:g} s", cleared


INJECTORS: dict[FaultKind, Callable[[FaultContext], Awaitable[tuple[str, str, Repaired]]]] = {
    FaultKind.KILL_WORKER: kill_worker,
    FaultKind.CLOSE_CONNECTIONS: close_connections,
    FaultKind.RESTART_CAMERA: restart_camera,
    FaultKind.TERMINATE_BACKEND: terminate_backend,
    FaultKind.MEMORY_ALARM: memory_alarm,
}


async def camera_positions(engine: AsyncEngine) -> dict[str, tuple[int, int]]:
    """(stream_epoch, last_seq) of every camera's last applied batch."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT camera_id, stream_epoch, last_seq FROM camera_progress"))
        return {r.camera_id: (int(r.stream_epoch), int(r.last_seq)) for r in rows}


async def _all_moved(engine: AsyncEngine, before: dict[str, tuple[int, int]]) -> bool:
    now = await camera_positions(engine)
    return all(now.get(camera) not in (None, position) for camera, position in before.items())


async def _stream_epoch(engine: AsyncEngine, camera_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT stream_epoch FROM cameras WHERE id = :id"),
                                       {"id": camera_id})).scalar_one())


async def _connections(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(connection_name the client gave, the broker's name for the connection)."""
    response = await http.get("/api/connections", params={"columns": "name,client_properties"})
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()
    return [(str((r.get("client_properties") or {}).get("connection_name") or ""), str(r["name"]))
            for r in rows]


async def _until(probe: Repaired, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await probe():
                return
        except (httpx.HTTPError, OSError, SQLAlchemyError):
            pass  # the thing probed may itself be recovering
        if time.monotonic() > deadline:
            raise NotRecovered(f"{what}: not recovered within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
