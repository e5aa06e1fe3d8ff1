"""RabbitMQ and PostgreSQL as a host of a namespaced network: private servers (never the
shared test services) listening on loopback and on the bridge address, with helpers that
give each test a database and a virtual host of its own on them."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from camcount import services
from migrations import upgrade
from tests.conftest import Isolated, rabbit_vhost

STATE_ROOT = services.REPO_ROOT / ".state"


@dataclass(frozen=True)
class ServiceHost:
    endpoints: services.Endpoints  # on loopback, for the test itself
    address: str  # where the namespaced hosts reach both servers

    def remote(self, url: str) -> str:
        """`url` (one of the loopback endpoints) as a host on the network sees it."""
        parts = urlsplit(url)
        netloc = parts.netloc.replace("127.0.0.1", self.address)
        return urlunsplit(parts._replace(netloc=netloc))

    def remote_env(self, isolated: Isolated) -> dict[str, str]:
        return {"RABBITMQ_URL": self.remote(isolated.rabbitmq_url),
                "DATABASE_URL": self.remote(isolated.database_url)}

    @contextlib.asynccontextmanager
    async def isolated(self, name: str,
                       db_settings: Mapping[str, str] | None = None) -> AsyncIterator[Isolated]:
        """A migrated database and a virtual host, both called `name`, dropped on exit;
        `db_settings` become the database's defaults for every session."""
        admin_dsn = self.endpoints.database_url.replace("postgresql+asyncpg", "postgresql")
        database_url = _with_path(self.endpoints.database_url, f"/{name}")
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
        for setting, value in (db_settings or {}).items():
            await _admin(admin_dsn, f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'")
        await asyncio.to_thread(upgrade, database_url)  # alembic runs its own loop
        try:
            async with rabbit_vhost(self.endpoints.rabbitmq_management_url, name):
                yield Isolated(_with_path(self.endpoints.rabbitmq_url, "/" + quote(name, safe="")),
                               database_url, name)
        finally:
            await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def service_host(name: str, gateway: ipaddress.IPv4Interface, amqp_port: int,
                 pg_port: int) -> Iterator[ServiceHost]:
    """Fresh servers in `.state/<name>`, stopped and removed on exit (and on entry, left by a
    crashed run). The ports must be this test's own: no other profile or benchmark uses
    them."""
    cfg = services.ServicesConfig(STATE_ROOT / name, amqp_port, amqp_port + 20000,
                                  amqp_port + 10000, pg_port, profile=name,
                                  also_listen=gateway)
    services.stop_all(cfg)  # a crashed run's servers
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    try:
        endpoints = services.start_all(cfg)
        yield ServiceHost(endpoints, str(gateway.ip))
    finally:
        services.stop_all(cfg)
        shutil.rmtree(cfg.state_dir, ignore_errors=True)


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
