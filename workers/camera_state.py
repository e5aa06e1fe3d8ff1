"""Per-camera tracking and counting state, advanced one batch at a time.

`advance` never mutates its input: the apply transaction may still fail or find a duplicate,
and then the worker keeps the state it had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workers.counting import CountingLine, Crossing, LineCounter
from workers.detection import Detection
from workers.tracking import Tracker, TrackerConfig

Anchor = Literal["foot", "centre"]


def count_key(line_id: int, direction: str, object_class: str) -> str:
    return f"{line_id}:{direction}:{object_class}"


@dataclass
class CameraState:
    tracker: Tracker = field(default_factory=Tracker)
    counter: LineCounter = field(default_factory=LineCounter)
    totals: dict[str, int] = field(default_factory=dict)

    def to_checkpoint(self) -> dict[str, Any]:
        return {"tracker": self.tracker.to_dict(), "counter": self.counter.to_dict()}

    @classmethod
    def from_checkpoint(
        cls, checkpoint: dict[str, Any], totals: dict[str, int], config: TrackerConfig
    ) -> CameraState:
        return cls(
            Tracker.from_dict(checkpoint.get("tracker", {}), config),
            LineCounter.from_dict(checkpoint.get("counter", {})),
            dict(totals),
        )

    def copy(self) -> CameraState:
        return CameraState.from_checkpoint(self.to_checkpoint(), self.totals, self.tracker.config)


def advance(
    state: CameraState,
    detections_per_frame: Sequence[list[Detection]],
    lines: list[CountingLine],
    anchor: Anchor = "foot",
) -> tuple[CameraState, list[Crossing]]:
    new = state.copy()
    crossings: list[Crossing] = []
    for index, detections in enumerate(detections_per_frame):
        for track in new.tracker.update(detections):
            x1, y1, x2, y2 = track.box
            point = ((x1 + x2) / 2, y2) if anchor == "foot" else ((x1 + x2) / 2, (y1 + y2) / 2)
            crossings += new.counter.observe(
                index, track.track_id, track.object_class, point, True, lines
            )
        new.counter.forget(new.tracker.live_ids())
    delta = Counter(count_key(c.line_id, c.direction, c.object_class) for c in crossings)
    for key, n in delta.items():
        new.totals[key] = new.totals.get(key, 0) + n
    return new, crossings
