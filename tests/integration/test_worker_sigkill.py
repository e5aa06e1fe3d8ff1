"""A worker process SIGKILLed in the middle of a batch — before its commit, and after the
commit but before the ack — ends with exactly the counts of a fault-free run: the redelivered
batches are re-applied or recognised, and the tracker resumes from its checkpoint.

Real footage and a stateless detector (ONNX), so a fault-free run is the exact reference."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts import broker
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders
from contracts.tables import crossing_events
from infra import amqp
from ingest.jpeg import encode_jpeg
from tests.conftest import Isolated
from tests.support import eventually, progress, publish, seed_camera

pytestmark = pytest.mark.slow


def clip_batches(
    path: Path, camera_id: str, per_batch: int = 5
) -> list[tuple[BatchHeaders, bytes]]:
    base = time.time()
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
            jpeg, w, h = encode_jpeg(image, 640, 90)
            frames.append(EncodedFrame(base + i / 25, w, h, jpeg))
    out = []
    for seq, start in enumerate(range(0, len(frames), per_batch)):
        chunk = frames[start : start + per_batch]
        out.append((BatchHeaders(
            camera_id=camera_id, stream_epoch=1, seq=seq, capability="onnx",
            captured_at=chunk[0].captured_at, deadline_at=base + 3600, frame_count=len(chunk),
            assignment_epoch=1,
        ), encode_batch(chunk)))
    return out


async def events(engine: AsyncEngine, camera_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(crossing_events).where(
            crossing_events.c.camera_id == camera_id))).scalar_one())


def by_direction(totals: dict[str, int]) -> dict[str, int]:
    return {k.split(":", 1)[1]: v for k, v in totals.items()}


async def test_sigkill_before_and_after_commit_counts_like_a_fault_free_run(
    isolated: Isolated, engine: AsyncEngine, shared_data: Path, tmp_path: Path
) -> None:
    clip = shared_data / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
    model = shared_data / "models" / "yolov8n_int8.onnx"

    def worker(worker_id: str, fault: str = "") -> processes.Child:
        env = {**isolated.env(), "WORKER_ID": worker_id, "WORKER_TYPE": "onnx",
               "DETECTOR": "onnx", "MODEL_PATH": str(model), "DETECT_CLASSES": "person",
               "FAULT_INJECTION": fault, "RETRY_DELAY_S": "0.1"}
        return processes.spawn(worker_id, processes.role_argv("worker"), env,
                               tmp_path / f"{worker_id}.log")

    async def wait_exit(child: processes.Child) -> int:
        await eventually(lambda: asyncio.sleep(0, child.proc.poll()), lambda c: c is not None,
                         timeout_s=120)
        return int(child.proc.returncode)

    for camera, worker_id in (("campus-ref", "w-ref"), ("campus-kill", "w-kill")):
        await seed_camera(engine, camera, worker_id=worker_id)
    reference = clip_batches(clip, "campus-ref")
    faulty = clip_batches(clip, "campus-kill")
    last = len(reference) - 1
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    children: list[processes.Child] = []
    try:
        async with connection:
            channel = await connection.channel()
            await amqp.declare_frames_topology(channel)
            for worker_id in ("w-ref", "w-kill"):
                await amqp.declare_queue(channel, broker.worker_queue(worker_id))
            for headers, body in reference:
                await publish(channel, broker.worker_queue_name("w-ref"), headers, body)
            for headers, body in faulty:
                await publish(channel, broker.worker_queue_name("w-kill"), headers, body)

            children.append(worker("w-ref"))
            children.append(worker("w-kill", "before_commit@4"))
            assert await wait_exit(children[-1]) == -9
            assert (await progress(engine, "campus-kill") or (-1, {}))[0] == 3

            children.append(worker("w-kill", "after_commit@9"))
            assert await wait_exit(children[-1]) == -9
            assert (await progress(engine, "campus-kill") or (-1, {}))[0] == 9  # committed

            children.append(worker("w-kill"))  # batch 9 comes back: a duplicate, no effect
            ref = await eventually(lambda: progress(engine, "campus-ref"),
                                   lambda p: p is not None and p[0] == last, timeout_s=120)
            got = await eventually(lambda: progress(engine, "campus-kill"),
                                   lambda p: p is not None and p[0] == last, timeout_s=120)
            assert ref is not None and got is not None
            assert sum(ref[1].values()) > 0, "the reference run counted nobody: test is void"
            print(f"fault-free totals {ref[1]}, with two SIGKILLs {got[1]}")
            assert by_direction(got[1]) == by_direction(ref[1])
            assert await events(engine, "campus-kill") == await events(engine, "campus-ref")
    finally:
        processes.stop(children)


async def test_a_batch_that_kills_every_worker_is_dead_lettered_and_the_rest_counted(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path
) -> None:
    """A poison batch (here: SIGKILL before its commit, every time) comes back after each
    crash; past MAX_REDELIVERIES it is dead-lettered as a gap, while the batches redelivered
    beside it are counted once each and never blamed."""
    from contracts.tables import batch_redeliveries, coverage_gaps
    from simulator.scenes import SyntheticScene
    from tests.support import scene_batches

    await seed_camera(engine, "cam-poison", worker_id="w-poison")
    batches = scene_batches(SyntheticScene(seed=5, crossings=2, warmup_s=1.0),
                            camera_id="cam-poison")
    poison, last = 3, len(batches) - 1
    env = {**isolated.env(), "WORKER_ID": "w-poison", "FAULT_INJECTION": f"before_commit@{poison}",
           "MAX_REDELIVERIES": "3", "PREFETCH_COUNT": "4", "RETRY_DELAY_S": "0.1"}
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    children: list[processes.Child] = []
    try:
        async with connection:
            channel = await connection.channel()
            await amqp.declare_frames_topology(channel)
            await amqp.declare_queue(channel, broker.worker_queue("w-poison"))
            for headers, body in batches:
                await publish(channel, broker.worker_queue_name("w-poison"), headers, body)
            deaths = 0
            while deaths < 10:
                children.append(processes.spawn(f"w-poison-{deaths}",
                                                processes.role_argv("worker"), env,
                                                tmp_path / f"w-poison-{deaths}.log"))

                async def state(child: processes.Child = children[-1]) -> tuple[
                        int | None, tuple[int, dict[str, int]] | None]:
                    return child.proc.poll(), await progress(engine, "cam-poison")

                done = await eventually(
                    state, lambda r: r[0] is not None or (r[1] is not None and r[1][0] == last),
                    timeout_s=60)
                if done[0] is None:
                    break  # alive, and the camera is done
                deaths += 1
            # The first delivery and two redeliveries crashed it; the third is dead-lettered.
            assert deaths == 3
            async with engine.connect() as conn:
                gaps = {(g.seq_from, g.seq_to, g.reason) for g in await conn.execute(
                    select(coverage_gaps).where(coverage_gaps.c.camera_id == "cam-poison"))}
                counts = {int(r.seq): int(r.deliveries) for r in await conn.execute(
                    select(batch_redeliveries).where(
                        batch_redeliveries.c.camera_id == "cam-poison"))}
            assert gaps == {(poison, poison, "dead_lettered")}
            assert counts[poison] == 3
            assert all(n == 1 for seq, n in counts.items() if seq != poison), counts
    finally:
        processes.stop(children)
