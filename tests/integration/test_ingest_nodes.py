"""Several ingest nodes sharing cameras through leases, against the real simulator, RabbitMQ
and PostgreSQL: a joining node takes half, a SIGKILLed node's cameras move within the lease
time, no camera is ever read by two nodes at once, and a node refuses cameras beyond its
capacity with a status that says why."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.messages import BatchHeaders
from contracts.tables import camera_events, camera_leases, camera_status, cameras, ingest_nodes
from ingest.service import Ingest
from ingest.settings import IngestSettings
from simulator.mounts import MountSpec
from tests.conftest import Isolated
from tests.integration.recording_simulator import RecordingSimulator, recording_simulator
from tests.integration.roles import Fleet
from tests.support import eventually

pytestmark = pytest.mark.slow

TTL_S = 3.0
N_CAMERAS = 10
TEARDOWN_DELAY_S = 1.0  # below the RTSP client's 2 s wait for the TEARDOWN's answer
NODE_ENV = {"LEASE_TTL_S": str(TTL_S), "LEASE_RENEW_S": "0.5", "CAMERA_POLL_S": "0.3",
            "LEASE_MAX_RELEASES": "2", "INGEST_CAPACITY": "10", "LOG_LEVEL": "INFO"}
T = TypeVar("T")


@contextlib.asynccontextmanager
async def simulator(names: list[str]) -> AsyncIterator[tuple[RecordingSimulator, int]]:
    specs = [MountSpec(name=n, seed=i, fps=5, width=160, height=100, loop=True)
             for i, n in enumerate(names)]
    async with recording_simulator(specs) as served:
        yield served


@contextlib.asynccontextmanager
async def slow_teardown_proxy(target_port: int) -> AsyncIterator[int]:
    """A TCP proxy in front of the simulator that holds each RTSP TEARDOWN back for
    TEARDOWN_DELAY_S: a node that handed a camera over before its TEARDOWN was through (or
    did not wait for it) would then overlap with the next node's session."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   hold_teardown: bool) -> None:
        try:
            while data := await reader.read(65536):
                if hold_teardown and b"TEARDOWN " in data:
                    await asyncio.sleep(TEARDOWN_DELAY_S)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(listener.sockets[0].getsockname()[1])
    finally:
        listener.close()


