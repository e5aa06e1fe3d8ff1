"""A durable count of how often the broker redelivered each batch, against poison batches.

A batch that crashes the worker holding it (a decoder fault, an out-of-memory model run) comes
back to the next worker, and the next: classic queues keep no delivery count, and an in-memory
count dies with the process. So a redelivered batch (the broker's `redelivered` flag: its last
holder died, drained or gave it back) bumps a row here before any work is done on it, and past
MAX_REDELIVERIES it is dead-lettered, which records it as a gap. First deliveries, the common
case, cost nothing.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.messages import BatchHeaders
from contracts.tables import batch_redeliveries


async def count_redelivery(engine: AsyncEngine, headers: BatchHeaders) -> int:
    """Record one more redelivery of this batch; returns its redeliveries so far."""
    new = insert(batch_redeliveries).values(
        camera_id=headers.camera_id, stream_epoch=headers.stream_epoch, seq=headers.seq,
        deliveries=1,
    )
    stmt = new.on_conflict_do_update(
        index_elements=["camera_id", "stream_epoch", "seq"],
        set_={"deliveries": batch_redeliveries.c.deliveries + 1, "last_at": func.now()},
    ).returning(batch_redeliveries.c.deliveries)
    async with engine.begin() as conn:
        return int((await conn.execute(stmt)).scalar_one())
