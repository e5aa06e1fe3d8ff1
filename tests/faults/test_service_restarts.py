"""RabbitMQ and PostgreSQL failing under load, on private servers (the shared test servers are
never touched): the broker restarted, then SIGKILLed; the database restarted, its sessions
terminated mid-transaction again and again; the database down for two minutes. Every role
retries and recovers, every queue gets its consumer back, and the checker passes: each
confirmed batch applied exactly once or recorded as a gap, counts equal to the scenes' truth
over covered time, memory bounded."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Isolated
from tests.faults.harness import FaultStack, default_cameras
from tests.faults.servers import PrivateServers

pytestmark = pytest.mark.slow

TERMINATE_S = 12.0
CALM_S = 20.0


async def _terminate_transactions(admin: asyncpg.Connection) -> int:
    """pg_terminate_backend of every other session of this database inside a transaction
    now (workers applying, ingest and balancer writing): how many were killed."""
    return int(await admin.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND xact_start IS NOT NULL"))


async def test_broker_restarted_and_killed_database_restarted_and_sessions_terminated(
    private: PrivateServers, private_isolated: Isolated, tmp_path: Path
) -> None:
    async with FaultStack(private_isolated, private.management_url, tmp_path,
                          cameras=default_cameras(2), workers=("w1", "w2")) as stack:
        phases: dict[str, float] = {}

        async def phase(name: str, fault_s: float) -> None:
            began = time.monotonic()
            await stack.wait_consumers(timeout_s=90)
            await stack.wait_applied(more=10)
            phases[name] = round(time.monotonic() - began + fault_s, 1)

        await stack.wait_applied(more=10)
        began = time.monotonic()
        await asyncio.to_thread(private.restart_rabbitmq)
        await phase("rabbitmq_restart", time.monotonic() - began)

        began = time.monotonic()
        await asyncio.to_thread(private.kill_rabbitmq)
        await phase("rabbitmq_sigkill", time.monotonic() - began)

        began = time.monotonic()
        await asyncio.to_thread(private.restart_postgresql)
        await phase("postgresql_restart", time.monotonic() - began)

        # Sessions terminated mid-transaction, repeatedly, at random moments.
        # Transactions last milliseconds: looking often is what catches them open.
        rng, terminated = random.Random(), 0
        admin = await asyncpg.connect(
            private_isolated.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            began = time.monotonic()
            while time.monotonic() - began < TERMINATE_S:
                await asyncio.sleep(rng.uniform(0.005, 0.05))
                terminated += await _terminate_transactions(admin)
        finally:
            await admin.close()
        await phase("sessions_terminated", time.monotonic() - began)

        stack.figures.update(recovery_s=phases, sessions_terminated=terminated)
        verdict = await stack.finish()
    verdict.assert_ok()
    assert verdict.applied_once > 50, verdict.summary()
    assert terminated >= 5, f"only {terminated} sessions caught inside a transaction"
    stack.memory.assert_bounded()


async def test_database_down_for_two_minutes(
    private: PrivateServers, private_isolated: Isolated, tmp_path: Path
) -> None:
    async with FaultStack(private_isolated, private.management_url, tmp_path,
                          cameras=default_cameras(2), workers=("w1", "w2")) as stack:
        await stack.wait_applied(more=10)
        await asyncio.to_thread(private.stop_postgresql)
        await asyncio.sleep(120)
        up_at = time.monotonic()
        await asyncio.to_thread(private.start)
        await stack.wait_consumers(timeout_s=120)
        await stack.wait_applied(more=20, timeout_s=120)
        stack.figures.update(recovered_s=round(time.monotonic() - up_at, 1))
        await asyncio.sleep(CALM_S)  # fault-free footage to compare with truth
        verdict = await stack.finish()
    verdict.assert_ok()
    assert sum(c.truth for c in verdict.counts) >= 3, "too little covered time to compare"
    # Two minutes of footage past its deadline (10 s) cannot all have been applied late.
    assert verdict.recorded_as_gap > 0 or verdict.gap_reasons, verdict.summary()
    stack.memory.assert_bounded()
