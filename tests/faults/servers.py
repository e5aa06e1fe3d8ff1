"""A private RabbitMQ and PostgreSQL for fault scenarios that restart, kill or stop them: the
test profile's servers are shared by every engineer's tests and must never be touched.

    with private_servers(tmp_path_factory.mktemp("servers")) as servers:
        async with servers.isolated() as iso: ...   # a fresh database and vhost per scenario
        await asyncio.to_thread(servers.kill_rabbitmq)

Every control method blocks (CLI tools, pg_ctl): call them through asyncio.to_thread, or the
event loop (and whatever it serves, like the in-process camera simulator) stalls meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from camcount import services
from migrations import upgrade
from tests.conftest import Endpoints, Isolated, create_space, isolated_space


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports() -> tuple[int, int]:
    """An AMQP port whose management (+10000) and distribution (+20000) ports are free too,
    and a PostgreSQL port: chosen at random so parallel runs (and other helpers' private
    servers) do not collide."""
    rng = uuid.uuid4().int
    for i in range(200):
        amqp = 15700 + (rng + i * 7) % 9000
        pg = amqp - 10000 + 37  # 5737..14736: below the management range used above
        if all(_free(p) for p in (amqp, amqp + 10000, amqp + 20000, pg)):
            return amqp, pg
    raise RuntimeError("no free ports for a private RabbitMQ and PostgreSQL")


@dataclass(frozen=True)
class PrivateServers:
    cfg: services.ServicesConfig
    endpoints: services.Endpoints
    template_db: str  # migrated once; each scenario's database is cloned from it

    @property
    def management_url(self) -> str:
        return self.endpoints.rabbitmq_management_url

    def start(self) -> None:
        """Start whatever of the two is not running (and wait until it answers)."""
        services.start_all(self.cfg)

    def stop_rabbitmq(self) -> None:
        services.stop_one(self.cfg, "rabbitmq")

    def stop_postgresql(self) -> None:
        services.stop_one(self.cfg, "postgresql")

    def restart_rabbitmq(self) -> None:
        self.stop_rabbitmq()
        self.start()

    def restart_postgresql(self) -> None:
        self.stop_postgresql()
        self.start()

    def kill_rabbitmq(self) -> None:
        """SIGKILL the broker's Erlang VM: no shutdown, no flushing; then start it again."""
        pid = int(self.cfg.rabbit_pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
            time.sleep(0.05)
        self.cfg.rabbit_pid_file.unlink(missing_ok=True)
        self.start()

    def _endpoints(self) -> Endpoints:
        return Endpoints(self.endpoints.rabbitmq_url, self.management_url,
                         self.endpoints.database_url)

    @contextlib.asynccontextmanager
    async def isolated(self) -> AsyncIterator[Isolated]:
        """A fresh database (a clone of the migrated template) and a fresh vhost, dropped on
        exit."""
        async with isolated_space(self._endpoints(), self.template_db,
                                  f"f_{uuid.uuid4().hex[:10]}") as space:
            yield space

    async def kept_space(self) -> Isolated:
        """Like isolated(), but left in place: for callers that stop these servers while the
        space is in use; the servers' state is wiped when they are removed."""
        return await create_space(self._endpoints(), self.template_db,
                                  f"f_{uuid.uuid4().hex[:10]}")


@contextlib.contextmanager
def private_servers(state_dir: Path) -> Iterator[PrivateServers]:
    """Fresh private servers under `state_dir` (wiped first), stopped and removed on exit.

    The profile name keeps the node name apart from the dev/test nodes on the shared epmd."""
    amqp, pg = _free_ports()
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    state_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    cfg = services.ServicesConfig(state_dir, amqp, amqp + 20000, amqp + 10000, pg, "faults")
    try:
        endpoints = services.start_all(cfg)
        upgrade(endpoints.database_url)
        yield PrivateServers(cfg, endpoints, services.DB_NAME)
    finally:
        services.stop_all(cfg)
        shutil.rmtree(state_dir, ignore_errors=True)
