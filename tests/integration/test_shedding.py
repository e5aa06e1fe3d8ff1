"""Admission under overload, against the real RabbitMQ and PostgreSQL with the balancer as
its own process: what cannot make its deadline is shed as a recorded gap, lowest priorities
first, and high and critical batches are always routed."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.broker import Priority
from contracts.messages import BatchHeaders, WorkerHeartbeat
from infra import amqp
from tests.integration.roles import BEAT_S, Fleet, Ledger, ledger
from tests.support import eventually, publish, seed_camera

pytestmark = pytest.mark.slow


async def test_under_overload_low_and_normal_are_shed_as_gaps_and_high_and_critical_routed(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel,
) -> None:
    """The only worker says it is far behind (a deep queue at one batch a second): the hybrid
    policy sheds what cannot make its deadline, lowest priorities first, and records each shed
    batch as a 'shed' gap; high and critical batches are never shed."""
    worker = "w-behind"
    spec = broker.worker_queue(worker)
    await amqp.declare_queue(channel, spec)
    beats = await channel.get_exchange(broker.HEARTBEATS)
    stop = asyncio.Event()

    async def beat() -> None:  # a worker that is alive but does not consume: its queue fills
        while not stop.is_set():
            await beats.publish(aio_pika.Message(WorkerHeartbeat(
                worker_id=worker, boot_id="b1", queue=spec.name, sent_at=time.time(),
                capacity_per_s=1.0, queue_depth=60, heartbeat_interval_s=BEAT_S,
            ).model_dump_json().encode()), routing_key="")
            await asyncio.sleep(BEAT_S)

    beating = asyncio.create_task(beat())
    try:
        fleet.balancer()
        await fleet.wait_live("b1", {worker})
        per_priority = 4
        now = time.time()
        for priority in Priority:
            camera = f"cam-{priority.name.lower()}"
            await seed_camera(engine, camera)
            for seq in range(per_priority):
                headers = BatchHeaders(camera_id=camera, stream_epoch=1, seq=seq,
                                       priority=priority, captured_at=now, deadline_at=now + 10,
                                       frame_count=0)
                await publish(channel, broker.FRAMES_INGRESS, headers, b"")
        high_and_critical = 2 * per_priority

        queue = await amqp.declare_queue(channel, spec)
        got: list[BatchHeaders] = []

        async def routed() -> int:  # take what reached the worker's queue
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                got.append(BatchHeaders.from_amqp(message.headers))
            return len(got)

        await eventually(routed, lambda n: n >= high_and_critical, timeout_s=30)
        for priority in (Priority.LOW, Priority.NORMAL):
            camera = f"cam-{priority.name.lower()}"

            async def look(camera: str = camera) -> Ledger:
                return await ledger(engine, camera)

            shed = await eventually(look, lambda led: len(led.gaps) == per_priority,
                                    timeout_s=30)
            assert set(shed.gaps.values()) == {"shed"} and not shed.applied
        for priority in (Priority.HIGH, Priority.CRITICAL):
            assert not (await ledger(engine, f"cam-{priority.name.lower()}")).gaps
        await asyncio.sleep(0.5)
        assert await routed() == high_and_critical
        assert {h.priority for h in got} == {Priority.HIGH, Priority.CRITICAL}
        assert await fleet.metric("b1", "camcount_balancer_shed_total") == 2 * per_priority
    finally:
        stop.set()
        await beating
