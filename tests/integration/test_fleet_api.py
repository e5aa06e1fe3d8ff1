"""The fleet view: workers, breakers and the active balancer from PostgreSQL, queue depths from
the real RabbitMQ management API, and the pool managers' own status."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.messages import WorkerHeartbeat
from contracts.tables import workers
from registry import repository
from tests.conftest import Endpoints, Isolated
from tests.integration.registry_client import registry
from tests.integration.roles import free_port
from tests.integration.test_worker_pool import pool_manager, running
from tests.support import eventually


async def _beat(engine: AsyncEngine, worker_id: str, **load: float) -> None:
    beat = WorkerHeartbeat(worker_id=worker_id, boot_id="b", queue=f"frames.worker.{worker_id}",
                           sent_at=time.time(), heartbeat_interval_s=1.0, **load)
    await repository.record_heartbeat(engine, beat, datetime.now(UTC), "up")


async def test_the_fleet_summary_counts_workers_breakers_and_reads_queue_depths(
    isolated: Isolated, engine: AsyncEngine, endpoints: Endpoints, channel: AbstractChannel,
) -> None:
    await _beat(engine, "w1", in_flight=2, queue_depth=3, batches_ok=10, capacity_per_s=4.0)
    await _beat(engine, "w2", in_flight=1, queue_depth=0, batches_ok=5, batches_failed=2)
    async with engine.begin() as conn:
        await conn.execute(workers.update().where(workers.c.id == "w1").values(
            liveness="up", judged_by="bal-a", judged_at=datetime.now(UTC),
            breaker={"state": "closed", "failure_rate": 0.0, "calls": 10, "failures": 0,
                     "opened_at": None, "probes": {"admitted": 0, "succeeded": 0}}))
        await conn.execute(workers.update().where(workers.c.id == "w2").values(
            liveness="suspect", judged_by="bal-a", judged_at=datetime.now(UTC),
            breaker={"state": "open", "failure_rate": 0.5, "calls": 4, "failures": 2,
                     "opened_at": time.time(), "probes": {"admitted": 0, "succeeded": 0}}))
    for n in range(3):
        await channel.default_exchange.publish(aio_pika.Message(b"x", priority=1),
                                               broker.FRAMES_INGRESS)
        del n
    # The management API's counts lag by its statistics interval (5 s): the beats above must
    # not age into "down" meanwhile.
    async with registry(isolated, engine, worker_down_after_s=600,
                        rabbitmq_url=isolated.rabbitmq_url,
                        rabbitmq_management_url=endpoints.management_url) as api:
        fleet = await eventually(lambda: api.get("/api/fleet"),
                                 lambda r: any(q["name"] == broker.FRAMES_INGRESS and
                                               q["messages"] == 3
                                               for q in r.json()["queues"] or []))
    body = fleet.json()
    assert body["workers"] == 2 and body["by_status"] == {"up": 2}
    assert body["by_liveness"] == {"up": 1, "suspect": 1}
    assert body["breakers"] == {"closed": 1, "open": 1}
    assert (body["in_flight"], body["queue_depth"], body["processed"], body["failed"]) == \
        (3, 3, 15, 2)
    assert body["balancer"]["active_id"] == "bal-a"
    assert all(q["name"].startswith("frames.") for q in body["queues"])
    assert body["queues_error"] is None


async def test_an_unreachable_management_api_is_reported_not_fatal(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    dead = f"http://guest:hunter2@127.0.0.1:{free_port()}"
    async with registry(isolated, engine, rabbitmq_management_url=dead) as api:
        body = (await api.get("/api/fleet")).json()
    assert body["queues"] is None and "management API" in body["queues_error"]
    assert "hunter2" not in body["queues_error"]


async def test_pools_show_each_managers_status(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path,
) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    async with pool_manager(isolated, tmp_path, "pool", NUM_WORKERS="1") as pool:
        await pool.until(lambda s: running(s, "tp-motion-0"))
        here = str(pool.http.base_url)
        async with registry(isolated, engine, pool_urls=[here, gone]) as api:
            answer = await api.get("/api/pools")
    assert answer.status_code == 200
    first, second = answer.json()
    assert first["ok"] and first["status"]["total"] == 1
    assert [w["worker_id"] for w in first["status"]["workers"]] == ["tp-motion-0"]
    assert not second["ok"] and second["error"] and second["status"] is None


async def test_only_frames_queues_are_listed(isolated: Isolated, engine: AsyncEngine,
                                             endpoints: Endpoints,
                                             channel: AbstractChannel) -> None:
    await channel.declare_queue("unrelated.queue")
    async with registry(isolated, engine,
                        rabbitmq_url=isolated.rabbitmq_url,
                        rabbitmq_management_url=endpoints.management_url) as api:
        body = await eventually(lambda: api.get("/api/fleet"),
                                lambda r: r.json()["queues"] is not None)
    names = [q["name"] for q in body.json()["queues"]]
    assert broker.FRAMES_INGRESS in names and "unrelated.queue" not in names
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(workers))
                ).scalar_one() == 0
