"""When which fault strikes: a pure, seeded plan, so a failing soak can be run again alike.

Kinds come in shuffled rounds (every kind once per round, in a random order), so even a short
soak sees each kind and a long one sees them equally often; the gaps between faults are drawn
from an exponential distribution (memoryless, as real faults are) but never shorter than
`min_gap_s`, the time a fault and its recovery need before the next may start.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    KILL_WORKER = "kill_worker"  # SIGKILL a worker child of the pool: the pool restarts it
    CLOSE_CONNECTIONS = "close_connections"  # the broker closes a role's connections
    RESTART_CAMERA = "restart_camera"  # a camera's stream is stopped and started again
    TERMINATE_BACKEND = "terminate_backend"  # pg_terminate_backend of a role's session
    MEMORY_ALARM = "memory_alarm"  # the broker blocks publishers for a few seconds


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds since the soak started
    kind: FaultKind


def plan_faults(seed: int, start_s: float, end_s: float, mean_gap_s: float,
                min_gap_s: float, kinds: Sequence[FaultKind] = tuple(FaultKind)
                ) -> list[PlannedFault]:
    """Faults between `start_s` and `end_s`."""
    if not kinds or end_s <= start_s:
        return []
    rng = random.Random(seed)
    plan: list[PlannedFault] = []
    at = start_s
    round_: list[FaultKind] = []
    while True:
        at += max(min_gap_s, rng.expovariate(1 / mean_gap_s)) if plan else 0.0
        if at >= end_s:
            return plan
        if not round_:
            round_ = list(kinds)
            rng.shuffle(round_)
        plan.append(PlannedFault(at, round_.pop()))


def each_kind_once(start_s: float, gap_s: float,
                   kinds: Sequence[FaultKind] = tuple(FaultKind)) -> list[PlannedFault]:
    """The smoke test's plan: one fault of each kind, `gap_s` apart."""
    return [PlannedFault(start_s + i * gap_s, kind) for i, kind in enumerate(kinds)]
