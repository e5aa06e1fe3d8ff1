"""Registry wiring: the API server and the heartbeat consumer in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import uvicorn

from contracts.messages import WorkerHeartbeat
from infra import amqp, db
from infra.ops import EmbeddedServer, bound_port
from registry import metrics, repository
from registry.app import create_app
from registry.settings import RegistrySettings

log = logging.getLogger("camcount.registry")


class Registry:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.heartbeats_consumed = False

    def health(self) -> dict[str, Any]:
        return {"ok": self.heartbeats_consumed, "role": "registry"}

    async def run(self, stop: asyncio.Event) -> None:
        app = create_app(self.settings, self.engine, self.health)
        server = EmbeddedServer(uvicorn.Config(
            app, host=self.settings.http_host, port=self.settings.http_port,
            log_level="warning", lifespan="off",
        ))
        connection = await amqp.connect(self.settings.rabbitmq_url, "registry")
        try:
            channel = await connection.channel()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                beats, tag = await amqp.consume_heartbeats(channel, self._on_heartbeat)
                self.heartbeats_consumed = True
                await server.ready.wait()
                log.info("registry ready http://%s:%s", self.settings.http_host,
                         bound_port(server))
                await stop.wait()
                await beats.cancel(tag)
                server.should_exit = True
        finally:
            await connection.close()
            await self.engine.dispose()

    async def _on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        metrics.HEARTBEATS.inc()
        status = "stopping" if beat.stopping else "up"
        await repository.record_heartbeat(self.engine, beat, datetime.now(UTC), status)