async def add_cameras(engine: AsyncEngine, port: int, names: list[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert(), [
            {"id": n, "name": n, "url": f"rtsp://127.0.0.1:{port}/{n}", "target_fps": 2,
             "batch_frames": 2, "batch_ms": 1000} for n in names])


async def current(read: Callable[[], T]) -> T:
    """A synchronous reading as an awaitable, for `eventually`."""
    return read()


async def leases(fleet: Fleet, node: str) -> dict[str, int]:
    return dict((await fleet.health(node)).get("leases", {}))


async def test_two_nodes_share_ten_cameras_and_fail_over_without_reading_one_twice(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    names = [f"cam{i}" for i in range(N_CAMERAS)]
    batches: list[tuple[float, BatchHeaders]] = []

    async def on_batch(message: AbstractIncomingMessage) -> None:
        batches.append((time.monotonic(), BatchHeaders.from_amqp(message.headers)))

    ingress = await channel.get_queue(broker.FRAMES_INGRESS)
    await ingress.consume(on_batch, no_ack=True)

    def cameras_since(t: float) -> set[str]:
        return {h.camera_id for at, h in batches if at >= t}

    async with simulator(names) as (sim, sim_port), slow_teardown_proxy(sim_port) as port:
        await add_cameras(engine, port, names)
        fleet.start("a", "ingest", {**NODE_ENV, "NODE_ID": "a"})
        await eventually(lambda: leases(fleet, "a"), lambda held: len(held) == N_CAMERAS,
                         timeout_s=60)
        await eventually(lambda: current(sim.playing), lambda p: p == set(names),
                         timeout_s=30)

        # A node joins: the first hands half over, stopping each camera before releasing it.
        fleet.start("b", "ingest", {**NODE_ENV, "NODE_ID": "b"})
        shares = await eventually(
            lambda: asyncio.gather(leases(fleet, "a"), leases(fleet, "b")),
            lambda held: len(held[0]) == len(held[1]) == N_CAMERAS // 2, timeout_s=60)
        assert set(shares[0]) | set(shares[1]) == set(names)
        balanced = time.monotonic()
        await eventually(lambda: current(lambda: cameras_since(balanced)),
                         lambda seen: seen == set(names), timeout_s=30)

        # B dies without a word: A takes its cameras once their leases expire.
        fleet.signal("b", signal.SIGKILL)
        killed = time.monotonic()
        await eventually(lambda: leases(fleet, "a"), lambda held: len(held) == N_CAMERAS,
                         timeout_s=TTL_S + 10, interval_s=0.05)
        taken = time.monotonic()
        failover_s = taken - killed
        moved = await leases(fleet, "a")
        assert all(moved[c] > shares[1][c] for c in shares[1]), "tokens must rise on takeover"
        await eventually(lambda: current(lambda: cameras_since(taken)),
                         lambda seen: seen == set(names), timeout_s=30)
        print(f"failover took {failover_s:.2f} s (lease {TTL_S} s); "
              f"{len(sim.sessions)} sessions played")
        assert failover_s <= TTL_S + 1.0

        # No mount was ever played to two clients at once: each session ended (TEARDOWN, or
        # the dead node's connection closing) before the next one was played.
        spans = sim.intervals()
        for mount, mount_spans in spans.items():
            for (_, end), (start, _) in itertools.pairwise(mount_spans):
                assert end <= start, f"{mount} read twice at once: {mount_spans}"
        assert sum(len(s) > 1 for s in spans.values()) >= N_CAMERAS // 2  # hand-offs happened

        # The moved cameras' batches carry new stream epochs: any late batch of B's is older
        # and the worker records it as an out-of-order gap instead of counting it.
        for camera in shares[1]:
            old = max(h.stream_epoch for at, h in batches if at < killed and h.camera_id == camera)
            new = min(h.stream_epoch for at, h in batches if at >= taken and h.camera_id == camera)
            assert new > old, (camera, old, new)


async def test_a_full_node_refuses_cameras_with_a_status_and_follows_the_api_live(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert(), [
            {"id": f"c{i}", "name": f"c{i}", "url": "rtsp://127.0.0.1:9/none"} for i in range(3)])
    settings = IngestSettings(
        rabbitmq_url=isolated.rabbitmq_url, database_url=isolated.database_url, node_id="solo",
        ingest_capacity=2, lease_ttl_s=TTL_S, camera_poll_s=0.2, reconnect_initial_s=5)
    node = Ingest(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    try:
        health = await eventually(lambda: current(node.health),
                                  lambda h: len(h["leases"]) == 2 and h["unassigned"],
                                  timeout_s=30)
        (refused,) = health["unassigned"]
        assert set(health["leases"]) == {"c0", "c1", "c2"} - {refused}
        row = await eventually(lambda: _status(engine, refused),
                               lambda r: r is not None and r[0] == "unassigned", timeout_s=10)
        assert row is not None
        assert row[1].startswith("all 1 ingest nodes are at capacity (total 2)"), row
        async with engine.connect() as conn:
            events = (await conn.execute(select(camera_events.c.status, camera_events.c.node_id)
                                         .where(camera_events.c.camera_id == refused))).all()
        assert [tuple(e) for e in events] == [("unassigned", "solo")]

        # Disabling a camera through the API frees room: the refused one is taken, no restart.
        leased = sorted(health["leases"])[0]
        async with engine.begin() as conn:
            await conn.execute(update(cameras).where(cameras.c.id == leased)
                               .values(enabled=False))
        await eventually(lambda: current(node.health),
                         lambda h: refused in h["leases"] and leased not in h["leases"]
                         and not h["unassigned"], timeout_s=10)
        await eventually(lambda: _status(engine, refused),
                         lambda r: r is not None and r[0] != "unassigned", timeout_s=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    async with engine.connect() as conn:
        assert (await conn.execute(select(ingest_nodes))).all() == []
        live = (await conn.execute(select(camera_leases.c.camera_id).where(
            camera_leases.c.expires_at > func.now()))).all()
    assert live == [], "a graceful stop releases every lease"


async def _status(engine: AsyncEngine, camera_id: str) -> tuple[str, str] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(camera_status.c.status, camera_status.c.reason)
                                  .where(camera_status.c.camera_id == camera_id))).first()
    return (row.status, row.reason) if row else None
