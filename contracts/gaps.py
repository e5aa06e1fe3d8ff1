"""Coverage gaps: spans of a camera's batches that were not counted, with the reason why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GapReason = Literal[
    "missing",  # the sequence jumped: batches never reached the applier
    "stale",  # past its deadline (real time first: never processed late)
    "no_worker",  # no live, capable worker before the deadline
    "out_of_order",  # arrived after its stream was superseded
    "dead_lettered",  # the message could not be understood
    "dropped",  # ingest dropped frames (backpressure: broker blocked, buffer full)
    "camera_down",  # ingest had no usable frames (stalled, frozen, unreachable, unassigned)
    "shed",  # the balancer shed it under overload (never a high or critical batch)
    "failover",  # its worker died and the batch was past its deadline when drained
]


@dataclass(frozen=True)
class GapSpan:
    stream_epoch: int
    seq_from: int
    seq_to: int
    reason: GapReason
