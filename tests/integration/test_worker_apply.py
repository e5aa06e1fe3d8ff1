"""The worker against the real RabbitMQ and PostgreSQL: counts, duplicates, redelivery,
dead-lettering with a reason, fencing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.batch import EncodedFrame, decode_batch, encode_batch
from contracts.tables import count_buckets, coverage_gaps, crossing_events, zone_buckets
from contracts.zone_tables import zone_events
from infra import amqp
from simulator.scenes import SyntheticScene
from tests.conftest import Isolated
from tests.support import eventually, progress, publish, scene_batches, seed_camera, truth_totals
from workers.service import Worker
from workers.settings import WorkerSettings

WORKER = "w-apply"
QUEUE = broker.worker_queue_name(WORKER)


@asynccontextmanager
async def running_worker(iso: Isolated, **overrides: object) -> AsyncIterator[Worker]:
    worker = Worker(WorkerSettings.model_validate({
        "rabbitmq_url": iso.rabbitmq_url, "database_url": iso.database_url,
        "worker_id": WORKER, "retry_delay_s": 0.2, **overrides,
    }))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await eventually(lambda: asyncio.sleep(0, worker.consuming), bool, timeout_s=20)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def effects(engine: AsyncEngine, camera_id: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        events = (await conn.execute(
            select(func.count()).select_from(crossing_events)
            .where(crossing_events.c.camera_id == camera_id))).scalar_one()
        bucket_sum = (await conn.execute(
            select(func.coalesce(func.sum(count_buckets.c.count), 0))
            .where(count_buckets.c.camera_id == camera_id))).scalar_one()
    return int(events), int(bucket_sum)


async def zone_totals(engine: AsyncEngine, camera_id: str) -> tuple[int, int]:
    """Entries and exits in the minute buckets, which the zone events one by one match."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(func.coalesce(func.sum(zone_buckets.c.entries), 0),
                   func.coalesce(func.sum(zone_buckets.c.exits), 0))
            .where(zone_buckets.c.camera_id == camera_id))).one()
        events: dict[str, int] = dict((await conn.execute(
            select(zone_events.c.kind, func.count()).where(zone_events.c.camera_id == camera_id)
            .group_by(zone_events.c.kind))).tuples().all())
    assert (events.get("enter", 0), events.get("exit", 0)) == (row[0], row[1])
    return int(row[0]), int(row[1])


