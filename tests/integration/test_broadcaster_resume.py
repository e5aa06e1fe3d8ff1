"""The broadcaster's delivery guarantees against a real PostgreSQL and RabbitMQ: resume after a
reconnect with no gap and no duplicate (also while events keep coming), event_seq rising even
when transactions commit out of id order, and a slow client dropped while others get all."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from broadcaster.events import OutboxRow, build
from broadcaster.service import Broadcaster
from contracts.tables import outbox
from tests.conftest import Isolated
from tests.integration.broadcaster_rig import (
    ORIGIN,
    add_camera,
    client,
    counts_row,
    insert_rows,
    receive,
    running,
    subscribe,
    ticket,
    url,
    write,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(180)
RECONNECTS = 100


@pytest.fixture
async def broadcaster(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[Broadcaster]:
    for camera_id, site in (("a1", "shop-a"), ("a2", "shop-a"), ("b1", "shop-b")):
        await add_camera(engine, camera_id, site, "north")
    async with running(isolated, relay_batch=50, client_queue_size=100) as b:
        yield b


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["event_seq"]) for m in messages]


async def test_a_resumed_client_gets_exactly_what_it_missed_then_live(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    async with client(broadcaster, "shop-a") as ws:
        await subscribe(ws, cameras=["a1"])
        before = [(await write(engine, counts_row("a1", "north", n)))[0] for n in range(3)]
        got = await receive(ws, lambda got: len(got) >= 3)
        assert seqs(got) == before
    missed = []
    for n in range(3, 9):  # while away: its camera, another of its site, another site's
        missed += await write(engine, counts_row("a1", "north", n))
        await write(engine, counts_row("a2", "north", n), counts_row("b1", "north", n))
    async with client(broadcaster, "shop-a") as ws:
        answer = await subscribe(ws, cameras=["a1"], resume_from=before[-1])
        assert answer["type"] == "subscribed" and answer["replayed"] == len(missed)
        assert seqs(answer["events"]) == missed
        live = await write(engine, counts_row("a1", "north", 9))
        assert seqs(await receive(ws, lambda got: len(got) >= 1)) == live


async def test_resuming_while_events_keep_coming_has_no_gap_and_no_duplicate(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    """The hand-over from replay to live, raced many times: a writer commits all along while
    the client keeps reconnecting from the last event it received."""
    written: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            written.extend(await write(engine, counts_row("a1", "north", n),
                                       counts_row("b1", "north", n)))
            n += 1

    task = asyncio.create_task(writer())
    received: list[int] = []
    try:
        async with client(broadcaster, "shop-a") as ws:
            await subscribe(ws, cameras="*")
            received += seqs(await receive(ws, lambda got: len(got) >= 5))
        for _ in range(RECONNECTS):
            async with client(broadcaster, "shop-a") as ws:
                answer = await subscribe(ws, cameras="*", resume_from=received[-1])
                received += seqs(answer["events"])
                received += seqs(await receive(ws, lambda got: len(got) >= 3))
    finally:
        stop.set()
        await task
    mine = [s for i, s in enumerate(written) if i % 2 == 0]  # a1's; b1 is another site's
    assert received == mine[: len(received)], "a gap, a duplicate or another site's event"
    assert len(received) >= 5 + RECONNECTS * 3


async def test_a_row_committed_but_not_yet_queued_live_is_left_to_the_live_path(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    """The relay's commit is visible before the relay hands its events to the hub: a replay in
    between must not send such a row too (it would arrive twice)."""
    async with client(broadcaster, "shop-a") as ws:
        await subscribe(ws, cameras=["a1"])
        seen = await write(engine, counts_row("a1", "north", 1))
        await receive(ws, lambda got: len(got) >= 1)
    row = counts_row("a1", "north", 2)
    async with engine.begin() as conn:  # as the relay commits it, and not a step further
        seq = int((await conn.execute(outbox.insert().values(**row, published_at=func.now())
                                      .returning(outbox.c.id))).scalar_one())
    broadcaster.hub.begin([seq])
    async with client(broadcaster, "shop-a") as ws:
        answer = await subscribe(ws, cameras=["a1"], resume_from=seen[0])
        assert (answer["replayed"], answer["events"]) == (0, [])
        broadcaster.hub.publish([build(OutboxRow(seq, "counts", "a1", "north", row["payload"]),
                                       "shop-a")])
        assert seqs(await receive(ws, lambda got: len(got) >= 1)) == [seq]


async def test_event_seq_rises_when_transactions_commit_out_of_id_order(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    async with client(broadcaster, "shop-a") as ws:
        await subscribe(ws, cameras=["a1"])
        async with engine.connect() as slow_conn:
            slow_tx = await slow_conn.begin()
            first = await insert_rows(slow_conn, [counts_row("a1", "north", 1)])
            second = await write(engine, counts_row("a1", "north", 2))  # commits first
            assert second[0] > first[0]
            # The relay has seen the later row and holds it behind the missing id.
            assert broadcaster.sequencer is not None
            sequencer = broadcaster.sequencer
            await eventually(lambda: _value(sequencer.waiting), bool)
            await slow_tx.commit()
        assert seqs(await receive(ws, lambda got: len(got) >= 2)) == first + second

        async with engine.connect() as aborted_conn:  # a rolled-back id never comes: go on
            aborted_tx = await aborted_conn.begin()
            await insert_rows(aborted_conn, [counts_row("a1", "north", 3)])
            third = await write(engine, counts_row("a1", "north", 4))
            await eventually(lambda: _value(sequencer.waiting), bool)
            await aborted_tx.rollback()
        assert seqs(await receive(ws, lambda got: len(got) >= 1)) == third


async def _value(value: bool) -> bool:
    return value


async def test_a_client_that_stops_reading_is_dropped_while_a_reader_gets_everything(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    # A tiny receive buffer so the stalled client's TCP window fills after little data.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the window is agreed
    sock.connect(("127.0.0.1", broadcaster.port or 0))
    stalled = await connect(url(broadcaster, f"?ticket={ticket('shop-a')}"), sock=sock,
                            origin=Origin(ORIGIN), max_queue=1, compression=None,
                            ping_interval=None)
    async with client(broadcaster, "shop-a") as reader:
        for ws in (stalled, reader):
            assert (await subscribe(ws, cameras=["a1"]))["type"] == "subscribed"
        written: list[int] = []
        received: list[int] = []
        for step in range(400):  # 40 events of ~2 KB a step: a client reading keeps up
            async with engine.begin() as conn:
                written += await insert_rows(conn, [_fat_row(step * 40 + i) for i in range(40)])
            got = await receive(reader, lambda got: len(got) >= 40)
            received += seqs(got)
            if len(broadcaster.hub.clients) < 2:
                break
        assert len(broadcaster.hub.clients) == 1, "the stalled client was never dropped"
        # It reads again, at once (the server waits close_timeout for its close handshake):
        # what was on its way, then the close.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                json.loads(await asyncio.wait_for(stalled.recv(), 30))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert received == written
        more = await write(engine, counts_row("a1", "north", 0))
        assert seqs(await receive(reader, lambda got: len(got) >= 1)) == more


def _fat_row(n: int) -> dict[str, Any]:
    row = counts_row("a1", "north", n)
    row["payload"]["totals"] = {f"{i}:in:person": n for i in range(100)}
    return row
