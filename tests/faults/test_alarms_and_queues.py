"""Queue faults: a worker's queue deleted under its consumer, and the broker's memory and disk
alarms while ingest publishes (the whole stack, tests/faults/harness.py).

The queue scenario's test is the producer and publishes as the balancer does (to the worker's
queue through the default exchange, with confirms, not mandatory): while the queue is gone the
broker confirms batches it routes nowhere, and the batches queued at the deletion go with it.
Each must then be recorded as a gap by the worker once the camera's next batch arrives, and the
worker must be consuming its queue again (no consumer left idle)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes, services
from contracts import broker
from contracts.messages import BatchHeaders
from contracts.tables import camera_events, coverage_gaps
from infra import amqp
from infra.broker_admin import management_client, read_queue_depths
from simulator.scenes import SyntheticScene
from tests.conftest import Endpoints, Isolated
from tests.faults.checker import check
from tests.faults.f2_messages import producer_history
from tests.faults.harness import FaultStack, default_cameras
from tests.faults.servers import PrivateServers
from tests.integration.roles import Fleet
from tests.support import eventually, progress, publish, scene_batches, seed_camera

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORKER = "w-queuefault"
QUEUE = broker.worker_queue_name(WORKER)
PACE_S = 0.05  # between batches: 2x real time for 5-frame batches at 10 fps
ALARM_S = 6.0


async def consumers(endpoints: Endpoints, vhost: str) -> int:
    async with management_client(endpoints.management_url, 5) as http:
        found = [q for q in await read_queue_depths(http, vhost) if q.name == QUEUE]
    return found[0].consumers if found else -1


async def finished(engine: AsyncEngine, camera_id: str, last_seq: int) -> None:
    async def seq() -> int:
        done = await progress(engine, camera_id)
        return -1 if done is None else done[0]

    await eventually(seq, lambda s: s == last_seq, timeout_s=90, interval_s=0.25)


async def test_a_worker_queue_deleted_under_its_consumer_is_consumed_again_and_losses_are_gaps(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, tmp_path: Path
) -> None:
    scenes = {cam: SyntheticScene(seed=seed, crossings=6, warmup_s=1.5)
              for cam, seed in (("cam-q1", 21), ("cam-q2", 22))}
    for cam in scenes:
        await seed_camera(engine, cam, worker_id=WORKER)
    streams = {cam: scene_batches(scene, camera_id=cam, tail_s=2.0)
               for cam, scene in scenes.items()}
    fleet = Fleet(isolated, tmp_path)
    confirmed: list[BatchHeaders] = []
    connection = await amqp.connect(isolated.rabbitmq_url, "f2-producer")
    try:
        async with connection:
            channel = await connection.channel()
            await amqp.declare_frames_topology(channel)
            await amqp.declare_queue(channel, broker.worker_queue(WORKER))
            fleet.worker(WORKER, BATCH_LEDGER="true")
            await eventually(lambda: fleet.health(WORKER), lambda h: h.get("ok") is True,
                             timeout_s=60)
            await eventually(lambda: consumers(endpoints, isolated.vhost), lambda n: n == 1,
                             timeout_s=30, interval_s=0.5)
            rounds = max(len(s) for s in streams.values())
            # The worker frozen (SIGSTOP) for rounds [stop_at, resume_at): a backlog forms,
            # the queue is deleted with it, and what is published until the worker notices
            # is routed nowhere.
            stop_at, deleted_at, resume_at = rounds // 4, rounds // 4 + 6, rounds // 4 + 12
            for i in range(rounds):
                if i == stop_at:
                    fleet.signal(WORKER, signal.SIGSTOP)
                elif i == deleted_at:
                    async with management_client(endpoints.management_url, 5) as http:
                        response = await http.delete(
                            f"/api/queues/{quote(isolated.vhost, safe='')}/{QUEUE}")
                        response.raise_for_status()
                elif i == resume_at:
                    fleet.signal(WORKER, signal.SIGCONT)
                for batches in streams.values():
                    if i < len(batches):
                        await publish(channel, QUEUE, *batches[i])
                        confirmed.append(batches[i][0])
                await asyncio.sleep(PACE_S)

            # Consuming again: batches published after the recovery reach the end.
            for cam, batches in streams.items():
                await finished(engine, cam, len(batches) - 1)
            await eventually(lambda: consumers(endpoints, isolated.vhost), lambda n: n == 1,
                             timeout_s=30, interval_s=0.5)
            assert fleet.children[WORKER].alive
    finally:
        processes.stop(list(fleet.children.values()))
        log = (tmp_path / f"{WORKER}.log").read_text(errors="replace")
        print("\n".join(line for line in log.splitlines()[-400:]
                        if "WARNING" in line or "ERROR" in line or "ready" in line)[-3000:])
    verdict = check(await producer_history(engine, confirmed, scenes))
    print(verdict.summary())
    verdict.assert_ok()
    print(f"queue fault: {verdict.recorded_as_gap} of {verdict.confirmed} confirmed batches "
          f"went with the queue or were routed nowhere; each is a gap")
    assert verdict.recorded_as_gap >= 2 * (resume_at - deleted_at), "the fault did not bite"


async def camera_statuses(engine: AsyncEngine, since: float) -> dict[str, list[str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(camera_events.c.camera_id, camera_events.c.status)
            .where(camera_events.c.at >= datetime.fromtimestamp(since, UTC))
            .order_by(camera_events.c.id))
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(row.camera_id, []).append(row.status)
        return out


async def dropped_gaps(engine: AsyncEngine, since: float) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(coverage_gaps.c.detail).where(
            coverage_gaps.c.reason == "dropped",
            coverage_gaps.c.started_at >= datetime.fromtimestamp(since, UTC)))).scalars())


@pytest.mark.parametrize(("alarm", "raise_it", "clear_it"), [
    ("memory", ("set_vm_memory_high_watermark", "0"), ("set_vm_memory_high_watermark", "0.4")),
    # A free-disk limit far above any disk: the alarm is raised at the next check.
    ("disk", ("set_disk_free_limit", str(1 << 50)), ("set_disk_free_limit", "50MB")),
])
async def test_a_broker_resource_alarm_makes_ingest_drop_oldest_as_gaps_and_resume(
    private: PrivateServers, private_isolated: Isolated, tmp_path: Path, alarm: str,
    raise_it: tuple[str, str], clear_it: tuple[str, str],
) -> None:
    """On private servers: an alarm blocks every publisher of the broker, which would stall the
    other engineers' tests on the shared one."""
    async with FaultStack(private_isolated, private.management_url, tmp_path,
                          cameras=default_cameras(2, first_seed=40), workers=("w1",),
                          ingest_env={"OUTBOX_BATCHES": "4"}) as stack:
        engine = stack.engine
        await asyncio.sleep(4)  # steady traffic first
        began = time.time()
        await asyncio.to_thread(services.rabbitmqctl, private.cfg, *raise_it)
        try:
            await eventually(lambda: camera_statuses(engine, began),
                             lambda seen: all("backpressure" in seen.get(c.camera_id, [])
                                              for c in stack.cameras),
                             timeout_s=40, interval_s=0.5)
            await asyncio.sleep(ALARM_S)  # blocked long past the outbox's few batches
        finally:
            await asyncio.to_thread(services.rabbitmqctl, private.cfg, *clear_it)
        cleared = time.time()
        await eventually(lambda: camera_statuses(engine, cleared),
                         lambda seen: all(seen.get(c.camera_id, ["live"])[-1] == "live"
                                          for c in stack.cameras),
                         timeout_s=40, interval_s=0.5)
        await asyncio.sleep(15)  # resumed: steady traffic again, counted and compared
        await stack.wait_consumers()
        seen = await camera_statuses(engine, began)
        drops = await dropped_gaps(engine, began)
        stack.figures.update(alarm=alarm, alarm_s=round(cleared - began, 1),
                             dropped_spans=len(drops))
        verdict = await stack.finish()
    print(f"{alarm} alarm: statuses {seen}; dropped {drops}")
    verdict.assert_ok()
    assert len(drops) >= len(stack.cameras), "each camera dropped its oldest batches"
    assert all("blocks publishers" in d or "confirms" in d for d in drops), drops
    stack.memory.assert_bounded()
