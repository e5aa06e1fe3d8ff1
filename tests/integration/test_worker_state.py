"""Worker state and history in PostgreSQL, every role its own process against the real
RabbitMQ and PostgreSQL: the active balancer records liveness events and breaker transitions
(once, however many balancers run), the registry serves them with the heartbeat's load.

The breaker is driven by a fake worker publishing heartbeats with growing outcome counters:
the balancer feeds its breakers from nothing else, and a real failing worker would take
seconds more per transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts import broker
from contracts.messages import WorkerHeartbeat
from contracts.tables import worker_events
from infra import amqp
from tests.conftest import Isolated
from tests.integration.registry_client import bearer, new_key
from tests.integration.roles import BEAT_S, DOWN_BUDGET_S, free_port
from tests.integration.roles import Fleet as Procs
from tests.support import eventually

pytestmark = pytest.mark.slow

STATE_ENV = {"STANDBY_PROBE_S": "0.2", "WORKER_STATE_REFRESH_S": "0.5"}
WRITE_S = 0.5  # event to committed row, on a busy test machine


@dataclass
class Stack:
    procs: Procs
    api_port: int
    key: str

    async def api(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}",
                                     timeout=5, headers=bearer(self.key)) as http:
            return await http.get(path)

    async def worker(self, worker_id: str) -> dict[str, Any]:
        try:
            response = await self.api(f"/api/workers/{worker_id}")
        except httpx.HTTPError:  # the registry still starting
            return {}
        return response.json() if response.status_code == 200 else {}

    def balancer(self, name: str, **env: str) -> None:
        self.procs.balancer(name, **STATE_ENV, **env)

    async def active(self, name: str) -> bool:
        return bool((await self.procs.health(name)).get("active"))


@pytest.fixture
async def stack(isolated: Isolated, engine: AsyncEngine, tmp_path: Path,
                ) -> AsyncIterator[Stack]:
    procs = Procs(isolated, tmp_path)
    port = free_port()
    try:
        procs.start("registry", "registry", {"HTTP_PORT": str(port), "LOG_LEVEL": "INFO"})
        yield Stack(procs, port, await new_key(engine, "viewer"))
    finally:
        processes.stop(list(procs.children.values()))
        _print_logs(tmp_path)


def _print_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-3000:]}")


class FakeWorker:
    """Heartbeats only, every BEAT_S, with the counters and load the test sets."""

    def __init__(self, channel: AbstractChannel, worker_id: str, **load: Any) -> None:
        self.channel = channel
        self.worker_id = worker_id
        self.load = load
        self.ok = self.failed = 0

    async def run(self) -> None:
        exchange = await amqp.declare_exchange(self.channel, broker.HEARTBEATS_EXCHANGE)
        while True:
            beat = WorkerHeartbeat(
                worker_id=self.worker_id, boot_id="boot-1", queue=f"q.{self.worker_id}",
                sent_at=time.time(), heartbeat_interval_s=BEAT_S, batches_ok=self.ok,
                batches_failed=self.failed, **self.load)
            await exchange.publish(aio_pika.Message(beat.model_dump_json().encode()), "")
            await asyncio.sleep(BEAT_S)


@contextlib.asynccontextmanager
async def beating(worker: FakeWorker) -> AsyncIterator[FakeWorker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rows(engine: AsyncEngine, worker_id: str) -> list[tuple[str, str]]:
    """(kind, judged_by) in the order written."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(worker_events.c.kind, worker_events.c.judged_by)
            .where(worker_events.c.worker_id == worker_id).order_by(worker_events.c.id))
        return [(r.kind, r.judged_by) for r in found]


def kinds(found: list[tuple[str, str]]) -> list[str]:
    return [kind for kind, _ in found]


