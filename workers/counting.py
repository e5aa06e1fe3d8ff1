"""Line-crossing counting with direction, as pure code over tracks.

Rules: only confirmed tracks reach the counter (the tracker withholds the others); a crossing
is a change of side of the track's anchor point across the line, within the segment; both the
side it leaves and the side it reaches must hold for `settle_frames` observations
(anti-flicker: jitter on the line, and a track re-born next to the line after an identity
switch, never count). Moving from side +1 to -1 is 'in'.
State is plain data for the tracker checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from contracts.geometry import LineGeometry, side_of, within_segment

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class CountingLine:
    line_id: int
    version: int
    geometry: LineGeometry


@dataclass(frozen=True)
class Crossing:
    line_id: int
    line_version: int
    track_id: int
    object_class: str
    direction: Direction
    frame_index: int  # index of the frame within the batch where the crossing settled


@dataclass
class _Side:
    side: int  # current side (+1 / -1)
    side_n: int = 1  # observations on it
    pending: int = 0  # the other side, being observed but not yet settled
    pending_n: int = 0


@dataclass
class LineCounter:
    settle_frames: int = 2
    # track_id -> line_id -> side state
    sides: dict[int, dict[int, _Side]] = field(default_factory=dict)

    def observe(
        self,
        frame_index: int,
        track_id: int,
        object_class: str,
        anchor: tuple[float, float],
        lines: list[CountingLine],
    ) -> list[Crossing]:
        x, y = anchor
        per_line = self.sides.setdefault(track_id, {})
        found: list[Crossing] = []
        for line in lines:
            side = side_of(line.geometry, x, y)
            if side == 0:
                continue
            state = per_line.get(line.line_id)
            if state is None:
                per_line[line.line_id] = _Side(side)
                continue
            if side == state.side:
                state.side_n += 1
                state.pending, state.pending_n = 0, 0
                continue
            if not within_segment(line.geometry, x, y) and state.pending == 0:
                # Passing beside the segment's end moves the side without a crossing.
                state.side, state.side_n = side, 1
                continue
            state.pending = side
            state.pending_n += 1
            if state.pending_n < self.settle_frames:
                continue
            old, origin_settled = state.side, state.side_n >= self.settle_frames
            state.side, state.side_n = side, state.pending_n
            state.pending, state.pending_n = 0, 0
            if origin_settled:
                direction: Direction = "in" if old > 0 else "out"
                found.append(
                    Crossing(line.line_id, line.version, track_id, object_class, direction,
                             frame_index)
                )
        return found

    def forget(self, live_track_ids: set[int]) -> None:
        for tid in [t for t in self.sides if t not in live_track_ids]:
            del self.sides[tid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settle_frames": self.settle_frames,
            "sides": {
                str(tid): {str(lid): [s.side, s.side_n, s.pending, s.pending_n]
                           for lid, s in lines.items()}
                for tid, lines in self.sides.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineCounter:
        counter = cls(int(data.get("settle_frames", 2)))
        for tid, lines in data.get("sides", {}).items():
            counter.sides[int(tid)] = {
                int(lid): _Side(int(v[0]), int(v[1]), int(v[2]), int(v[3]))
                for lid, v in lines.items()
            }
        return counter
