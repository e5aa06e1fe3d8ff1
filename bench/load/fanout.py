"""1,000 WebSocket clients: camcount's broadcaster against a bare `websockets` server.

Both contestants face the same client groups (bench/load/clients.py, `processes` processes
sharing the clients) and send the same events at the same pace (bench/load/fanout_events.py):
- camcount: every client holds its own ticket (POST /api/ws-ticket with the stack's admin key,
  whose rate limit allows it); the events are outbox rows committed one per transaction with a
  NOTIFY, as a worker's apply commits them, for a camera of their own (disabled, so no ingest
  pulls it); latency is from that commit (committed_at) to each client's receipt, so it covers
  the relay (NOTIFY, read, AMQP publish, mark published) and the hub's per-client queues.
- bare: bench/load/bare_ws.py broadcasts the same JSON; latency from the broadcast call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from bench.load.fanout_events import CAMERA, REGION, paced, payload
from bench.load.latency import percentile
from bench.stack import Stack, free_port
from camcount import processes
from contracts.tables import OUTBOX_CHANNEL, cameras, outbox
from infra.db import short_lived_engine

Say = Callable[[str], None]
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class FanoutConfig:
    clients: int = 1000
    events: int = 50
    rate_per_s: float = 5.0
    processes: int = 4
    grace_s: float = 30.0  # after the last event is due, for stragglers


@dataclass(frozen=True)
class FanoutResult:
    name: str
    clients: int
    subscribed: int
    delivered: int
    missing: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class ClientGroups:
    """The client processes: started, ready, then their results."""

    def __init__(self, children: list[asyncio.subprocess.Process]) -> None:
        self.children = children

    @classmethod
    async def start(cls, urls: list[str], origin: str | None, config: FanoutConfig,
                    log_dir: Path, name: str) -> ClientGroups:
        timeout_s = READY_TIMEOUT_S + config.events / config.rate_per_s + config.grace_s
        children = []
        for index in range(config.processes):
            share = urls[index :: config.processes]
            if not share:
                continue
            log = (log_dir / f"clients-{name}-{index}.log").open("ab")
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.load.clients", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log)
            log.close()
            assert child.stdin is not None
            spec = {"urls": share, "origin": origin, "events": config.events,
                    "timeout_s": timeout_s}
            child.stdin.write(json.dumps(spec).encode() + b"\n")
            await child.stdin.drain()
            child.stdin.close()
            children.append(child)
        groups = cls(children)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                for child in children:
                    assert child.stdout is not None
                    line = (await child.stdout.readline()).decode()
                    if not line.startswith("ready"):
                        raise RuntimeError(f"a client group did not get ready (see "
                                           f"{log_dir}/clients-{name}-*.log)")
        except BaseException:
            groups.kill()
            raise
        return groups

    async def results(self) -> list[dict[str, Any]]:
        found = []
        for child in self.children:
            assert child.stdout is not None
            out, _ = await child.communicate()
            if child.returncode != 0 or not out.strip():
                raise RuntimeError(f"a client group exited with {child.returncode}")
            found.append(json.loads(out.decode().strip().splitlines()[-1]))
        return found

    def kill(self) -> None:
        for child in self.children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()


def summarise(name: str, found: list[dict[str, Any]]) -> FanoutResult:
    latencies = [v for r in found for v in r["latencies_ms"]]
    return FanoutResult(name, sum(r["clients"] for r in found),
                        sum(r["subscribed"] for r in found), len(latencies),
                        sum(r["missing"] for r in found), percentile(latencies, 0.5),
                        percentile(latencies, 0.95), percentile(latencies, 0.99))


async def fanout_camcount(stack: Stack, config: FanoutConfig, say: Say) -> FanoutResult:
    async with short_lived_engine(stack.database_url) as engine:
        async with engine.begin() as conn:
            await conn.execute(insert(cameras).values(
                id=CAMERA, name=CAMERA, site="bench", region=REGION, enabled=False,
                url="rtsp://camera.invalid/fanout").on_conflict_do_nothing())
        say(f"[fanout camcount] {config.clients} tickets")
        urls = [await stack.ws_url() for _ in range(config.clients)]
        groups = await ClientGroups.start(urls, stack.origin, config, stack.config.log_dir,
                                          "camcount")
        try:
            say(f"[fanout camcount] {config.clients} clients subscribed; {config.events} "
                f"events at {config.rate_per_s:g}/s")
            async for seq in paced(config.events, config.rate_per_s):
                async with engine.begin() as conn:
                    await conn.execute(outbox.insert().values(
                        camera_id=CAMERA, region=REGION, topic="counts",
                        payload=payload(seq, time.time())))
                    await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            result = summarise("camcount", await groups.results())
        finally:
            groups.kill()
    return result


async def fanout_bare(config: FanoutConfig, log_dir: Path, say: Say) -> FanoutResult:
    port = free_port()
    server = processes.spawn("bare-ws", [
        sys.executable, "-m", "bench.load.bare_ws", "--port", str(port), "--clients",
        str(config.clients), "--events", str(config.events), "--rate", str(config.rate_per_s),
    ], {}, log_dir / "bare-ws.log")
    try:
        await _listening(port, server)
        urls = [f"ws://127.0.0.1:{port}/"] * config.clients
        groups = await ClientGroups.start(urls, None, config, log_dir, "bare")
        try:
            say(f"[fanout bare] {config.clients} clients subscribed; {config.events} events at "
                f"{config.rate_per_s:g}/s")
            result = summarise("bare websockets", await groups.results())
        finally:
            groups.kill()
    finally:
        await asyncio.to_thread(processes.stop, [server])
    return result


async def _listening(port: int, child: processes.Child) -> None:
    async with asyncio.timeout(30):
        while True:
            if not child.alive:
                raise RuntimeError(f"the bare server exited with {child.proc.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.1)
