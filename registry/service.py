"""Registry wiring: the API server, the heartbeat consumer, the alert evaluator and its
webhook sender in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import uvicorn

from contracts.messages import WorkerHeartbeat
from infra import amqp, db
from infra.ops import EmbeddedServer, bound_port
from infra.runner import shutdown_step
from registry import metrics, repository
from registry.alerting.evaluator import Evaluator
from registry.alerting.webhook import WebhookSender
from registry.app import create_app
from registry.settings import RegistrySettings

log = logging.getLogger("camcount.registry")


class Registry:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.heartbeats_consumed = False
        self.webhooks: WebhookSender | None = None
        self.evaluator: Evaluator | None = None

    def health(self) -> dict[str, Any]:
        alerts = "off" if self.evaluator is None else self.evaluator.role
        return {"ok": self.heartbeats_consumed, "role": "registry", "alerts": alerts}

    async def run(self, stop: asyncio.Event) -> None:
        app = create_app(self.settings, self.engine, self.health)
        self.webhooks = WebhookSender(self.settings)
        # The API's acknowledgements send their webhooks through the same sender.
        app.state.alert_webhooks = self.webhooks
        if self.settings.alert_evaluator:
            self.evaluator = Evaluator(self.settings, self.engine, self.webhooks)
        server = EmbeddedServer(uvicorn.Config(
            app, host=self.settings.http_host, port=self.settings.http_port,
            log_level="warning", lifespan="off",
        ))
        connection = await amqp.connect(self.settings.rabbitmq_url, "registry")
        try:
            channel = await connection.channel()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                background = [tg.create_task(self.webhooks.run())]
                if self.evaluator is not None:
                    background.append(tg.create_task(self.evaluator.run()))
                beats, tag = await amqp.consume_heartbeats(channel, self._on_heartbeat)
                self.heartbeats_consumed = True
                await server.ready.wait()
                log.info("registry ready http://%s:%s", self.settings.http_host,
                         bound_port(server))
                await stop.wait()
                await shutdown_step(beats.cancel(tag), "cancelling the heartbeat consumer")
                for task in background:
                    task.cancel()
                server.should_exit = True
        finally:
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    async def _on_heartbeat(self, beat: WorkerHeartbeat) -> None:
        metrics.HEARTBEATS.inc()
        status = "stopping" if beat.stopping else "up"
        await repository.record_heartbeat(self.engine, beat, datetime.now(UTC), status)
