"""The broadcaster in-process on the test's database and vhost, WebSocket clients with
tickets, and outbox rows written the way workers and the alert evaluator write them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from broadcaster.service import Broadcaster
from broadcaster.settings import BroadcasterSettings
from contracts import tickets
from contracts.tables import OUTBOX_CHANNEL, cameras, outbox
from infra.runner import cancel_and_wait
from tests.conftest import Isolated

SECRET = secrets.token_urlsafe(32)
ORIGIN = "http://dashboard.test:8080"


@contextlib.asynccontextmanager
async def running(isolated: Isolated, **overrides: Any) -> AsyncIterator[Broadcaster]:
    settings = BroadcasterSettings(
        rabbitmq_url=isolated.rabbitmq_url, database_url=isolated.database_url, ws_port=0,
        ops_port=0, ws_ticket_secret=SECRET, allowed_origins=[ORIGIN], poll_interval_s=0.2,
        **overrides)
    broadcaster = Broadcaster(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(broadcaster.run(stop))
    ready = asyncio.create_task(broadcaster.ready.wait())
    await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        await cancel_and_wait(ready)
        await (task if task.done() else cancel_and_wait(task))
        raise AssertionError("the broadcaster did not start")
    try:
        yield broadcaster
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def ticket(site: str = "*", *, role: str = "viewer", key_id: str = "k-test",
           secret: str = SECRET, ttl_s: float = 60, now: float | None = None) -> str:
    token, _ = tickets.issue(secret, key_id=key_id, role=role, site=site,
                             now=time.time() if now is None else now, ttl_s=ttl_s)
    return token


def url(broadcaster: Broadcaster, query: str = "", path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{broadcaster.port}{path}{query}"


@contextlib.asynccontextmanager
async def client(broadcaster: Broadcaster, site: str = "*", *, origin: str | None = ORIGIN,
                 **options: Any) -> AsyncIterator[ClientConnection]:
    """A connected client past its hello."""
    async with connect(url(broadcaster, f"?ticket={ticket(site)}"),
                       origin=None if origin is None else Origin(origin), **options) as ws:
        hello = json.loads(await ws.recv())
        assert hello == {"type": "hello", "site": site}
        yield ws


async def subscribe(ws: ClientConnection, **message: Any) -> dict[str, Any]:
    """Subscribe; the answer ("subscribed" or "error"). Replayed events before a "subscribed"
    are left in `replayed` of the answer."""
    await ws.send(json.dumps({"op": "subscribe", **message}))
    replayed: list[dict[str, Any]] = []
    while True:
        answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if answer["type"] in ("subscribed", "error"):
            return {**answer, "events": replayed}
        replayed.append(answer)


async def receive(ws: ClientConnection, until: Callable[[list[dict[str, Any]]], bool],
                  timeout_s: float = 30) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while not until(got):
            got.append(json.loads(await ws.recv()))
    return got


async def add_camera(engine: AsyncEngine, camera_id: str, site: str, region: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(id=camera_id, name=camera_id, site=site,
                                                   region=region, url="rtsp://camera.invalid/x"))


def counts_row(camera_id: str, region: str, n: int = 1) -> dict[str, Any]:
    now = time.time()
    return {"camera_id": camera_id, "region": region, "topic": "counts",
            "payload": {"batch_id": f"{camera_id}:1:{n}", "captured_at": now,
                        "committed_at": now, "delta": {"1:in:person": 1},
                        "totals": {"1:in:person": n}, "occupancy": {}}}


def alert_row(site: str | None, camera_id: str | None, region: str | None,
              name: str = "busy") -> dict[str, Any]:
    now = time.time()
    return {"camera_id": camera_id, "region": region, "topic": "alerts",
            "payload": {"alert_id": 1, "rule_id": 1, "rule_name": name,
                        "kind": "count_over" if camera_id else "worker_down",
                        "state": "firing", "site": site, "camera_id": camera_id,
                        "region": region, "subject": camera_id or "w-1", "message": name,
                        "value": 5.0, "threshold": 3.0, "at": now, "fired_at": now}}


async def insert_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[int]:
    ids = [int((await conn.execute(outbox.insert().values(**row).returning(outbox.c.id)))
               .scalar_one()) for row in rows]
    await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return ids


async def write(engine: AsyncEngine, *rows: dict[str, Any]) -> list[int]:
    """Commit outbox rows in one transaction, as an apply does; their event_seqs."""
    async with engine.begin() as conn:
        return await insert_rows(conn, list(rows))
