"""Recording coverage gaps (infra/gaps.py) against PostgreSQL: idempotent, and a span whose
first seq is already a gap of its own still leaves none of its seqs uncovered."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.gaps import GapSpan
from contracts.tables import coverage_gaps
from infra.gaps import record_gaps
from tests.support import seed_camera


async def _spans(engine: AsyncEngine) -> list[tuple[int, int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(coverage_gaps).order_by(coverage_gaps.c.seq_from))
        return [(r.seq_from, r.seq_to, r.reason) for r in rows]


async def test_a_span_starting_at_a_recorded_gap_is_recorded_from_where_that_ends(
    engine: AsyncEngine,
) -> None:
    await seed_camera(engine, "cam")
    async with engine.begin() as conn:
        # The balancer shed 35 alone and 40 alone; then a worker saw 34 -> 44 (missing 35-43).
        await record_gaps(conn, "cam", [GapSpan(1, 35, 35, "shed"), GapSpan(1, 37, 37, "shed")])
        await record_gaps(conn, "cam", [GapSpan(1, 35, 43, "missing")])
        await record_gaps(conn, "cam", [GapSpan(1, 35, 43, "missing")])  # idempotent
    spans = await _spans(engine)
    assert spans == [(35, 35, "shed"), (36, 43, "missing"), (37, 37, "shed")]
    covered = {s for lo, hi, _ in spans for s in range(lo, hi + 1)}
    assert covered == set(range(35, 44))
