"""Helpers of the alert tests: the evaluator and webhook sender running in-process on the
test's database and vhost, a real HTTP server receiving webhooks, the API with the sender."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.messages import AlertEvent
from contracts.tables import outbox
from registry.alerting.evaluator import Evaluator
from registry.alerting.webhook import WebhookSender
from registry.app import create_app
from registry.settings import RegistrySettings
from tests.camera_host import camera_host
from tests.conftest import Endpoints, Isolated
from tests.integration.registry_client import bearer, new_key
from tests.support import eventually, serving


def alert_settings(isolated: Isolated, endpoints: Endpoints, **overrides: Any,
                   ) -> RegistrySettings:
    values: dict[str, Any] = {
        "database_url": isolated.database_url, "rabbitmq_url": isolated.rabbitmq_url,
        "rabbitmq_management_url": endpoints.management_url, "media_dir": None,
        "alert_eval_s": 0.2, "webhook_backoff_initial_s": 0.05, "webhook_backoff_max_s": 0.2,
        "webhook_attempts": 4, "webhook_timeout_s": 2.0, **overrides,
    }
    return RegistrySettings(**values)


@contextlib.asynccontextmanager
async def running(settings: RegistrySettings, engine: AsyncEngine,
                  webhooks: WebhookSender | None = None) -> AsyncIterator[Evaluator]:
    """An evaluator (and the webhook sender, if given) running until the block ends."""
    evaluator = Evaluator(settings, engine, webhooks)
    tasks = [asyncio.create_task(evaluator.run())]
    if webhooks is not None:
        tasks.append(asyncio.create_task(webhooks.run()))
    try:
        yield evaluator
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def evaluations(evaluator: Evaluator, count: int) -> None:
    """Wait until the evaluator has evaluated `count` more times (not a time: a count)."""
    target = evaluator.evaluations + count

    async def done() -> int:
        return evaluator.evaluations

    await eventually(done, lambda n: n >= target)


@dataclass
class Receiver:
    """A webhook receiver: the first `fail_first` POSTs answer `fail_status`."""

    fail_first: int = 0
    fail_status: int = 500
    attempts: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def states(self) -> list[str]:
        return [e["state"] for e in self.events]


@contextlib.asynccontextmanager
async def webhook_receiver(fail_first: int = 0, fail_status: int = 500,
                           ) -> AsyncIterator[Receiver]:
    """A real HTTP server with a secret in its path, like chat webhooks, on this machine's
    non-loopback address (webhooks to loopback are refused)."""
    received = Receiver(fail_first, fail_status)

    async def hook(request: Request) -> Response:
        body = await request.json()
        received.attempts += 1
        if received.attempts <= received.fail_first:
            return Response(status_code=received.fail_status)
        received.events.append(body)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hooks/s3cr3t-token", hook, methods=["POST"])])
    async with serving(app, host=camera_host()) as base:
        received.url = base.replace("http://", "http://hook:pa55@") + "/hooks/s3cr3t-token"
        yield received


@contextlib.asynccontextmanager
async def api_with_webhooks(settings: RegistrySettings, engine: AsyncEngine,
                            webhooks: WebhookSender | None, key: str | None = None,
                            ) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the registry serves it: acknowledgements send their webhooks."""
    app = create_app(settings, engine, lambda: {"ok": True})
    app.state.alert_webhooks = webhooks
    token = key if key is not None else await new_key(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://registry", headers=bearer(token)) as client:
        yield client


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


async def alert_events(engine: AsyncEngine) -> list[AlertEvent]:
    """The outbox's alert events in order, each checked to parse as the broadcast message."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox).where(outbox.c.topic == "alerts")
                                   .order_by(outbox.c.id))).all()
    events = []
    for row in rows:
        event = AlertEvent.model_validate({**row.payload, "event_seq": row.id})
        assert (row.camera_id, row.region) == (event.camera_id, event.region)
        events.append(event)
    return events


async def add_crossings(engine: AsyncEngine, camera_id: str, line_id: int, n: int,
                        direction: str = "in") -> None:
    await sql(engine, "INSERT INTO crossing_events (camera_id, line_id, line_version, track_id, "
              "object_class, direction, occurred_at, stream_epoch, seq) "
              "SELECT :camera, :line, 1, g, 'person', :direction, now(), 1, g "
              "FROM generate_series(1, :n) AS g",
              camera=camera_id, line=line_id, direction=direction, n=n)
