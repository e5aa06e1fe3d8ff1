"""Role processes for the integration tests that run the balancer and workers as separate
processes (failover, shedding, worker state), and the ledger that checks a camera's batches:
applied in order, once, or inside a recorded gap."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts.ids import BatchId
from contracts.tables import coverage_gaps, outbox
from tests.conftest import Isolated
from tests.support import eventually

BEAT_S, PAUSE_S = 0.2, 1.0
# phi with 0.2 s beats, a 1 s acceptable pause and 0.1 s minimum deviation says down ~1.7 s
# into a silence; a busy two-core test machine gets another 1.3 s.
DOWN_BUDGET_S = BEAT_S + PAUSE_S + 1.6
BALANCER_ENV = {
    "HEARTBEAT_INTERVAL_S": str(BEAT_S), "HEARTBEAT_ACCEPTABLE_PAUSE_S": str(PAUSE_S),
    "LIVENESS_POLL_S": "0.05", "DEAD_QUEUE_RECHECK_S": "0.5", "LOG_LEVEL": "INFO",
}
WORKER_ENV = {"HEARTBEAT_INTERVAL_S": str(BEAT_S), "RETRY_DELAY_S": "0.05",
              "LOG_LEVEL": "INFO"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    """Role processes of one test, each with its log and ops port."""

    isolated: Isolated
    logs: Path
    children: dict[str, processes.Child] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, role: str, env: dict[str, str]) -> processes.Child:
        self.ports[name] = free_port()
        full = {**self.isolated.env(), **env, "OPS_PORT": str(self.ports[name])}
        child = processes.spawn(name, processes.role_argv(role), full, self.logs / f"{name}.log")
        self.children[name] = child
        return child

    def worker(self, worker_id: str, **env: str) -> processes.Child:
        return self.start(worker_id, "worker", {**WORKER_ENV, "WORKER_ID": worker_id, **env})

    def balancer(self, balancer_id: str = "b1", **env: str) -> processes.Child:
        return self.start(balancer_id, "balancer",
                          {**BALANCER_ENV, "BALANCER_ID": balancer_id, **env})

    async def get(self, name: str, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return await http.get(f"http://127.0.0.1:{self.ports[name]}{path}")
        except httpx.HTTPError:
            return None

    async def health(self, name: str) -> dict[str, Any]:
        response = await self.get(name, "/health")
        return response.json() if response is not None else {}

    async def metric(self, name: str, metric: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include `labels`."""
        response = await self.get(name, "/metrics")
        return sum(sample.value
                   for family in text_string_to_metric_families(
                       response.text if response is not None else "")
                   for sample in family.samples
                   if sample.name == metric and labels.items() <= sample.labels.items())

    async def live_workers(self, balancer: str) -> set[str]:
        return set((await self.health(balancer)).get("live_workers", []))

    async def wait_live(self, balancer: str, workers: set[str], timeout_s: float = 60) -> None:
        await eventually(lambda: self.live_workers(balancer), lambda live: workers <= live,
                         timeout_s=timeout_s, interval_s=0.1)

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.children[name].proc.pid, sig)


@dataclass(frozen=True)
class Ledger:
    applied: list[int]  # sequence numbers in commit order
    gaps: dict[int, str]  # sequence number -> reason

    def check(self, last_seq: int) -> None:
        assert self.applied == sorted(set(self.applied)), f"out of order or twice: {self.applied}"
        missing = set(range(last_seq + 1)) - set(self.applied) - set(self.gaps)
        assert not missing, f"neither counted nor a gap: {sorted(missing)}"


async def ledger(engine: AsyncEngine, camera_id: str) -> Ledger:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).where(outbox.c.camera_id == camera_id)
                                  .order_by(outbox.c.id))
        applied = [BatchId.parse(r.payload["batch_id"]).seq for r in rows]
        spans = await conn.execute(select(coverage_gaps).where(
            coverage_gaps.c.camera_id == camera_id))
        gaps = {seq: g.reason for g in spans for seq in range(g.seq_from, g.seq_to + 1)}
    return Ledger(applied, gaps)
