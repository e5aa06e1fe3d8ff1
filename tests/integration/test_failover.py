"""Failover, fencing, circuit breakers and a standby balancer, every role its own process,
against the real RabbitMQ and PostgreSQL. Batches go to frames.ingress as ingest sends them;
the balancer routes them.

The checker (`ledger`) reads what was committed: the outbox has one row per applied batch in
commit order, coverage_gaps the spans that were not counted. Per camera, applied sequence
numbers must rise strictly (in order, nothing counted twice) and every sequence number up to
the last must be applied or inside a gap (nothing missing silently).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.messages import BatchHeaders
from contracts.tables import assignments, crossing_events
from simulator.scenes import SyntheticScene
from tests.integration.roles import (
    DOWN_BUDGET_S,
    Fleet,
    ledger,
)
from tests.integration.test_worker_sigkill import by_direction, clip_batches
from tests.support import eventually, progress, publish, scene_batches, seed_camera

pytestmark = pytest.mark.slow



Batches = list[tuple[BatchHeaders, bytes]]


def synthetic(camera_id: str, seed: int, crossings: int = 4) -> Batches:
    scene = SyntheticScene(seed=seed, crossings=crossings, warmup_s=1.0)
    return scene_batches(scene, camera_id=camera_id, assignment_epoch=None)


async def send(channel: AbstractChannel, streams: Sequence[Batches], interval_s: float,
               until: int | None = None, start: int = 0) -> None:
    """Publish the streams' batches to frames.ingress, one of each per interval."""
    longest = max(len(s) for s in streams)
    for i in range(start, min(longest, until if until is not None else longest)):
        for stream in streams:
            if i < len(stream):
                await publish(channel, broker.FRAMES_INGRESS, *stream[i])
        await asyncio.sleep(interval_s)



async def finished(engine: AsyncEngine, camera_id: str, last_seq: int,
                   timeout_s: float = 60) -> dict[str, int]:
    got = await eventually(lambda: progress(engine, camera_id),
                           lambda p: p is not None and p[0] == last_seq, timeout_s=timeout_s)
    assert got is not None
    return got[1]


async def holder(engine: AsyncEngine, camera_id: str) -> tuple[str, int] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(assignments.c.worker_id, assignments.c.epoch).where(
            assignments.c.camera_id == camera_id))).first()
    return None if row is None else (row.worker_id, int(row.epoch))


async def events(engine: AsyncEngine, camera_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(crossing_events).where(
            crossing_events.c.camera_id == camera_id))).scalar_one())


async def test_sigkilled_worker_is_declared_dead_and_its_camera_counts_like_a_fault_free_run(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel, shared_data: Path
) -> None:
    clip = shared_data / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
    model = shared_data / "models" / "yolov8n_int8.onnx"
    onnx = {"WORKER_TYPE": "onnx", "DETECTOR": "onnx", "MODEL_PATH": str(model),
            "DETECT_CLASSES": "person"}
    await seed_camera(engine, "campus-kill", worker_id="w-doomed")
    await seed_camera(engine, "campus-ref", worker_id="w-steady")
    reference = [(h.model_copy(update={"assignment_epoch": None}), b)
                 for h, b in clip_batches(clip, "campus-ref")]
    faulty = [(h.model_copy(update={"assignment_epoch": None}), b)
              for h, b in clip_batches(clip, "campus-kill")]
    last = len(reference) - 1
    fleet.balancer(MOVES_PER_INTERVAL="0")  # only failover moves a camera here
    doomed = fleet.worker("w-doomed", FAULT_INJECTION="before_commit@6", **onnx)
    fleet.worker("w-steady", **onnx)
    await fleet.wait_live("b1", {"w-doomed", "w-steady"})

    sender = asyncio.create_task(send(channel, [reference, faulty], 0.15))
    await eventually(lambda: asyncio.sleep(0, doomed.proc.poll()), lambda c: c is not None,
                     timeout_s=60, interval_s=0.02)
    killed_mono = time.monotonic()
    assert doomed.proc.returncode == -9
    await eventually(lambda: fleet.live_workers("b1"), lambda live: "w-doomed" not in live,
                     timeout_s=DOWN_BUDGET_S + 5, interval_s=0.05)
    declared_s = time.monotonic() - killed_mono
    print(f"SIGKILL to declared down: {declared_s:.2f} s (budget {DOWN_BUDGET_S:.1f} s)")
    assert declared_s <= DOWN_BUDGET_S
    await sender

    ref = await finished(engine, "campus-ref", last)
    got = await finished(engine, "campus-kill", last)
    assert await holder(engine, "campus-kill") == ("w-steady", 2)  # moved once, new epoch
    books = await ledger(engine, "campus-kill")
    books.check(last)
    assert sum(ref.values()) > 0, "the reference run counted nobody: test is void"
    print(f"fault-free {ref}, failed over {got}, gaps {books.gaps}")
    # The dead worker's queue was drained in order onto the new worker, which resumed from
    # the checkpoint: nothing was lost, so the counts are a fault-free run's.
    assert books.gaps == {}
    assert by_direction(got) == by_direction(ref)
    assert await events(engine, "campus-kill") == await events(engine, "campus-ref")
    assert await fleet.metric("b1", "camcount_balancer_failovers_total") >= 1


