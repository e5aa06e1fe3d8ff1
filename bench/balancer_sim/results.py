"""Counting a run's outcomes, and the table the benchmark prints."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from contracts.broker import Priority

GapKind = Literal["shed", "stale", "no_worker", "dead_lettered"]
GAP_KINDS: tuple[GapKind, ...] = ("shed", "stale", "no_worker", "dead_lettered")
ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)


@dataclass(frozen=True, slots=True)
class Move:
    """One camera reassignment. `source_state`: its holder's state then, as the balancer saw
    it ("down" once no longer live, else the breaker's): a move away from a closed holder was
    the policy's choice, any other was forced."""

    at_s: float
    camera_id: str
    source: str
    target: str
    source_state: str
    reason: str


@dataclass
class Tally:
    """Every generated batch ends in exactly one of: completed, or a gap of one kind."""

    generated: Counter[Priority] = field(default_factory=Counter)
    completed: Counter[Priority] = field(default_factory=Counter)
    gaps: dict[GapKind, Counter[Priority]] = field(
        default_factory=lambda: {kind: Counter() for kind in GAP_KINDS})
    latencies_s: list[float] = field(default_factory=list)
    moves: int = 0  # camera reassignments (each one a tracker reload on the new worker)
    move_log: list[Move] = field(default_factory=list)
    opens: int = 0  # breaker openings
    downs: int = 0  # workers judged down
    utilisation: list[float] = field(default_factory=list)  # busy share per worker

    def done(self, priority: Priority, latency_s: float) -> None:
        self.completed[priority] += 1
        self.latencies_s.append(latency_s)

    def gap(self, priority: Priority, kind: GapKind) -> None:
        self.gaps[kind][priority] += 1

    def sweep(self, leftovers: Iterable[Priority]) -> None:
        """Batches still queued when the run ends are long past their deadlines."""
        for priority in leftovers:
            self.gap(priority, "stale")

    def accounted(self) -> Counter[Priority]:
        total = Counter(self.completed)
        for counts in self.gaps.values():
            total.update(counts)
        return total


@dataclass(frozen=True)
class RunSummary:
    scenario: str
    policy: str
    generated: int
    p50_s: float
    p99_s: float
    shed: tuple[int, ...]  # per priority, low to critical
    lost: tuple[int, ...]  # every gap (shed, stale, no worker, dead-lettered) per priority
    urgent_lost: tuple[tuple[GapKind, int], ...]  # high and critical gaps by reason
    util_cv: float  # spread of utilisation over workers: stdev / mean
    moves: int
    opens: int
    downs: int


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(scenario: str, policy: str, tally: Tally) -> RunSummary:
    util = tally.utilisation
    mean = statistics.fmean(util) if util else 0.0
    cv = statistics.pstdev(util) / mean if mean > 0 else math.nan
    lost = tuple(sum(tally.gaps[k][p] for k in GAP_KINDS) for p in ORDER)
    return RunSummary(
        scenario, policy, sum(tally.generated.values()),
        _quantile(tally.latencies_s, 0.50), _quantile(tally.latencies_s, 0.99),
        tuple(tally.gaps["shed"][p] for p in ORDER), lost,
        tuple((k, tally.gaps[k][Priority.HIGH] + tally.gaps[k][Priority.CRITICAL])
              for k in GAP_KINDS),
        cv,
        tally.moves, tally.opens, tally.downs)


def format_table(rows: Sequence[RunSummary]) -> str:
    header = (f"{'scenario':<12} {'policy':<13} {'batches':>8} {'p50_s':>6} {'p99_s':>6} "
              f"{'shed L/N/H/C':>22} {'lost L/N/H/C':>24} {'util_cv':>7} {'moves':>6} "
              f"{'opens':>5} {'downs':>5}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.scenario:<12} {r.policy:<13} {r.generated:>8} {r.p50_s:>6.2f} {r.p99_s:>6.2f} "
            f"{'/'.join(map(str, r.shed)):>22} {'/'.join(map(str, r.lost)):>24} "
            f"{r.util_cv:>7.2f} {r.moves:>6} {r.opens:>5} {r.downs:>5}")
    return "\n".join(lines)


def format_verdicts(rows: Sequence[RunSummary]) -> str:
    """The issue's targets, as ratios against round_robin measured in the same run."""
    lines = []
    by = {(r.scenario, r.policy): r for r in rows}
    for scenario in dict.fromkeys(r.scenario for r in rows):
        hybrid, rr = by.get((scenario, "hybrid")), by.get((scenario, "round_robin"))
        if hybrid is None:
            continue
        if rr is not None:
            ratio = hybrid.p99_s / rr.p99_s if rr.p99_s > 0 else math.nan
            verdict = "met" if ratio <= 0.5 else "MISSED"
            lines.append(f"{scenario}: hybrid p99 / round_robin p99 = {ratio:.2f} "
                         f"(target <= 0.50: {verdict})")
        urgent = hybrid.shed[2] + hybrid.shed[3]
        why = ", ".join(f"{kind} {n}" for kind, n in hybrid.urgent_lost)
        lines.append(f"{scenario}: hybrid shed high+critical = {urgent} "
                     f"(target 0: {'met' if urgent == 0 else 'MISSED'}); their gaps: {why}")
    return "\n".join(lines)
