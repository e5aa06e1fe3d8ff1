"""The broadcaster's WebSocket against a real PostgreSQL and RabbitMQ: who may connect
(tickets, Origin), frame limits, site-scoped subscriptions by camera and region, alerts."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.typing import Origin

from broadcaster.service import Broadcaster
from contracts import broker
from infra import amqp
from tests.conftest import Isolated
from tests.integration.broadcaster_rig import (
    ORIGIN,
    add_camera,
    alert_row,
    client,
    counts_row,
    receive,
    running,
    subscribe,
    ticket,
    url,
    write,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def broadcaster(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[Broadcaster]:
    for camera_id, site, region in (("a1", "shop-a", "north"), ("a2", "shop-a", "south"),
                                    ("b1", "shop-b", "north")):
        await add_camera(engine, camera_id, site, region)
    async with running(isolated) as b:
        yield b


async def upgrade_status(address: str, origin: str | None = ORIGIN) -> int:
    try:
        async with connect(address, origin=None if origin is None else Origin(origin)):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_an_upgrade_without_a_good_ticket_is_refused_401(
    broadcaster: Broadcaster, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="camcount.broadcaster.websocket")
    expired = ticket(now=time.time() - 120)
    forged = ticket(secret="x" * 40)
    cases = {"": 401, "?ticket=": 401, "?ticket=v1.abc.def": 401, f"?ticket={expired}": 401,
             f"?ticket={forged}": 401, f"?other={ticket()}": 401, f"?ticket={ticket()}": 101}
    for query, status in cases.items():
        assert await upgrade_status(url(broadcaster, query)) == status, query
    assert await upgrade_status(url(broadcaster, f"?ticket={ticket()}", path="/")) == 404
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "(401 Unauthorized)" in logged and "GET /ws?*** HTTP" in logged
    assert expired not in logged and "ticket=v1" not in logged


async def test_an_origin_not_allowed_is_refused_403(
    isolated: Isolated, broadcaster: Broadcaster,
) -> None:
    def good() -> str:  # a ticket is let in once: a fresh one for every attempt
        return url(broadcaster, f"?ticket={ticket()}")

    assert await upgrade_status(good(), origin="https://evil.example") == 403
    assert await upgrade_status(good(), origin="http://dashboard.test:8081") == 403
    assert await upgrade_status(good(), origin=ORIGIN) == 101
    # No Origin: not a browser; let in on its ticket alone (allow_no_origin, the default) ...
    assert await upgrade_status(good(), origin=None) == 101
    # ... but never without one.
    assert await upgrade_status(url(broadcaster), origin=None) == 401
    async with running(isolated, allow_no_origin=False) as strict:
        assert await upgrade_status(url(strict, f"?ticket={ticket()}"), origin=None) == 403


async def test_a_ticket_opens_one_connection_only(broadcaster: Broadcaster) -> None:
    once = url(broadcaster, f"?ticket={ticket()}")
    assert await upgrade_status(once, origin=ORIGIN) == 101
    assert await upgrade_status(once, origin=ORIGIN) == 401  # replayed, e.g. from a proxy log


async def test_an_oversized_frame_closes_the_connection_1009(broadcaster: Broadcaster) -> None:
    async with client(broadcaster) as ws:
        await ws.send(json.dumps({"op": "subscribe", "regions": ["x" * 70_000]}))
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_subscribe_messages_are_checked_and_bounded(broadcaster: Broadcaster) -> None:
    async with client(broadcaster) as ws:
        for message, error in (
            ({"cameras": [f"c{i}" for i in range(1001)]}, "at most 1000 cameras and regions"),
            ({"cameras": "all"}, "cameras"),
            ({"resume_from": -1}, "resume_from"),
            ({"camera": ["a1"]}, "camera"),
        ):
            answer = await subscribe(ws, **message)
            assert answer["type"] == "error" and error in answer["message"], answer
        await ws.send("not json")
        assert json.loads(await ws.recv())["type"] == "error"
        assert (await subscribe(ws, cameras=["a1"]))["type"] == "subscribed"


async def test_another_sites_camera_reads_as_unknown_and_its_events_never_arrive(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    async with client(broadcaster, "shop-a") as ws:
        other = await subscribe(ws, cameras=["a1", "b1"])
        unknown = await subscribe(ws, cameras=["a1", "zz"])
        assert other == {"type": "error", "message": "no camera 'b1'", "events": []}
        assert unknown == {"type": "error", "message": "no camera 'zz'", "events": []}
        answer = await subscribe(ws, cameras="*")
        assert answer["cameras"] == "*" and answer["alerts"] is True

        await write(engine, counts_row("b1", "north"), alert_row("shop-b", "b1", "north"),
                    alert_row(None, None, None, "fleet"))
        mine = await write(engine, counts_row("a1", "north"), alert_row("shop-a", "a1", "north"))
        got = await receive(ws, lambda got: len(got) >= 2)
        assert [(m["type"], m["event_seq"]) for m in got] == [("counts", mine[0]),
                                                               ("alert", mine[1])]
        assert got[1]["site"] == "shop-a"


async def test_a_ticket_of_every_site_sees_every_site_and_fleet_alerts(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    async with client(broadcaster, "*") as ws:
        assert (await subscribe(ws, cameras=["a1", "b1"]))["type"] == "subscribed"
        seqs = await write(engine, counts_row("b1", "north"), counts_row("a2", "south"),
                           alert_row(None, None, None, "fleet"), counts_row("a1", "north"))
        got = await receive(ws, lambda got: len(got) >= 3)
        assert [(m["type"], m["event_seq"]) for m in got] == [
            ("counts", seqs[0]), ("alert", seqs[2]), ("counts", seqs[3])]


async def test_region_subscriptions_stay_within_the_site(
    broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    async with client(broadcaster, "shop-a") as ws:
        answer = await subscribe(ws, regions=["north"], alerts=False)
        assert (answer["cameras"], answer["regions"]) == ([], ["north"])
        seqs = await write(engine, counts_row("a2", "south"), counts_row("b1", "north"),
                           alert_row("shop-a", "a1", "north"), counts_row("a1", "north"))
        got = await receive(ws, lambda got: len(got) >= 1)
        assert [m["event_seq"] for m in got] == [seqs[3]]
        # A camera created after the broadcaster started is found: a miss re-reads the table
        # (at most every camera_miss_refresh_s).
        await add_camera(engine, "a3", "shop-a", "north")
        await eventually(lambda: subscribe(ws, cameras=["a3"]),
                         lambda answer: answer["type"] == "subscribed", timeout_s=10)


async def test_alerts_are_relayed_to_results_alerts_and_to_clients(
    isolated: Isolated, broadcaster: Broadcaster, engine: AsyncEngine,
) -> None:
    connection = await amqp.connect(isolated.rabbitmq_url, "test-alerts")
    async with connection:
        channel = await connection.channel()
        exchange = await amqp.declare_exchange(channel, broker.RESULTS_ALERTS_EXCHANGE)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        async with client(broadcaster, "*") as ws:
            await subscribe(ws, cameras=[])
            seqs = await write(engine, counts_row("a1", "north"),
                               alert_row("shop-a", "a1", "north"),
                               alert_row(None, None, None, "fleet"))
            got = await receive(ws, lambda got: len(got) >= 2)
        assert [(m["type"], m["event_seq"], m["rule_name"]) for m in got] == [
            ("alert", seqs[1], "busy"), ("alert", seqs[2], "fleet")]
        messages: list[aio_pika.abc.AbstractIncomingMessage] = []
        async with asyncio.timeout(30):
            while len(messages) < 2:
                message = await queue.get(fail=False, no_ack=True)
                if message is None:
                    await asyncio.sleep(0.05)
                else:
                    messages.append(message)
    assert [(m.routing_key, m.message_id) for m in messages] == [
        ("north.a1", str(seqs[1])), ("_fleet._fleet", str(seqs[2]))]
    body = json.loads(messages[0].body)
    assert body["event_seq"] == seqs[1] and "type" not in body and body["state"] == "firing"
