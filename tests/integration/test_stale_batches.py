"""A batch past its deadline becomes a 'stale' gap, but never over a batch already applied
(a redelivery after a commit whose ack was lost): reports would understate coverage."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.messages import BatchHeaders
from contracts.tables import camera_progress, coverage_gaps
from tests.support import seed_camera
from workers.repository import record_stale


def headers(seq: int, epoch: int = 1) -> BatchHeaders:
    now = time.time()
    return BatchHeaders(camera_id="cam-stale", stream_epoch=epoch, seq=seq, captured_at=now - 60,
                        deadline_at=now - 50, frame_count=5, assignment_epoch=1)


async def test_stale_is_a_gap_only_for_batches_not_applied(engine: AsyncEngine) -> None:
    await seed_camera(engine, "cam-stale", worker_id="w1")
    async with engine.begin() as conn:
        await conn.execute(camera_progress.insert().values(
            camera_id="cam-stale", stream_epoch=2, last_seq=5, tracker_checkpoint={},
            totals={}, worker_id="w1"))
    assert await record_stale(engine, headers(3, epoch=2)) is False  # applied already
    assert await record_stale(engine, headers(5, epoch=2)) is False
    assert await record_stale(engine, headers(6, epoch=2)) is True
    assert await record_stale(engine, headers(9, epoch=3)) is True  # a newer stream
    async with engine.connect() as conn:
        gaps = {(r.stream_epoch, r.seq_from, r.seq_to, r.reason) for r in await conn.execute(
            select(coverage_gaps).where(coverage_gaps.c.camera_id == "cam-stale"))}
    assert gaps == {(2, 6, 6, "stale"), (3, 9, 9, "stale")}
