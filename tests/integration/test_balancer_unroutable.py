"""A worker queue deleted under the balancer: the next batch routed there is returned by the
broker (published mandatory) instead of vanishing, the queue is declared again and the batch
delivered. Before, it was confirmed into nowhere and — being the camera's last batch — never
counted and never recorded as a gap."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts import broker
from infra import amqp
from simulator.scenes import SyntheticScene
from tests.conftest import Isolated
from tests.integration.roles import Fleet
from tests.support import eventually, progress, publish, scene_batches, seed_camera

pytestmark = pytest.mark.slow

WORKER = "w-unroutable"


async def test_a_batch_routed_to_a_deleted_worker_queue_is_redelivered_not_lost(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path
) -> None:
    await seed_camera(engine, "cam-unroutable")
    batches = scene_batches(SyntheticScene(seed=3, crossings=1, warmup_s=0.5),
                            camera_id="cam-unroutable", assignment_epoch=None)
    last = len(batches) - 1
    fleet = Fleet(isolated, tmp_path)
    # A long acceptable pause: the worker is stopped below and must stay the chosen one.
    fleet.balancer(HEARTBEAT_ACCEPTABLE_PAUSE_S="60")
    fleet.worker(WORKER)
    try:
        await fleet.wait_live("b1", {WORKER})
        connection = await amqp.connect(isolated.rabbitmq_url, "test-unroutable")
        async with connection:
            channel = await connection.channel()
            await amqp.declare_frames_topology(channel)
            for headers, body in batches[:last]:
                await publish(channel, broker.FRAMES_INGRESS, headers, body)
            await eventually(lambda: progress(engine, "cam-unroutable"),
                             lambda p: p is not None and p[0] == last - 1, timeout_s=60)
            # Stopped, the worker cannot declare its queue again before the balancer routes.
            fleet.signal(WORKER, signal.SIGSTOP)
            await channel.queue_delete(broker.worker_queue_name(WORKER))
            await publish(channel, broker.FRAMES_INGRESS, *batches[last])
            await eventually(lambda: fleet.metric("b1", "camcount_balancer_unroutable_total"),
                             lambda n: n >= 1, timeout_s=30)
            fleet.signal(WORKER, signal.SIGCONT)
            done = await eventually(lambda: progress(engine, "cam-unroutable"),
                                    lambda p: p is not None and p[0] == last, timeout_s=60)
            assert done is not None
    finally:
        fleet.signal(WORKER, signal.SIGCONT)
        processes.stop(list(fleet.children.values()))
