"""Runs one camera pipeline in-process over real RTSP, PostgreSQL and RabbitMQ, holding a real
lease row, and reads back what it recorded: statuses, their history, gaps and batches."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.messages import BatchHeaders
from contracts.tables import camera_events, camera_leases, cameras, coverage_gaps
from infra import amqp
from infra.runner import cancel_and_wait
from ingest.cameras import enabled_cameras
from ingest.leases import LocalLease
from ingest.pipeline import CameraPipeline
from ingest.publisher import ConnectionLink
from ingest.settings import IngestSettings
from ingest.status_store import StatusBoard
from simulator.mounts import SimulatorSettings, parse_mount
from simulator.rtsp_server import serve
from tests.conftest import Isolated

StartPipeline = Callable[..., contextlib.AbstractAsyncContextManager["Running"]]

NODE = "node-health"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def simulator(port: int, mount: str) -> AsyncIterator[None]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(SimulatorSettings(port=port, mounts=(parse_mount(mount),)),
                                     ready=ready.set_result))
    await asyncio.wait_for(ready, 30)
    try:
        yield
    finally:
        await cancel_and_wait(task)


@dataclass
class Running:
    pipeline: CameraPipeline
    engine: AsyncEngine
    connection: AbstractRobustConnection

    async def until(self, what: str, check: Callable[[], bool], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                health = self.pipeline.health
                raise AssertionError(f"timed out waiting for {what}: status {health.status} "
                                     f"({health.reason})")
            await asyncio.sleep(0.05)

    async def status_history(self) -> list[str]:
        await self.pipeline.board.flush()
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.select(camera_events.c.status)
                                            .order_by(camera_events.c.id))).scalars())

    async def gaps(self) -> list[tuple[str, bool, str]]:
        await self.pipeline.board.flush()
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(coverage_gaps).order_by(coverage_gaps.c.id))
            return [(r.reason, r.ended_at is not None, r.detail) for r in rows]

    async def batches(self) -> list[BatchHeaders]:
        return [headers for headers, _ in await self.messages()]

    async def messages(self) -> list[tuple[BatchHeaders, bytes]]:
        """Takes what is in frames.ingress now (acknowledged: a later call sees only newer)."""
        channel = await self.connection.channel()
        queue = await channel.declare_queue(broker.FRAMES_INGRESS, passive=True)
        out = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            out.append((BatchHeaders.from_amqp(message.headers), message.body))
        await channel.close()
        return out


@pytest.fixture
async def camera_pipeline(isolated: Isolated, engine: AsyncEngine,
                ) -> AsyncIterator[StartPipeline]:
    connection = await amqp.connect(isolated.rabbitmq_url, "health-test")
    channel = await connection.channel(publisher_confirms=True)
    await amqp.declare_frames_topology(channel)

    @contextlib.asynccontextmanager
    async def run(url: str, camera: dict[str, object] | None = None,
                  **overrides: float) -> AsyncIterator[Running]:
        columns = {"target_fps": 5, "batch_frames": 5, **(camera or {})}
        async with engine.begin() as conn:
            await conn.execute(cameras.insert().values(id="cam", name="cam", url=url, **columns))
            await conn.execute(camera_leases.insert().values(
                camera_id="cam", node_id=NODE, token=1,
                expires_at=datetime.now(UTC) + timedelta(hours=1)))
        spec = (await enabled_cameras(engine))["cam"]
        settings = IngestSettings.model_validate({
            "database_url": isolated.database_url, "rabbitmq_url": isolated.rabbitmq_url,
            "node_id": NODE, "reconnect_initial_s": 0.2, "reconnect_max_s": 0.5,
            "rtsp_timeout_s": 3, **overrides})
        board = StatusBoard(engine, NODE, None)
        writer = asyncio.create_task(board.run())
        fence = LocalLease("cam", NODE, 1, time.monotonic() + 3600)
        pipeline = CameraPipeline(spec, settings, engine,
                                  ConnectionLink(connection, channel.default_exchange), fence,
                                  board)
        task = asyncio.create_task(pipeline.run())
        try:
            yield Running(pipeline, engine, connection)
        finally:
            await cancel_and_wait(task)
            await cancel_and_wait(writer)

    yield run
    await connection.close()
