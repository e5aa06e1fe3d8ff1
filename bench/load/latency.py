"""Per-event stage times and the per-stage latency breakdown. Pure.

One count event carries the instants of its batch on the way through the system:
captured (ingest stamped the first frame) -> published (ingest handed the batch to the broker)
-> started (a worker began decoding it) -> committed (the apply transaction wrote its outbox
row) -> broadcast (the broadcaster's relay took the committed row: relayed_at) -> received
(the bench's WebSocket client got it). All are wall-clock seconds of this one machine, so
differences between them are latencies; each stage is the difference between neighbours, and
"total" is capture to client.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STAGES = ("ingest", "to worker", "worker", "to relay", "to client", "total")
STAGE_SPANS = {  # stage -> (from, to)
    "ingest": ("captured", "published"),
    "to worker": ("published", "started"),
    "worker": ("started", "committed"),
    "to relay": ("committed", "broadcast"),
    "to client": ("broadcast", "received"),
    "total": ("captured", "received"),
}
INSTANTS = ("captured", "published", "started", "committed", "broadcast", "received")
QUANTILES = (0.5, 0.95, 0.99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: a real observation (the p99 of 100 samples is the 99th), nan if none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class EventTimes:
    camera_id: str
    event_seq: int
    captured: float
    published: float | None
    started: float | None
    committed: float
    broadcast: float | None
    received: float

    @classmethod
    def of(cls, message: Mapping[str, Any], received: float) -> EventTimes:
        """From a WebSocket 'counts' message (contracts.messages.CountUpdate)."""
        return cls(str(message["camera_id"]), int(message["event_seq"]),
                   float(message["captured_at"]), _opt(message.get("published_at")),
                   _opt(message.get("started_at")), float(message["committed_at"]),
                   _opt(message.get("relayed_at")), received)

    def span_s(self, stage: str) -> float | None:
        start, end = STAGE_SPANS[stage]
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else float(b - a)

    @property
    def total_s(self) -> float:
        return self.received - self.captured

    @property
    def in_order(self) -> bool:
        """Whether the instants it carries follow the pipeline's order (a clock or stamping
        fault otherwise)."""
        known = [t for name in INSTANTS if (t := getattr(self, name)) is not None]
        return all(a <= b for a, b in itertools.pairwise(known))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class StageStats:
    stage: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def breakdown(events: Sequence[EventTimes]) -> list[StageStats]:
    """p50/p95/p99 of every stage over the events that carry both of its instants."""
    rows = []
    for stage in STAGES:
        spans = [s * 1000 for e in events if (s := e.span_s(stage)) is not None]
        rows.append(StageStats(stage, len(spans), *(percentile(spans, q) for q in QUANTILES)))
    return rows


def format_breakdown(rows: Sequence[StageStats]) -> str:
    head = ("stage", "from -> to", "events", "p50 ms", "p95 ms", "p99 ms")
    table = [head]
    for r in rows:
        start, end = STAGE_SPANS[r.stage]
        table.append((r.stage, f"{start} -> {end}", str(r.count), f"{r.p50_ms:.1f}",
                      f"{r.p95_ms:.1f}", f"{r.p99_ms:.1f}"))
    return format_table(table)


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
