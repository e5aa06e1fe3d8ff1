"""The motion detector's background survives a takeover (workers/backgrounds.py).

Two cameras see the same synthetic scene: one on a worker SIGKILLed mid-stream, whose
successor must start from the background the dead worker stored, not from its first frame
(objects included); the other counted by the successor throughout, as the reference. The
offline replay of the takeovers that once miscounted is tests/faults/test_takeover_background.py.
"""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.detector_tables import camera_backgrounds
from tests.integration.roles import DOWN_BUDGET_S, Fleet, ledger
from tests.integration.test_failover import finished, holder, send, synthetic
from tests.integration.test_worker_sigkill import by_direction
from tests.support import eventually, seed_camera
from workers import backgrounds

pytestmark = pytest.mark.slow

KILL_AT_SEQ = 20  # 5-frame batches at 10 fps: 10 s in, backgrounds stored since ~2 s


async def _stored(engine: AsyncEngine, camera_id: str) -> tuple[bytes, str] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(camera_backgrounds.c.image, camera_backgrounds.c.worker_id)
                                  .where(camera_backgrounds.c.camera_id == camera_id))).first()
    return None if row is None else (bytes(row.image), row.worker_id)


async def test_a_worker_taking_a_camera_over_primes_its_motion_model_from_the_stored_background(
    fleet: Fleet, engine: AsyncEngine, channel: AbstractChannel
) -> None:
    await seed_camera(engine, "bg-kill", worker_id="w-first")
    await seed_camera(engine, "bg-ref", worker_id="w-second")
    faulty, reference = synthetic("bg-kill", seed=41, crossings=8), synthetic("bg-ref", seed=41,
                                                                             crossings=8)
    last = len(reference) - 1
    fleet.balancer(MOVES_PER_INTERVAL="0")  # only failover moves a camera here
    first = fleet.worker("w-first", FAULT_INJECTION=f"before_commit@{KILL_AT_SEQ}")
    fleet.worker("w-second")
    await fleet.wait_live("b1", {"w-first", "w-second"})

    sender = asyncio.create_task(send(channel, [reference, faulty], 0.1))
    await eventually(lambda: asyncio.sleep(0, first.proc.poll()), lambda c: c is not None,
                     timeout_s=60, interval_s=0.05)
    stored = await _stored(engine, "bg-kill")
    assert stored is not None and stored[1] == "w-first", "the first worker stored nothing"
    image = backgrounds.decode(stored[0])
    assert image is not None and image.shape[1] == 320  # the detector's working width
    await eventually(lambda: holder(engine, "bg-kill"), lambda h: h == ("w-second", 2),
                     timeout_s=DOWN_BUDGET_S + 10)
    await sender

    ref = await finished(engine, "bg-ref", last)
    got = await finished(engine, "bg-kill", last)
    # w-second started bg-ref with nothing stored, and bg-kill from w-first's background.
    assert await fleet.metric("w-second", "camcount_worker_motion_backgrounds_total",
                              event="primed") == 1
    assert await fleet.metric("w-second", "camcount_worker_motion_backgrounds_total",
                              event="unprimed") == 1
    assert await fleet.metric("w-second", "camcount_worker_motion_backgrounds_total",
                              event="stored") >= 2
    after = await _stored(engine, "bg-kill")
    assert after is not None and after[1] == "w-second"  # the new owner keeps it fresh
    books = await ledger(engine, "bg-kill")
    books.check(last)
    assert books.gaps == {}
    assert sum(ref.values()) > 0, "the reference counted nothing: test is void"
    print(f"fault-free {ref}, taken over {got}")
    assert by_direction(got) == by_direction(ref)
