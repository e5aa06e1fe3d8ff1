"""Recording coverage gaps, idempotently (one gap per span start)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.gaps import GapSpan
from contracts.messages import BatchHeaders, MessageError
from contracts.tables import coverage_gaps

log = logging.getLogger(__name__)


async def record_gaps(conn: AsyncConnection, camera_id: str, gaps: Sequence[GapSpan]) -> None:
    if not gaps:
        return
    await conn.execute(
        insert(coverage_gaps)
        .values([
            {"camera_id": camera_id, "stream_epoch": g.stream_epoch, "seq_from": g.seq_from,
             "seq_to": g.seq_to, "reason": g.reason}
            for g in gaps
        ])
        .on_conflict_do_nothing(constraint="uq_coverage_gaps_start")
    )


async def record_dead_lettered(
    engine: AsyncEngine, headers: Mapping[str, Any] | None
) -> bool:
    """A message going to the DLQ whose headers still name its batch leaves a gap with reason
    'dead_lettered' (invariant 2: nothing disappears silently). False when the headers do not
    identify a batch of a known camera: then the DLQ entry is the only record."""
    try:
        batch = BatchHeaders.from_amqp(headers)
    except MessageError:
        return False
    span = GapSpan(batch.stream_epoch, batch.seq, batch.seq, "dead_lettered")
    try:
        async with engine.begin() as conn:
            await record_gaps(conn, batch.camera_id, [span])
    except IntegrityError:
        log.warning("dead-lettered batch %s names an unknown camera", batch.batch_id)
        return False
    return True
