"""Which segment's crossing counts: pure.

Neighbouring segments both process the overlap, so a crossing there may be reported twice
(once by each). It counts for exactly one of them: the segment whose own window holds the
frame where it was reported (where it settled: workers/counting.py). The windows tile the
video, so every reported frame has exactly one owner; the previous segment stops processing at
its window's end, so whatever it reports lies inside its own window anyway.

Times, not frame numbers, reach the finalize (crossing_events.occurred_at is the frame's
capture time, base_at + i / fps); a window's edges sit half a frame before its first frame, so
rounding in the stored timestamps can never move a crossing across one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """A segment's own time window, [start_at, end_at)."""

    start_at: float
    end_at: float

    @classmethod
    def of(cls, own_from: int, own_to: int, frames_total: int, base_at: float,
           fps: float) -> Window:
        start = -float("inf") if own_from <= 0 else base_at + (own_from - 0.5) / fps
        end = float("inf") if own_to >= frames_total else base_at + (own_to - 0.5) / fps
        return cls(start, end)


def owns(window: Window, occurred_at: float) -> bool:
    """Whether a crossing reported at `occurred_at` counts for the segment of `window`."""
    return window.start_at <= occurred_at < window.end_at