async def test_a_sigstopped_worker_resumed_after_its_camera_moved_cannot_commit(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    await seed_camera(engine, "cam-stop", worker_id="w-frozen")
    batches = synthetic("cam-stop", seed=5)
    last = len(batches) - 1
    fleet.balancer(MOVES_PER_INTERVAL="0")
    fleet.worker("w-frozen")
    fleet.worker("w-thawed")
    await fleet.wait_live("b1", {"w-frozen", "w-thawed"})

    fleet.signal("w-frozen", signal.SIGSTOP)
    # Routed to the frozen worker until it is judged down: the broker pushes its prefetch to
    # the frozen process's socket; the rest waits in its queue and is failed over.
    await send(channel, [batches], 0.05, until=len(batches) // 2)
    await eventually(lambda: fleet.live_workers("b1"), lambda live: "w-frozen" not in live,
                     timeout_s=DOWN_BUDGET_S + 5, interval_s=0.05)
    await eventually(lambda: holder(engine, "cam-stop"), lambda h: h == ("w-thawed", 2))
    fleet.signal("w-frozen", signal.SIGCONT)  # wakes up holding batches of epoch 1
    await send(channel, [batches], 0.05, start=len(batches) // 2)
    await finished(engine, "cam-stop", last)
    await eventually(
        lambda: fleet.metric("w-frozen", "camcount_worker_batches_total", outcome="fenced"),
        lambda fenced: fenced >= 1, timeout_s=20)
    applied = await fleet.metric("w-frozen", "camcount_worker_batches_total",
                                 outcome="applied")
    assert applied == 0, "a worker fenced off its camera committed"
    books = await ledger(engine, "cam-stop")
    books.check(last)
    print(f"gaps after the freeze: {books.gaps}")
    assert await holder(engine, "cam-stop") == ("w-thawed", 2)


async def test_a_failing_worker_is_broken_off_then_probed_and_closed_when_it_recovers(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    cameras = ["cam-f1", "cam-f2"]
    for camera in cameras:
        await seed_camera(engine, camera, worker_id="w-flaky")
    streams = [synthetic(c, seed=20 + i, crossings=14) for i, c in enumerate(cameras)]
    fleet.balancer(BREAKER_MIN_VOLUME="4", BREAKER_WINDOW="8", BREAKER_COOL_DOWN_S="1.5",
                   BREAKER_PROBES="2", MOVES_PER_INTERVAL="5")
    fleet.worker("w-flaky", FAULT_INJECTION="fail_until@10", MAX_ATTEMPTS="2")
    fleet.worker("w-sound")
    await fleet.wait_live("b1", {"w-flaky", "w-sound"})

    async def transitions(to: str) -> float:
        return await fleet.metric("b1", "camcount_balancer_breaker_transitions_total",
                                  to_state=to)

    # ~13 s of batches: through the failing first 10 s of the worker's life and beyond.
    sender = asyncio.create_task(send(channel, streams, 0.25))
    await eventually(lambda: transitions("open"), lambda n: n >= 1, timeout_s=20)
    # Its cameras were moved to the sound worker, which counts them meanwhile.
    for camera in cameras:
        await eventually(lambda c=camera: holder(engine, c),  # type: ignore[misc]
                         lambda h: h is not None and h[0] == "w-sound", timeout_s=20)
    await eventually(lambda: transitions("closed"), lambda n: n >= 1, timeout_s=40)
    health = await fleet.health("b1")
    flaky = next(w for w in health["workers"] if w["worker_id"] == "w-flaky")
    print(f"w-flaky after recovery: {flaky}")
    assert flaky["breaker"]["state"] == "closed"
    assert await transitions("half_open") >= 1
    assert await fleet.metric("w-flaky", "camcount_worker_batches_total",
                              outcome="applied") >= 2  # the probes
    await sender
    for camera, stream in zip(cameras, streams, strict=True):
        await finished(engine, camera, len(stream) - 1)
        books = await ledger(engine, camera)
        books.check(len(stream) - 1)
        print(f"{camera}: gaps {sorted(set(books.gaps.values()))}")


async def test_heartbeat_jitter_within_the_pause_moves_no_camera(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    await seed_camera(engine, "cam-jit", worker_id="w-jittery")
    batches = synthetic("cam-jit", seed=9)
    fleet.balancer(MOVES_PER_INTERVAL="0")
    # Beats every 0.2 s, each delayed by up to 0.7 s more: silences up to 0.9 s, within the
    # 1 s acceptable pause.
    fleet.worker("w-jittery", FAULT_INJECTION="beat_jitter@0.7")
    fleet.worker("w-calm")
    await fleet.wait_live("b1", {"w-jittery", "w-calm"})
    await send(channel, [batches], 0.25)
    await finished(engine, "cam-jit", len(batches) - 1)
    assert await holder(engine, "cam-jit") == ("w-jittery", 1)
    for kind in ("worker.suspect", "worker.down"):
        assert await fleet.metric("b1", "camcount_balancer_liveness_events_total",
                                  kind=kind) == 0, kind
    books = await ledger(engine, "cam-jit")
    books.check(len(batches) - 1)
    assert books.gaps == {}


async def test_two_balancers_keep_each_camera_in_order_and_the_standby_takes_over(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    cameras = ["cam-a", "cam-b", "cam-c"]
    for camera in cameras:
        await seed_camera(engine, camera)
    streams = [synthetic(c, seed=30 + i) for i, c in enumerate(cameras)]
    first = fleet.balancer("b1", MOVES_PER_INTERVAL="0")
    # b1 consumes frames.ingress first, so it is the active one and b2 the standby.
    await eventually(lambda: fleet.health("b1"), lambda h: h.get("ok") is True, timeout_s=60)
    fleet.balancer("b2", MOVES_PER_INTERVAL="0")
    fleet.worker("w-1")
    fleet.worker("w-2")
    for name in ("b1", "b2"):
        await fleet.wait_live(name, {"w-1", "w-2"})

    half = min(len(s) for s in streams) // 2
    await send(channel, streams, 0.1, until=half)
    assert (await fleet.health("b1"))["active"] and not (await fleet.health("b2"))["active"]
    first.proc.kill()  # mid-stream; its unacked deliveries go back to frames.ingress
    await send(channel, streams, 0.1, start=half)
    for camera, stream in zip(cameras, streams, strict=True):
        await finished(engine, camera, len(stream) - 1)
        books = await ledger(engine, camera)
        books.check(len(stream) - 1)
        assert books.gaps == {}, camera
        assert books.applied == list(range(len(stream))), camera
    assert (await fleet.health("b2"))["active"]
    assert await fleet.metric("b2", "camcount_balancer_routed_total") > 0
