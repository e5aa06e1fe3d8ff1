"""The private servers from `camcount services start` answer for real.

scripts/test starts them and exports the URLs; run by hand with
`eval "$(camcount services env --profile test)"` after `camcount services start --profile test`.
"""

from __future__ import annotations

import os
import uuid

import aio_pika
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

RABBITMQ_URL = os.environ.get("RABBITMQ_URL")
RABBITMQ_MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL")
DATABASE_URL = os.environ.get("DATABASE_URL")


def _require(value: str | None, name: str) -> str:
    if not value:
        pytest.skip(
            f"{name} is not set: run `camcount services start --profile test` and "
            '`eval "$(camcount services env --profile test)"` (scripts/test does both)'
        )
    return value


async def test_rabbitmq_publish_and_get() -> None:
    url = _require(RABBITMQ_URL, "RABBITMQ_URL")
    body = uuid.uuid4().bytes
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()  # publisher confirms: publish returns once routed
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(body=body), routing_key=queue.name)
        message = await queue.get(timeout=5)
        await message.ack()
        assert message.body == body


async def test_postgres_select_one() -> None:
    url = _require(DATABASE_URL, "DATABASE_URL")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
            database = (await conn.execute(text("select current_database()"))).scalar_one()
            assert database == url.rsplit("/", 1)[-1]
    finally:
        await engine.dispose()


async def test_rabbitmq_management_api() -> None:
    url = httpx.URL(_require(RABBITMQ_MANAGEMENT_URL, "RABBITMQ_MANAGEMENT_URL"))
    auth = httpx.BasicAuth(url.username, url.password)
    base = url.copy_with(username=None, password=None)
    async with httpx.AsyncClient(base_url=base, auth=auth, timeout=10) as client:
        response = await client.get("/api/overview")
    assert response.status_code == 200, response.text
    overview = response.json()
    assert overview["rabbitmq_version"]
    listeners = {(item["protocol"], item["port"]) for item in overview["listeners"]}
    assert ("amqp", int(httpx.URL(_require(RABBITMQ_URL, "RABBITMQ_URL")).port or 0)) in listeners
