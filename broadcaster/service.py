"""Broadcaster wiring: LISTEN for commits, relay the outbox, serve WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from websockets.asyncio.server import ServerConnection, serve

from broadcaster.hub import Hub
from broadcaster.relay import relay_once
from broadcaster.settings import BroadcasterSettings
from broadcaster.websocket import Connection
from contracts import broker
from contracts.tables import OUTBOX_CHANNEL
from infra import amqp, db, ops

log = logging.getLogger("camcount.broadcaster")


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


class Broadcaster:
    def __init__(self, settings: BroadcasterSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.hub = Hub()
        self.relaying = False
        self.relayed = 0

    def health(self) -> dict[str, Any]:
        return {"ok": self.relaying, "clients": len(self.hub.clients), "relayed": self.relayed}

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, "broadcaster")
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        wake = asyncio.Event()
        listener = await asyncpg.connect(asyncpg_dsn(self.settings.database_url))
        await listener.add_listener(OUTBOX_CHANNEL, lambda *_: wake.set())
        try:
            channel = await connection.channel()
            exchange = await amqp.declare_exchange(channel, broker.RESULTS_COUNTS_EXCHANGE)

            async def on_connect(ws: ServerConnection) -> None:
                await Connection(ws, self.hub, self.engine, self.settings.client_queue_size).serve()

            async with (
                serve(on_connect, self.settings.ws_host, self.settings.ws_port,
                      max_size=self.settings.max_message_bytes) as ws_server,
                asyncio.TaskGroup() as tg,
            ):
                tg.create_task(server.serve())
                relay = tg.create_task(self._relay(exchange, wake, stop))
                port = next(iter(ws_server.sockets)).getsockname()[1]
                log.info("broadcaster ready ws://%s:%s/ws", self.settings.ws_host, port)
                await stop.wait()
                wake.set()
                await relay
                server.should_exit = True
        finally:
            await listener.close()
            await connection.close()
            await self.engine.dispose()

    async def _relay(self, exchange: Any, wake: asyncio.Event, stop: asyncio.Event) -> None:
        self.relaying = True
        while not stop.is_set():
            wake.clear()
            try:
                updates = await relay_once(self.engine, exchange, self.hub,
                                           self.settings.relay_batch)
            except Exception:
                log.exception("outbox relay failed; retrying")
                updates = []
            self.relayed += len(updates)
            if len(updates) == self.settings.relay_batch:
                continue  # more waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.settings.poll_interval_s)