@pytest.mark.slow
async def test_counts_match_truth_and_duplicates_or_redeliveries_change_nothing(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    line_id = await seed_camera(engine, "cam-a", worker_id=WORKER)
    scene = SyntheticScene(seed=3, crossings=4, warmup_s=2.0)
    # 4 s of empty tail: a track that left the frame ends (and exits its zone) after ByteTrack's
    # lost-track buffer (30 frames at 30 fps).
    batches = scene_batches(scene, camera_id="cam-a", tail_s=4.0)
    last = len(batches) - 1
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection:
        channel = await connection.channel()
        await amqp.declare_frames_topology(channel)
        queue = await amqp.declare_queue(channel, broker.worker_queue(WORKER))
        async with running_worker(isolated):
            for headers, body in batches:
                await publish(channel, QUEUE, headers, body)
            done = await eventually(lambda: progress(engine, "cam-a"),
                                    lambda p: p is not None and p[0] == last)
            assert done is not None
            assert done[1] == truth_totals(scene, line_id)
            before = await effects(engine, "cam-a")
            assert before == (len(scene.truth()), len(scene.truth()))
            # Every object passes through the right half once: one entry and one exit each.
            assert await zone_totals(engine, "cam-a") == (len(scene.truth()),) * 2
            # Duplicates: the same batch ids published again.
            for k in (0, 5, last):
                await publish(channel, QUEUE, *batches[k])
            await eventually(lambda: queue.declare(), lambda q: q.message_count == 0)
            await asyncio.sleep(0.5)

        # A redelivery: a consumer takes a batch and dies before acking it.
        await publish(channel, QUEUE, *batches[2])
        crashing = await connection.channel()
        taken = await (await crashing.get_queue(QUEUE)).get(no_ack=False)
        assert taken is not None and not taken.redelivered
        await crashing.close()  # unacked: RabbitMQ requeues it, flagged redelivered

        async with running_worker(isolated) as restarted:  # a fresh process: empty caches
            await eventually(lambda: asyncio.sleep(0, restarted.processed), lambda n: n >= 1)
        assert await effects(engine, "cam-a") == before
        assert (await progress(engine, "cam-a")) == done
        dead = await amqp.declare_queue(channel, broker.DEAD_QUEUE)
        assert dead.declaration_result.message_count == 0


@pytest.mark.slow
async def test_bad_messages_are_dead_lettered_with_a_reason_and_the_worker_goes_on(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    await seed_camera(engine, "cam-b", worker_id=WORKER)
    scene = SyntheticScene(seed=5, crossings=1, warmup_s=1.0)
    good = scene_batches(scene, camera_id="cam-b")
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection, running_worker(isolated) as worker:
        channel = await connection.channel()
        headers0, body0 = good[0]
        # A batch whose body is garbage: dead-lettered, and its seq recorded as a gap.
        junk = headers0.model_copy(update={"seq": 1000})
        await channel.default_exchange.publish(
            aio_pika.Message(b"not a batch", headers=junk.to_amqp(), message_id="junk-1"),
            routing_key=QUEUE)
        await channel.default_exchange.publish(
            aio_pika.Message(body0, headers={"camera_id": "cam-b"}, message_id="junk-2"),
            routing_key=QUEUE)
        # A batch with one corrupt JPEG: that frame is skipped, the rest is counted.
        frames = decode_batch(body0)
        broken = [frames[0], EncodedFrame(frames[1].captured_at, frames[1].width,
                                          frames[1].height, b"\xff\xd8garbage"), *frames[2:]]
        await publish(channel, QUEUE, headers0, encode_batch(broken))
        for headers, body in good[1:]:
            await publish(channel, QUEUE, headers, body)
        done = await eventually(lambda: progress(engine, "cam-b"),
                                lambda p: p is not None and p[0] == len(good) - 1)
        assert done is not None and sum(done[1].values()) == 1
        assert worker.consuming

        dead = await channel.get_queue(broker.FRAMES_DEAD)
        reasons = {}
        for _ in range(2):
            message = await dead.get(timeout=5)
            assert message is not None
            await message.ack()
            reasons[message.message_id] = str(message.headers[broker.HEADER_ERROR])
        assert "unknown magic" in reasons["junk-1"]
        assert "stream_epoch" in reasons["junk-2"] and "seq" in reasons["junk-2"]
    async with engine.connect() as conn:
        gaps = [(g.seq_from, g.reason) for g in await conn.execute(select(coverage_gaps))]
    assert (1000, "dead_lettered") in gaps


@pytest.mark.slow
async def test_a_stale_assignment_epoch_cannot_commit(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    """Fencing: the camera was reassigned (epoch 2); a batch routed under epoch 1 is not
    applied by this worker but handed back to the balancer's ingress queue."""
    await seed_camera(engine, "cam-c", worker_id=WORKER, epoch=2)
    scene = SyntheticScene(seed=7, crossings=1, warmup_s=0.5)
    headers, body = scene_batches(scene, camera_id="cam-c", assignment_epoch=1)[0]
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection, running_worker(isolated):
        channel = await connection.channel()
        await publish(channel, QUEUE, headers, body)
        ingress = await channel.get_queue(broker.FRAMES_INGRESS)
        returned = await eventually(lambda: ingress.get(fail=False), lambda m: m is not None)
        assert returned is not None
        assert returned.message_id == str(headers.batch_id)
        assert "assignment_epoch" not in (returned.headers or {})
        assert await progress(engine, "cam-c") is None


@pytest.mark.slow
@pytest.mark.parametrize("window", [3, 0])
async def test_a_requeued_batch_is_put_back_in_order_by_the_reorder_window(
    isolated: Isolated, engine: AsyncEngine, window: int
) -> None:
    """Batch 3's first transaction fails; it is requeued behind batches 4.. already
    prefetched. With the window they wait for it and nothing is lost; without one, batch 3
    becomes a recorded gap (counted once or recorded as a gap, never silently lost)."""
    await seed_camera(engine, "cam-r", worker_id=WORKER)
    batches = scene_batches(SyntheticScene(seed=9, crossings=2, warmup_s=1.0), camera_id="cam-r")
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection:
        channel = await connection.channel()
        await amqp.declare_frames_topology(channel)
        await amqp.declare_queue(channel, broker.worker_queue(WORKER))
        for headers, body in batches:  # all queued before the worker starts: it prefetches
            await publish(channel, QUEUE, headers, body)
        async with running_worker(isolated, fault_injection="fail_once@3", prefetch_count=4,
                                  reorder_window_batches=window):
            await eventually(lambda: progress(engine, "cam-r"),
                             lambda p: p is not None and p[0] == len(batches) - 1)
    async with engine.connect() as conn:
        gaps = [(g.seq_from, g.seq_to) for g in await conn.execute(select(coverage_gaps))]
    assert gaps == ([] if window else [(3, 3)])
