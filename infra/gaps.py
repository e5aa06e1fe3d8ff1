"""Recording coverage gaps, idempotently (one gap per span start)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.gaps import GapSpan
from contracts.messages import BatchHeaders, MessageError
from contracts.tables import coverage_gaps

log = logging.getLogger(__name__)


async def record_gaps(conn: AsyncConnection, camera_id: str, gaps: Sequence[GapSpan]) -> None:
    for gap in gaps:
        await _record_gap(conn, camera_id, gap)


async def _record_gap(conn: AsyncConnection, camera_id: str, gap: GapSpan) -> None:
    """Insert one span; where a gap already starts at its first seq (one batch shed or
    dead-lettered alone, later found missing together with the batches after it), record the
    rest from where that gap ends. Doing nothing on that conflict left the rest of the span
    uncovered: batches neither counted nor in any gap (found by tests/faults)."""
    seq_from = gap.seq_from
    while seq_from <= gap.seq_to:
        inserted = (await conn.execute(
            insert(coverage_gaps)
            .values(camera_id=camera_id, stream_epoch=gap.stream_epoch, seq_from=seq_from,
                    seq_to=gap.seq_to, reason=gap.reason)
            .on_conflict_do_nothing(constraint="uq_coverage_gaps_start")
            .returning(coverage_gaps.c.id)
        )).first()
        if inserted is not None:
            return
        covered_to = (await conn.execute(
            select(coverage_gaps.c.seq_to).where(
                coverage_gaps.c.camera_id == camera_id,
                coverage_gaps.c.stream_epoch == gap.stream_epoch,
                coverage_gaps.c.seq_from == seq_from)
        )).scalar_one()
        seq_from = covered_to + 1


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
