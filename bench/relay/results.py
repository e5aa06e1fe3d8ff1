"""What one contestant did, and the table that sets the balancer beside the forwarder.

Kept apart from the I/O so the arithmetic (percentiles, ratios, the verdict) is plain code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TARGET_RATIO = 0.8  # issue 4: the balancer keeps at least 0.8 of the forwarder's throughput


@dataclass(frozen=True)
class ContestantResult:
    name: str
    saturated_per_s: float  # batches received by the fake workers per second, closed loop
    cpu_ms_per_batch: float  # the contestant process's CPU time per relayed batch, saturated
    # Saturated, too: were the rig (producer and fake workers) or the machine the limit?
    rig_cpu_pct: float  # the bench process, % of one core
    host_busy_pct: float  # all cores
    paced_offered_per_s: float  # what the producer really published in the paced window
    p50_ms: float
    p99_ms: float
    published: int  # every batch of every phase
    relayed: int  # distinct batches the fake workers received
    duplicates: int  # deliveries beyond the first, plus any of a batch never published
    stamped: int  # deliveries carrying assignment_epoch (the balancer adds it)
    exit_code: int | None

    @property
    def exact(self) -> bool:
        """Every published batch relayed exactly once."""
        return self.relayed == self.published and self.duplicates == 0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it (so the
    p99 of 100 samples is the 99th, a real observation, never an interpolation)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ratio(results: Sequence[ContestantResult]) -> float:
    by_name = {r.name: r for r in results}
    forwarder = by_name["forwarder"].saturated_per_s
    return by_name["balancer"].saturated_per_s / forwarder if forwarder > 0 else math.nan


def format_table(results: Sequence[ContestantResult], paced_rate: float) -> str:
    base = next(r for r in results if r.name == "forwarder")
    head = ("contestant", "batches/s saturated", "CPU ms/batch", "rig CPU %", "host busy %",
            f"p50 ms @{paced_rate:.0f}/s", f"p99 ms @{paced_rate:.0f}/s",
            "added p99 ms", "relayed/published", "dups")
    rows = [head]
    for r in results:
        added = "-" if r is base else f"{r.p99_ms - base.p99_ms:+.1f}"
        rows.append((r.name, f"{r.saturated_per_s:.1f}", f"{r.cpu_ms_per_batch:.2f}",
                     f"{r.rig_cpu_pct:.0f}", f"{r.host_busy_pct:.0f}",
                     f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", added,
                     f"{r.relayed}/{r.published}", str(r.duplicates)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [" | ".join(cell.rjust(w) if i else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def format_verdict(results: Sequence[ContestantResult]) -> str:
    value = ratio(results)
    verdict = "PASS" if value >= TARGET_RATIO else "FAIL"
    lines = [f"balancer/forwarder throughput: {value:.2f} (target >= {TARGET_RATIO:.2f}): "
             f"{verdict}"]
    for r in results:
        if not r.exact:
            lines.append(f"WARNING {r.name}: relayed {r.relayed} of {r.published} published, "
                         f"{r.duplicates} duplicate deliveries")
    return "\n".join(lines)
