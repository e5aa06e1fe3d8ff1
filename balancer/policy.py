"""Choosing a worker for a camera's batch. Pure and table-tested.

First policy: keep camera affinity (the worker holding the camera's tracker) while it is live
and capable; otherwise the capable worker in the camera's region with the fewest cameras, then
the least in-flight work, then the id for determinism. Other regions only when none is local.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.messages import WorkerHeartbeat


@dataclass(frozen=True)
class Assignment:
    worker_id: str
    epoch: int


def choose_worker(
    camera_id: str,
    capability: str,
    region: str,
    current: Assignment | None,
    live: Mapping[str, WorkerHeartbeat],
    assigned: Mapping[str, Assignment],
) -> str | None:
    capable = {w: b for w, b in live.items() if capability in b.capabilities}
    if current is not None and current.worker_id in capable:
        return current.worker_id
    if not capable:
        return None
    load = Counter(a.worker_id for cam, a in assigned.items() if cam != camera_id)
    return min(
        capable,
        key=lambda w: (capable[w].region != region, load[w], capable[w].in_flight, w),
    )
