"""Fixtures over the real services: RabbitMQ and PostgreSQL started by the project's scripts.

`./scripts/test` starts them and exports RABBITMQ_URL, RABBITMQ_MANAGEMENT_URL and DATABASE_URL;
run alone, pytest starts the test profile itself. Each test that needs isolation gets a fresh
database (cloned from a migrated template) and a fresh RabbitMQ virtual host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import services
from infra import amqp
from infra.db import create_engine
from migrations import upgrade

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Endpoints:
    rabbitmq_url: str
    management_url: str
    database_url: str


@dataclass(frozen=True)
class Isolated:
    """A private database and virtual host for one test."""

    rabbitmq_url: str
    database_url: str
    vhost: str

    def env(self) -> dict[str, str]:
        return {"RABBITMQ_URL": self.rabbitmq_url, "DATABASE_URL": self.database_url}


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    env = os.environ
    if env.get("RABBITMQ_URL") and env.get("DATABASE_URL") and env.get("RABBITMQ_MANAGEMENT_URL"):
        yield Endpoints(env["RABBITMQ_URL"], env["RABBITMQ_MANAGEMENT_URL"], env["DATABASE_URL"])
        return
    cfg = services.ServicesConfig.from_env("test")
    started = services.start_all(cfg)
    try:
        yield Endpoints(started.rabbitmq_url, started.rabbitmq_management_url,
                        started.database_url)
    finally:
        if not env.get("CAMCOUNT_KEEP_SERVICES"):
            services.stop_all(cfg)


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def template_db(endpoints: Endpoints) -> Iterator[str]:
    """A database migrated once per session; tests clone it (CREATE DATABASE ... TEMPLATE)."""
    name = f"tpl_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(endpoints.database_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    upgrade(_with_path(endpoints.database_url, f"/{name}"))
    yield name
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def create_vhost(management_url: str, vhost: str) -> None:
    """A virtual host the management URL's user may use."""
    async with _management(management_url) as (http, user):
        (await http.put(f"/api/vhosts/{vhost}")).raise_for_status()
        (await http.put(f"/api/permissions/{vhost}/{user}",
                        json={"configure": ".*", "write": ".*", "read": ".*"})).raise_for_status()


async def delete_vhost(management_url: str, vhost: str) -> None:
    async with _management(management_url) as (http, _user):
        await http.delete(f"/api/vhosts/{vhost}")


@contextlib.asynccontextmanager
async def _management(management_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    mgmt = urlsplit(management_url)
    auth = (mgmt.username or "guest", mgmt.password or "guest")
    base = urlunsplit(mgmt._replace(netloc=f"{mgmt.hostname}:{mgmt.port}"))
    async with httpx.AsyncClient(base_url=base, auth=auth, timeout=30) as http:
        yield http, auth[0]


@contextlib.asynccontextmanager
async def rabbit_vhost(management_url: str, vhost: str) -> AsyncIterator[None]:
    """A virtual host the management URL's user may use, deleted on exit."""
    await create_vhost(management_url, vhost)
    try:
        yield
    finally:
        await delete_vhost(management_url, vhost)


async def admin_sql(database_url: str, sql: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def create_space(endpoints: Endpoints, template_db: str, name: str) -> Isolated:
    """A database cloned from the migrated template and a virtual host, both called `name`;
    the caller drops them (drop_space) unless the servers themselves are thrown away."""
    await admin_sql(endpoints.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    await create_vhost(endpoints.management_url, name)
    return Isolated(
        _with_path(endpoints.rabbitmq_url, "/" + quote(name, safe="")),
        _with_path(endpoints.database_url, f"/{name}"),
        name,
    )


async def drop_space(endpoints: Endpoints, name: str) -> None:
    try:
        await delete_vhost(endpoints.management_url, name)
    finally:
        await admin_sql(endpoints.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def isolated_space(endpoints: Endpoints, template_db: str,
                         name: str) -> AsyncIterator[Isolated]:
    """create_space on the given servers (the test profile's, or a fault scenario's private
    ones), dropped on exit."""
    try:
        yield await create_space(endpoints, template_db, name)
    finally:
        await drop_space(endpoints, name)


@pytest.fixture
async def isolated(endpoints: Endpoints, template_db: str) -> AsyncIterator[Isolated]:
    async with isolated_space(endpoints, template_db, f"t_{uuid.uuid4().hex[:10]}") as space:
        yield space


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test footage not present at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture
async def engine(isolated: Isolated) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's own database."""
    engine = create_engine(isolated.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def channel(isolated: Isolated) -> AsyncIterator[AbstractChannel]:
    """A channel on the test's own vhost, with the frames topology declared."""
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection:
        chan = await connection.channel()
        await amqp.declare_frames_topology(chan)
        yield chan