async def test_liveness_events_are_recorded_once_by_the_active_balancer(
    stack: Stack, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    stack.balancer("b1")
    # Alone on frames.ingress, b1 is active without a batch; b2 then waits behind it.
    await eventually(lambda: stack.active("b1"), bool, timeout_s=60)
    stack.balancer("b2")
    await eventually(lambda: stack.procs.health("b2"), lambda h: h.get("ok") is True,
                     timeout_s=60)
    real = stack.procs.worker("w-real")
    await eventually(lambda: rows(engine, "w-real"), lambda r: "worker.up" in kinds(r),
                     timeout_s=60)
    shown = await eventually(lambda: stack.worker("w-real"),
                             lambda w: w.get("liveness") == "up", timeout_s=10)
    print(f"w-real in the API: {shown}")
    assert shown["judged_by"] == "b1" and shown["breaker"]["state"] == "closed"
    load = shown["load"]
    assert load["max_jobs"] >= 1 and load["rss_bytes"] > 0
    assert load["heartbeat_interval_s"] == pytest.approx(BEAT_S)
    assert {"queue_depth", "processing_ema_s", "capacity_per_s", "cpu_percent",
            "gpu_utilisation_percent", "in_flight"} <= set(load)
    assert not await stack.active("b2")

    real.proc.send_signal(signal.SIGKILL)
    killed_mono = time.monotonic()
    await eventually(lambda: rows(engine, "w-real"), lambda r: "worker.down" in kinds(r),
                     timeout_s=DOWN_BUDGET_S + 10, interval_s=0.05)
    recorded_s = time.monotonic() - killed_mono
    print(f"SIGKILL to worker.down row: {recorded_s:.2f} s (budget {DOWN_BUDGET_S:.1f} s "
          f"+ {WRITE_S} s to write)")
    assert recorded_s <= DOWN_BUDGET_S + WRITE_S
    shown = await eventually(lambda: stack.worker("w-real"),
                             lambda w: w.get("liveness") == "down", timeout_s=5)
    assert shown["breaker"] is None  # forgotten with the worker: no stale breaker shown

    # The standby takes over when the active balancer dies, without a batch to tell it.
    stack.procs.children["b1"].proc.send_signal(signal.SIGKILL)
    await eventually(lambda: stack.active("b2"), bool, timeout_s=15)
    async with beating(FakeWorker(channel, "w-late")):
        await eventually(lambda: rows(engine, "w-late"), lambda r: "worker.up" in kinds(r),
                         timeout_s=15)
    await asyncio.sleep(1.0)  # time for a duplicate, were one coming

    history = await rows(engine, "w-real")
    print(f"w-real history: {history}")
    assert {by for _, by in history} == {"b1"}
    assert kinds(history) in (["worker.up", "worker.down"],
                              ["worker.up", "worker.suspect", "worker.down"])
    assert await rows(engine, "w-late") == [("worker.up", "b2")]
    newest_first = (await stack.api("/api/workers/w-real/events")).json()
    assert [e["kind"] for e in newest_first] == kinds(history)[::-1]
    assert newest_first[0]["boot_id"] == shown["boot_id"]
    assert newest_first[0]["reason"] == "silence"
    listed = (await stack.api("/api/workers")).json()
    assert [w["id"] for w in listed] == ["w-late", "w-real"]


async def test_breaker_transitions_show_in_the_api_and_on_registry_events(
    stack: Stack, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(broker.REGISTRY_EVENTS, routing_key="#")

    async def collect(message: AbstractIncomingMessage) -> None:
        published.append((message.routing_key or "", json.loads(message.body)))

    await queue.consume(collect, no_ack=True)
    stack.balancer("b1", BREAKER_MIN_VOLUME="4", BREAKER_WINDOW="8",
                   BREAKER_COOL_DOWN_S="1.5", BREAKER_PROBES="2")
    await eventually(lambda: stack.active("b1"), bool, timeout_s=60)
    gpu = {"gpu_name": "Fake GPU", "gpu_memory_used_bytes": 2 << 30,
           "gpu_memory_total_bytes": 16 << 30, "gpu_utilisation_percent": 42.0}
    fake = FakeWorker(channel, "w-fake", queue_depth=3, capacity_per_s=12.5, max_jobs=2,
                      processing_ema_s=0.08, rss_bytes=123_456_789, cpu_percent=55.5, **gpu)
    async with beating(fake):
        shown = await eventually(lambda: stack.worker("w-fake"),
                                 lambda w: w.get("liveness") == "up", timeout_s=15)
        assert shown["load"] | gpu == shown["load"]
        assert (shown["load"]["queue_depth"], shown["load"]["capacity_per_s"],
                shown["load"]["max_jobs"], shown["load"]["rss_bytes"]) == (3, 12.5, 2,
                                                                          123_456_789)
        fake.failed = 6  # the next beat's deltas: six failures in a row
        opened = await eventually(
            lambda: stack.worker("w-fake"),
            lambda w: (w.get("breaker") or {}).get("state") == "open", timeout_s=5)
        print(f"opened: {opened['breaker']}")
        assert opened["breaker"]["failure_rate"] == 1.0
        assert opened["breaker"]["calls"] >= 4  # the minimum volume
        opened_at = opened["breaker"]["opened_at"]
        assert opened_at is not None and opened_at.startswith(time.strftime("%Y-", time.gmtime()))
        await eventually(lambda: rows(engine, "w-fake"),
                         lambda r: "breaker.half_open" in kinds(r), timeout_s=5)
        fake.ok = 2  # two probes answered well
        closed = await eventually(
            lambda: stack.worker("w-fake"),
            lambda w: (w.get("breaker") or {}).get("state") == "closed", timeout_s=5)
        assert closed["breaker"]["failure_rate"] == 0.0
    expected = ["worker.up", "breaker.open", "breaker.half_open", "breaker.closed"]
    assert await rows(engine, "w-fake") == [(k, "b1") for k in expected]
    history = (await stack.api("/api/workers/w-fake/events?limit=3")).json()
    assert [e["kind"] for e in history] == expected[:0:-1]
    assert history[-1]["details"]["from"] == "closed"
    await eventually(lambda: asyncio.sleep(0, len(published)), lambda n: n >= len(expected),
                     timeout_s=5)
    assert [key for key, _ in published] == expected
    assert [body["kind"] for _, body in published] == expected
    assert published[1][1]["worker_id"] == "w-fake" and published[1][1]["judged_by"] == "b1"

    for path, code in (("/api/workers/nope", 404), ("/api/workers/nope/events", 404),
                       ("/api/workers/w-fake/events?limit=0", 422),
                       ("/api/workers/w-fake/events?limit=100000", 422)):
        assert (await stack.api(path)).status_code == code, path
