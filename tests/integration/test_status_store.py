"""The status board against real PostgreSQL and RabbitMQ: rows, history, events and gaps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.messages import CameraStatusMessage
from contracts.tables import camera_events, camera_status, cameras, coverage_gaps
from infra import amqp
from infra.runner import cancel_and_wait
from ingest.health import GapClosed, GapOpened, StatusChange
from ingest.status_store import StatusBoard

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def events(channel: AbstractChannel) -> AsyncIterator[AbstractQueue]:
    exchange = await amqp.declare_exchange(
        channel, next(e for e in broker.EXCHANGES if e.name == broker.REGISTRY_EVENTS))
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="camera.#")
    yield queue


async def messages(queue: AbstractQueue) -> list[CameraStatusMessage]:
    out = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        out.append(CameraStatusMessage.model_validate_json(message.body))
    return out


async def test_changes_are_stored_with_history_events_and_gaps(
    engine: AsyncEngine, channel: AbstractChannel, events: AbstractQueue,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(id="c1", name="c1", url="rtsp://x/c1"))
    exchange = await channel.get_exchange(broker.REGISTRY_EVENTS)
    board = StatusBoard(engine, "node-a", exchange)
    writer = asyncio.create_task(board.run())
    try:
        board.apply("c1", 1, [StatusChange("connecting", None, "opening", 100.0)])
        board.apply("c1", 1, [StatusChange("live", "connecting", "frames moving", 101.0)])
        board.refresh("c1", 105.0, {"decoded": 125.0})
        board.apply("c1", 1, [StatusChange("stalled", "live", "no frame for 5 s", 110.0),
                              GapOpened(105.0, "stalled: no frame for 5 s")])
        board.apply("c1", 2, [GapClosed(120.0),
                              StatusChange("live", "stalled", "frames moving", 120.5)])
        # A new reason alone updates the row but keeps "since" and records no event.
        board.apply("c1", 2, [StatusChange("live", "live", "still moving", 121.0)])
        board.dropped("c1", 2, 130.0, 131.0, "5 frames in 1 batches: broker blocked")
        await board.flush()
    finally:
        await cancel_and_wait(writer)

    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(camera_status))).one()
        history = (await conn.execute(
            sa.select(camera_events.c.status, camera_events.c.previous)
            .order_by(camera_events.c.id))).all()
        gaps = (await conn.execute(
            sa.select(coverage_gaps).order_by(coverage_gaps.c.started_at))).all()
    assert (row.status, row.reason, row.since.timestamp(), row.node_id) == (
        "live", "still moving", 120.5, "node-a")
    assert row.last_frame_at.timestamp() == 105.0
    assert (row.stats if isinstance(row.stats, dict) else json.loads(row.stats)) == {
        "decoded": 125.0}
    assert history == [("connecting", None), ("live", "connecting"), ("stalled", "live"),
                       ("live", "stalled")]
    assert [(g.reason, g.started_at.timestamp(), g.ended_at.timestamp(), g.seq_from)
            for g in gaps] == [("camera_down", 105.0, 120.0, None),
                               ("dropped", 130.0, 131.0, None)]
    sent = await messages(events)
    assert [(m.status, m.previous) for m in sent] == history
    assert all(m.node_id == "node-a" and m.camera_id == "c1" for m in sent)


async def test_adopt_reads_where_the_last_holder_left_off(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(id="c2", name="c2", url="rtsp://x/c2"))
    board = StatusBoard(engine, "node-b")
    assert (await board.adopt("c2")).last_frame_at is None
    writer = asyncio.create_task(board.run())
    try:
        board.apply("c2", 1, [StatusChange("live", None, "frames moving", 50.0)])
        board.refresh("c2", 55.0, {})
        board.apply("c2", 1, [StatusChange("unreachable", "live", "refused", 60.0),
                              GapOpened(55.0, "unreachable: refused")])
        await board.flush()
    finally:
        await cancel_and_wait(writer)
    adopted = await board.adopt("c2")
    assert (adopted.last_frame_at, adopted.gap_open) == (55.0, True)


async def test_a_deleted_camera_does_not_wedge_the_writer(engine: AsyncEngine) -> None:
    board = StatusBoard(engine, "node-c")
    writer = asyncio.create_task(board.run())
    try:
        board.apply("gone", 1, [StatusChange("live", None, "frames moving", 1.0)])
        board.announce("also-gone", "unassigned", "no room")
        await board.flush()
    finally:
        await cancel_and_wait(writer)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(camera_status))
                ).scalar_one() == 0
