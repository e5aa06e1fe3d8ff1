"""Recording coverage gaps, idempotently (one gap per span start)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.gaps import GapSpan
from contracts.tables import coverage_gaps


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
