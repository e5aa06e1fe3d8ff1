"""Sampling a stream down to the camera's target fps by presentation time (not by count, so
a camera with jittery or variable frame rate still yields evenly spaced samples)."""

from __future__ import annotations

from dataclasses import dataclass

# A frame this fraction of a period early still counts as on time: timestamps wobble.
TOLERANCE = 0.1


@dataclass
class Sampler:
    target_fps: float
    _next_due_s: float | None = None

    def take(self, pts_s: float) -> bool:
        period = 1.0 / self.target_fps
        due = self._next_due_s
        if due is not None and pts_s + period < due - period:
            due = None  # the timeline jumped backwards (a new stream): start over
        if due is not None and pts_s < due - TOLERANCE * period:
            return False
        if due is None or pts_s - due >= period:
            due = pts_s  # first frame, or we fell behind (a stall): re-anchor, no burst
        self._next_due_s = due + period
        return True
