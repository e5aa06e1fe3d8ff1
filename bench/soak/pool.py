"""The worker pool beside bench/stack.py's roles: the soak's workers run under the pool
manager (NUM_WORKERS of them, restarted with back-off when they die), which bench/stack.py
does not start (its workers are plain processes). Launch the stack with `workers=0` and this
next to it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bench.lifetime import die_with_us
from bench.stack import Stack, free_port
from camcount import processes

POOL_ID = "soak"
READY_TIMEOUT_S = 120.0


@dataclass
class Pool:
    child: processes.Child
    url: str
    worker_ids: list[str]  # as the pool named them (<POOL_ID>-<type>-<n>)

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    async def workers(self) -> list[dict[str, Any]]:
        """The pool's own view: worker_id, pid, status ('running', 'backoff', ...)."""
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{self.url}/workers/status")
            response.raise_for_status()
            return list(response.json()["workers"])

    async def running_pids(self) -> dict[str, int]:
        return {w["worker_id"]: int(w["pid"]) for w in await self.workers()
                if w["status"] == "running" and w.get("pid")}


async def _live_workers(stack: Stack) -> set[str]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=2) as http:
            health = (await http.get(f"{stack.ops_urls['balancer']}/health")).json()
            return set(health.get("live_workers", []))
    return set()


@contextlib.asynccontextmanager
async def run_pool(stack: Stack, workers: int, env: Mapping[str, str] | None = None
                   ) -> AsyncIterator[Pool]:
    """Start the pool, wait until the balancer sees every worker live, stop it on exit."""
    port = free_port()
    full = {"RABBITMQ_URL": stack.rabbitmq_url, "DATABASE_URL": stack.database_url,
            "LOG_LEVEL": "INFO", "POOL_ID": POOL_ID, "NUM_WORKERS": str(workers),
            "POOL_HTTP_PORT": str(port), "DETECTOR": stack.config.detector,
            "START_STAGGER_S": "0.2",
            # A killed worker is back within a second or two, not after a back-off that
            # doubles with every kill of a long soak.
            "RESTART_BACKOFF_INITIAL_S": "0.5", "RESTART_BACKOFF_MAX_S": "5",
            "RESTART_RESET_AFTER_S": "20", **(env or {})}
    # Its workers die with it (the pool sets their PDEATHSIG), and it with the soak.
    child = processes.spawn("pool", die_with_us([sys.executable, "-m", "workers.pool"]), full,
                            stack.config.log_dir / "pool.log")
    pool = Pool(child, f"http://127.0.0.1:{port}", [])
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(pool.worker_ids) < workers or \
                not set(pool.worker_ids) <= await _live_workers(stack):
            with contextlib.suppress(httpx.HTTPError):
                pool.worker_ids = sorted(await pool.running_pids())
            if not child.alive:
                raise RuntimeError(f"the worker pool exited with {child.proc.returncode} "
                                   f"(see {stack.config.log_dir / 'pool.log'})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the balancer did not see workers {pool.worker_ids} live "
                                   f"in {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.5)
        stack.say(f"worker pool ready: {', '.join(pool.worker_ids)} live at the balancer")
        yield pool
    finally:
        # The pool drains its workers on SIGTERM (DRAIN_TIMEOUT_S, 40 s by default).
        await asyncio.to_thread(processes.stop, [child], 60.0)
