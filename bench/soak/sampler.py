"""One reading of every resource the soak watches, as flat samples (see growth.SeriesKey).

- Every process (the stack's children, the worker pool and each of its worker children, found
  afresh each round so a restarted worker shows up as a new pid): RSS, open files, TCP
  connections and threads, read with psutil.
- RabbitMQ (management API): connections and channels in all and per connection name (each
  role names its connection: the worker id, "registry", ...), and the depth of every queue,
  the dead-letter queue included.
- PostgreSQL (pg_stat_activity): backends in all and per process. Roles set no
  application_name, so a backend is attributed to the process whose TCP connection has the
  backend's client port as its local port; the rest show as `postgres:other`.
- The pipeline: batches applied so far (outbox rows of topic counts), which must keep growing;
  no growth rule applies to it, the runner checks that counting never stalls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.soak.growth import SeriesKey
from infra.broker_admin import read_queue_depths

APPLIED = SeriesKey("pipeline", "applied_batches")
PROCESS_METRICS = ("rss_bytes", "fds", "tcp", "threads")


@dataclass(frozen=True)
class Watched:
    """A process the soak started, by the name the report uses."""

    name: str
    pid: int


@dataclass(frozen=True)
class Sample:
    t_s: float
    key: SeriesKey
    value: float


@dataclass(frozen=True)
class ProcessReading:
    subject: str
    pid: int
    values: dict[str, float]
    local_ports_to_pg: frozenset[int]  # local ports of its connections to PostgreSQL


def process_subject(root: str, proc: psutil.Process) -> str:
    """A pool's child is named after its WORKER_ID; any other child after its root."""
    with contextlib.suppress(psutil.Error):
        worker_id = proc.environ().get("WORKER_ID")
        if worker_id:
            return f"worker:{worker_id}"
    return f"{root}:child"


def read_process(subject: str, proc: psutil.Process, pg_port: int) -> ProcessReading | None:
    """None when the process is gone by the time it is read (a worker just killed)."""
    try:
        with proc.oneshot():
            connections = proc.net_connections(kind="tcp")
            values = {"rss_bytes": float(proc.memory_info().rss),
                      "fds": float(proc.num_fds()), "tcp": float(len(connections)),
                      "threads": float(proc.num_threads())}
    except psutil.Error:
        return None
    to_pg = frozenset(c.laddr.port for c in connections if c.raddr and c.raddr.port == pg_port)
    return ProcessReading(subject, proc.pid, values, to_pg)


def read_processes(roots: Sequence[Watched], pg_port: int) -> list[ProcessReading]:
    readings = []
    for root in roots:
        try:
            proc = psutil.Process(root.pid)
            family = [(root.name, proc)] + [(process_subject(root.name, c), c)
                                            for c in proc.children(recursive=True)]
        except psutil.Error:
            continue
        for subject, member in family:
            reading = read_process(subject, member, pg_port)
            if reading is not None:
                readings.append(reading)
    return readings


async def read_broker(http: httpx.AsyncClient, vhost: str) -> list[tuple[SeriesKey, float]]:
    response = await http.get("/api/connections",
                              params={"columns": "name,client_properties,channels"})
    response.raise_for_status()
    per_name: dict[str, tuple[int, int]] = {}
    for row in response.json():
        props: dict[str, Any] = row.get("client_properties") or {}
        name = str(props.get("connection_name") or "unnamed")
        conns, chans = per_name.get(name, (0, 0))
        per_name[name] = (conns + 1, chans + int(row.get("channels") or 0))
    out = [(SeriesKey("broker", "connections"), float(sum(c for c, _ in per_name.values()))),
           (SeriesKey("broker", "channels"), float(sum(c for _, c in per_name.values())))]
    for name, (conns, chans) in sorted(per_name.items()):
        out += [(SeriesKey(f"broker:{name}", "connections"), float(conns)),
                (SeriesKey(f"broker:{name}", "channels"), float(chans))]
    out += [(SeriesKey(f"queue:{q.name}", "messages"), float(q.messages))
            for q in await read_queue_depths(http, vhost)]
    return out


async def read_database(engine: AsyncEngine, owner_of_port: Callable[[int], tuple[str, str]],
                        ) -> list[tuple[SeriesKey, float]]:
    """Backends per process (subject, pid) and in all, and batches applied so far."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"))).all()
        applied = (await conn.execute(text(
            "SELECT count(*) FROM outbox WHERE topic = 'counts'"))).scalar_one()
    per_owner: dict[tuple[str, str], int] = {}
    for (port,) in rows:
        owner = owner_of_port(int(port)) if port is not None else ("postgres:other", "")
        per_owner[owner] = per_owner.get(owner, 0) + 1
    out = [(SeriesKey("postgres", "backends"), float(len(rows))), (APPLIED, float(applied))]
    out += [(SeriesKey(subject, "backends", pid), float(n))
            for (subject, pid), n in sorted(per_owner.items())]
    return out


class Sampler:
    """Reads everything once per `sample`; failures of one source (the broker restarting its
    connections, a terminated backend) cost that source's samples of the round, not the
    soak."""

    def __init__(self, roots: Callable[[], Sequence[Watched]], pg_port: int,
                 broker_http: httpx.AsyncClient, vhost: str, engine: AsyncEngine) -> None:
        self.roots, self.pg_port = roots, pg_port
        self.broker_http, self.vhost, self.engine = broker_http, vhost, engine
        self.seen_processes: set[tuple[str, int]] = set()
        self.pg_owners: dict[int, tuple[str, str]] = {}  # client port -> (subject, pid)
        self.errors: list[str] = []

    async def sample(self, t_s: float) -> list[Sample]:
        readings = read_processes(self.roots(), self.pg_port)
        owners = {port: (r.subject, str(r.pid)) for r in readings for port in r.local_ports_to_pg}
        self.pg_owners = owners
        samples = [Sample(t_s, SeriesKey(r.subject, metric, str(r.pid)), value)
                   for r in readings for metric, value in r.values.items()]
        self.seen_processes |= {(r.subject, r.pid) for r in readings}
        try:
            samples += [Sample(t_s, k, v) for k, v in await read_broker(self.broker_http,
                                                                        self.vhost)]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.errors.append(f"{t_s:.0f} s: broker: {type(exc).__name__}: {exc}")
        try:
            samples += [Sample(t_s, k, v) for k, v in await read_database(
                self.engine, lambda port: owners.get(port, ("postgres:other", "")))]
        except Exception as exc:  # a terminated backend or a restart: skip one round
            self.errors.append(f"{t_s:.0f} s: database: {type(exc).__name__}: {exc}")
        return samples
