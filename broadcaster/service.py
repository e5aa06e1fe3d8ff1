"""Broadcaster wiring: LISTEN for commits, relay the outbox, serve WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from websockets.asyncio.server import ServerConnection, serve

from broadcaster.cameras import CameraDirectory, table_loader
from broadcaster.handshake import Gate, origins, websocket_logger
from broadcaster.hub import Hub
from broadcaster.relay import Relay, first_watermark
from broadcaster.sequencer import Sequencer
from broadcaster.settings import BroadcasterSettings
from broadcaster.websocket import Connection
from contracts import broker
from contracts.tables import OUTBOX_CHANNEL
from infra import amqp, db, ops
from infra.runner import shutdown_step

log = logging.getLogger("camcount.broadcaster")

# While rows wait behind a missing outbox id, how often to look whether it has settled.
GAP_POLL_S = 0.02


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )


class Broadcaster:
    def __init__(self, settings: BroadcasterSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.hub = Hub()
        self.cameras = CameraDirectory(table_loader(self.engine),
                                       refresh_s=settings.camera_refresh_s,
                                       miss_refresh_s=settings.camera_miss_refresh_s)
        self.gate = Gate(settings, lambda: len(self.hub.clients))
        self.relaying = False
        self.relayed = 0
        self.port: int | None = None  # the WebSocket port, once listening
        self.sequencer: Sequencer | None = None
        self.ready = asyncio.Event()

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
            exchanges = {spec.name: await amqp.declare_exchange(channel, spec) for spec in
                         (broker.RESULTS_COUNTS_EXCHANGE, broker.RESULTS_ALERTS_EXCHANGE)}
            self.sequencer = Sequencer(await first_watermark(self.engine),
                                       self.settings.outbox_gap_timeout_s)
            relay = Relay(self.engine, exchanges, self.hub, self.cameras, self.sequencer,
                          self.settings.relay_batch)

            async def on_connect(ws: ServerConnection) -> None:
                await Connection(ws, self.gate.ticket(ws), self.hub, self.engine, self.cameras,
                                 self.settings).serve()

            async with (
                serve(on_connect, self.settings.ws_host, self.settings.ws_port,
                      max_size=self.settings.max_message_bytes,
                      origins=origins(self.settings),
                      process_request=self.gate.process_request,
                      process_response=self.gate.process_response,
                      logger=websocket_logger()) as ws_server,
                asyncio.TaskGroup() as tg,
            ):
                tg.create_task(server.serve())
                relaying = tg.create_task(self._relay(relay, wake, stop))
                self.port = next(iter(ws_server.sockets)).getsockname()[1]
                log.info("broadcaster ready ws://%s:%s/ws (origins: %s%s)", self.settings.ws_host,
                         self.port, ", ".join(self.settings.allowed_origins) or "none",
                         "; none needed with a ticket" if self.settings.allow_no_origin else "")
                self.ready.set()
                await stop.wait()
                wake.set()
                await relaying
                server.should_exit = True
        finally:
            await shutdown_step(listener.close(), "closing the outbox listener")
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    async def _relay(self, relay: Relay, wake: asyncio.Event, stop: asyncio.Event) -> None:
        self.relaying = True
        while not stop.is_set():
            wake.clear()
            try:
                done = await relay.round()
            except Exception:
                log.exception("outbox relay failed; retrying")
                done = None
            if done is not None:
                self.relayed += done.relayed
                if done.full and done.relayed:
                    continue  # more waiting
            wait_s = GAP_POLL_S if done is not None and done.blocked \
                else self.settings.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait_s)
