"""The checker-like books at the end of a soak: did every batch ingest confirmed get counted
once or recorded as a gap? A soak whose resources stay flat because it silently stopped
counting must fail too.

Confirmed batches: exactly, from ingest's confirm log (CONFIRM_LOG, a JSON line per batch the
broker confirmed) when there is one; otherwise only their number, from ingest's counter
(camcount_ingest_batches_published_total, once per batch at its confirm). Applied ones: the
outbox (one `counts` row per applied batch, written in the apply transaction, so two rows for
one batch id are a double apply). Gaps: coverage_gaps' seq ranges. Ingest's time-only gaps
(camera down, frames dropped under backpressure) cover batches never published, so they are
reported by reason but account for no confirmed batch.

With the log, each confirmed batch is sorted as the fault suite's checker does: applied once,
applied twice, inside a gap, or lost; applied batches never confirmed are "unexpected" (a
confirm lost with a closed connection explains them), reported, not failed. With the counter
alone, lost is what the applies and gaps cannot account for, which a gap over batches that
were never confirmed could hide: the log is the stronger book.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.ids import BatchId
from contracts.tables import coverage_gaps, outbox

CONFIRMED_METRIC = "camcount_ingest_batches_published_total"


@dataclass(frozen=True)
class GapRow:
    camera_id: str
    stream_epoch: int
    seq_from: int | None
    seq_to: int | None
    reason: str


@dataclass(frozen=True)
class Totals:
    exact: bool  # confirmed batches known one by one (the confirm log), not only counted
    confirmed: int
    applied_once: int
    applied_twice: int  # batch ids with more than one apply
    gapped: int  # confirmed, never applied, inside a recorded gap
    lost: int  # confirmed, never applied, in no gap
    unexpected: int = 0  # applied, never confirmed
    time_gaps: dict[str, int] = field(default_factory=dict)  # seq-less gaps by reason
    seq_gaps: dict[str, int] = field(default_factory=dict)  # gapped batches by reason

    @property
    def ok(self) -> bool:
        return self.applied_twice == 0 and self.lost == 0 and self.applied_once > 0

    def summary(self) -> str:
        seq = ", ".join(f"{r} {n}" for r, n in sorted(self.seq_gaps.items())) or "none"
        spans = ", ".join(f"{r} {n}" for r, n in sorted(self.time_gaps.items())) or "none"
        source = "confirm log" if self.exact else "ingest's counter"
        return (f"batches confirmed {self.confirmed} ({source}), applied once "
                f"{self.applied_once}, applied twice {self.applied_twice}, in gaps "
                f"{self.gapped} ({seq}), lost without a gap {self.lost}, applied but never "
                f"confirmed {self.unexpected}; time-only gaps: {spans}")


def tally(confirmed: Collection[BatchId] | int, applied: Iterable[BatchId],
          gaps: Sequence[GapRow]) -> Totals:
    """`confirmed`: the confirmed batches one by one, or only how many there were."""
    applies = Counter(applied)
    gap_reason: dict[BatchId, str] = {}
    time_gaps: Counter[str] = Counter()
    for gap in gaps:
        if gap.seq_from is None:
            time_gaps[gap.reason] += 1
            continue
        last = gap.seq_to if gap.seq_to is not None else gap.seq_from
        for seq in range(gap.seq_from, last + 1):
            gap_reason.setdefault(BatchId(gap.camera_id, gap.stream_epoch, seq), gap.reason)
    if isinstance(confirmed, int):
        seq_gaps = Counter(r for b, r in gap_reason.items() if b not in applies)
        once = sum(1 for n in applies.values() if n == 1)
        twice = sum(1 for n in applies.values() if n > 1)
        left = confirmed - once - twice - sum(seq_gaps.values())
        return Totals(False, confirmed, once, twice, sum(seq_gaps.values()), max(0, left),
                      max(0, -left), dict(time_gaps), dict(seq_gaps))
    ids = set(confirmed)
    seq_gaps = Counter(gap_reason[b] for b in ids if b not in applies and b in gap_reason)
    return Totals(
        True, len(ids),
        applied_once=sum(1 for b in ids if applies[b] == 1),
        applied_twice=sum(1 for b, n in applies.items() if n > 1),
        gapped=sum(seq_gaps.values()),
        lost=sum(1 for b in ids if b not in applies and b not in gap_reason),
        unexpected=sum(1 for b in applies if b not in ids),
        time_gaps=dict(time_gaps), seq_gaps=dict(seq_gaps),
    )


def read_confirm_log(path: Path) -> set[BatchId] | None:
    """The batches ingest's CONFIRM_LOG lists; None when there is no log (an ingest without
    the setting)."""
    if not path.exists():
        return None
    confirmed = set()
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            confirmed.add(BatchId(str(row["camera_id"]), int(row["stream_epoch"]),
                                  int(row["seq"])))
    return confirmed


def metric_by_camera(metrics_text: str, name: str) -> dict[str, float]:
    """A Prometheus metric's samples by their camera label."""
    return {sample.labels.get("camera", ""): sample.value
            for family in text_string_to_metric_families(metrics_text)
            for sample in family.samples if sample.name == name}


async def read_books(engine: AsyncEngine) -> tuple[list[BatchId], list[GapRow]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload["batch_id"].astext)
                                  .where(outbox.c.topic == "counts"))
        applied = [BatchId.parse(r[0]) for r in rows if r[0]]
        spans = await conn.execute(select(
            coverage_gaps.c.camera_id, coverage_gaps.c.stream_epoch, coverage_gaps.c.seq_from,
            coverage_gaps.c.seq_to, coverage_gaps.c.reason))
        gaps = [GapRow(r.camera_id, int(r.stream_epoch), r.seq_from, r.seq_to, r.reason)
                for r in spans]
    return applied, gaps


async def applied_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox)
                                       .where(outbox.c.topic == "counts"))).scalar_one())
