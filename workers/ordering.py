"""The apply decision for one batch against the camera's progress: invariant 1 and 2.

Pure. Batches of a camera are applied in (stream_epoch, seq) order; anything at or behind the
progress is a duplicate or a late straggler (acked without effect); a jump forward records the
skipped span as a coverage gap so reports show it instead of a false zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts.gaps import GapSpan


@dataclass(frozen=True)
class Progress:
    stream_epoch: int
    last_seq: int


@dataclass(frozen=True)
class Decision:
    action: Literal["apply", "duplicate", "late"]
    gaps: tuple[GapSpan, ...] = ()


def decide(progress: Progress | None, stream_epoch: int, seq: int) -> Decision:
    if progress is None:
        gaps = (GapSpan(stream_epoch, 0, seq - 1, "missing"),) if seq > 0 else ()
        return Decision("apply", gaps)
    if stream_epoch < progress.stream_epoch:
        # Its stream was superseded by a reconnect; applying it now would break order.
        return Decision("late", (GapSpan(stream_epoch, seq, seq, "out_of_order"),))
    if stream_epoch == progress.stream_epoch:
        if seq <= progress.last_seq:
            # Either applied already, or skipped earlier and so already inside a recorded gap.
            return Decision("duplicate")
        if seq == progress.last_seq + 1:
            return Decision("apply")
        return Decision(
            "apply", (GapSpan(stream_epoch, progress.last_seq + 1, seq - 1, "missing"),)
        )
    # A new stream epoch: the camera reconnected; its sequence starts again at 0.
    gaps = (GapSpan(stream_epoch, 0, seq - 1, "missing"),) if seq > 0 else ()
    return Decision("apply", gaps)
