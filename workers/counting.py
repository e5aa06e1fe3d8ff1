"""Line-crossing counting with direction, as pure code over tracks.

Rules, and why:
- Only confirmed tracks count. Confirmation is a verdict on a track (workers.tracking): once
  the tracker has matched it on consecutive frames its whole history is evidence, including the
  frames it had while still tentative, which reach the counter first, on the confirmation
  frame. A track that is never confirmed never reaches the counter.
- A crossing is a change of side of the track's anchor point across the line, within the
  segment. Both the side it leaves and the side it reaches must hold for `settle_frames`
  observations (anti-flicker): jitter on the line never counts, nor does a track that is born
  on the line and steps off it. Moving from side +1 to -1 is 'in'.
- Hand-over, for occlusion at the line. A person hidden by someone crossing the other way loses
  their track on one side and comes back, as a new track, on the other; a person lost and
  re-found next to the line comes back as a new track on either side. So a track seen for the
  first time continues, line by line, the side state of a track that vanished before it
  appeared (`_gap` lists the conditions: recent, near the line, level along it, similar size,
  same class, heading that way). The state moves, it is not copied: one side history yields at
  most one crossing, so a track re-born next to the line cannot count twice, and a person who
  crossed while hidden counts once, when they settle on the far side. Distances are in box
  sizes along each axis (a vertical line measures across it in box widths), so the rule is the
  same at any resolution, aspect ratio and distance from the camera.
State is plain data for the tracker checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts.geometry import LineGeometry, side_of, within_segment
from workers.tracking import HEIGHT_RATIO

Direction = Literal["in", "out"]
Point = tuple[float, float]
Size = tuple[float, float]  # box width, height (relative)

SAME_SPOT = 0.5  # box sizes: closer than this, two anchors are one place up to box jitter
_SIZE_WEIGHT = 0.2  # of each new box in a track's typical size


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


@dataclass(frozen=True)
class Sighting:
    """One observation of a confirmed track: its anchor point and box size at a time."""

    track_id: int
    object_class: str
    anchor: Point
    size: Size
    at_s: float


@dataclass
class _Side:
    side: int  # current side (+1 / -1)
    side_n: int = 1  # observations on it
    pending: int = 0  # the other side, being observed but not yet settled
    pending_n: int = 0


@dataclass
class _Track:
    object_class: str
    anchor: Point  # last seen
    size: Size  # typical: a slow average, as the boxes of a track fading behind someone shrink
    seen_s: float  # when last seen
    first: Point  # anchor when first seen
    lines: dict[int, _Side] = field(default_factory=dict)


def _across(line: LineGeometry, point: Point, size: Size) -> float:
    """Signed distance of `point` from the line, in box sizes: the side_of cross product over
    its spread across a box of `size`. A ratio of two linear measures, so neither the frame's
    resolution nor its aspect ratio changes it."""
    dx, dy = line.b.x - line.a.x, line.b.y - line.a.y
    cross = dx * (point[1] - line.a.y) - dy * (point[0] - line.a.x)
    return cross / (abs(dy) * size[0] + abs(dx) * size[1])


def _along(line: LineGeometry, p: Point, q: Point, size: Size) -> float:
    """How far q lies from p along the line, in box sizes (box heights for a vertical line)."""
    dx, dy = line.b.x - line.a.x, line.b.y - line.a.y
    return (dx * (q[0] - p[0]) + dy * (q[1] - p[1])) / (abs(dx) * size[0] + abs(dy) * size[1])


@dataclass
class LineCounter:
    settle_frames: int = 2
    # Hand-over limits. On the TUD clips (22 encodings) true hand-overs came within 1.4 s,
    # 1.35 box widths of the line and 1.85 walked unseen, wrong candidates from 2.25 walked
    # on; each limit can move by a fifth either way without changing a count there.
    handover_s: float = 2.0  # since the old track was last seen
    reach: float = 2.0  # box sizes either side of the line, for both tracks
    hidden_walk: float = 2.5  # box sizes walked across the line unseen
    size_ratio: float = HEIGHT_RATIO  # between the two box heights
    tracks: dict[int, _Track] = field(default_factory=dict)
    now_s: float = 0.0  # capture time of the last frame

    def observe_frame(
        self, frame_index: int, sightings: Sequence[Sequence[Sighting]],
        lines: list[CountingLine],
    ) -> list[Crossing]:
        """One frame: per confirmed track its sightings, oldest first (on the frame a track
        is confirmed, those of its tentative frames come before the current one)."""
        present = {seen[-1].track_id for seen in sightings if seen}
        newcomers = [seen[0] for seen in sightings if seen and seen[0].track_id not in self.tracks]
        self._hand_over(newcomers, present, lines)
        found: list[Crossing] = []
        for seen in sightings:
            for sighting in seen:
                found += self._observe(frame_index, sighting, lines)
        return found

    def _hand_over(self, newcomers: list[Sighting], present: set[int],
                   lines: list[CountingLine]) -> None:
        """Give each newcomer the side state of a vanished track it continues; nearest pairs
        first, each state to one newcomer at most."""
        pairs: list[tuple[float, int, int, int]] = []
        for new in newcomers:
            for tid, old in self.tracks.items():
                if (tid in present or old.object_class != new.object_class
                        or not 0.0 < new.at_s - old.seen_s <= self.handover_s
                        or not self._similar(old.size, new.size)):
                    continue
                for line in lines:
                    state = old.lines.get(line.line_id)
                    gap = None if state is None else self._gap(line.geometry, state, old, new)
                    if gap is not None:
                        pairs.append((gap, tid, new.track_id, line.line_id))
        for new in newcomers:
            self.tracks[new.track_id] = _Track(new.object_class, new.anchor, new.size, new.at_s,
                                               new.anchor)
        for _, old_id, new_id, line_id in sorted(pairs):
            if line_id in self.tracks[old_id].lines and line_id not in self.tracks[new_id].lines:
                self.tracks[new_id].lines[line_id] = self.tracks[old_id].lines.pop(line_id)

    def _gap(self, line: LineGeometry, state: _Side, old: _Track, new: Sighting) -> float | None:
        """How far `new` first appeared from where `old` vanished, in box sizes of `old`, if
        it may continue `old` on this line: both within `reach` of the line, level along it,
        at most `hidden_walk` apart across it, and, if `new` is on the other side than `old`
        was settled on and not at the same spot, only if `old` was heading for the line: a
        person cannot cross it unseen while walking away from it."""
        across_old = _across(line, old.anchor, old.size)
        across_new = _across(line, new.anchor, old.size)
        along = _along(line, old.anchor, new.anchor, old.size)
        walked = abs(across_new - across_old)
        if (max(abs(across_old), abs(across_new)) > self.reach or abs(along) > SAME_SPOT
                or walked > self.hidden_walk):
            return None
        heading = (across_old - _across(line, old.first, old.size)) * state.side < 0
        if across_new * state.side < 0 and walked > SAME_SPOT and not heading:
            return None
        return walked**2 + along**2

    def _similar(self, a: Size, b: Size) -> bool:
        return min(*a, *b) > 0 and max(a[1], b[1]) <= self.size_ratio * min(a[1], b[1])

    def _observe(self, frame_index: int, sighting: Sighting,
                 lines: list[CountingLine]) -> list[Crossing]:
        x, y = sighting.anchor
        track = self.tracks.setdefault(
            sighting.track_id,
            _Track(sighting.object_class, sighting.anchor, sighting.size, sighting.at_s,
                   sighting.anchor),
        )
        if min(track.size) <= 0:  # restored from a checkpoint written before hand-over
            track.size, track.first = sighting.size, sighting.anchor
        (w, h), (new_w, new_h) = track.size, sighting.size
        track.size = (w + _SIZE_WEIGHT * (new_w - w), h + _SIZE_WEIGHT * (new_h - h))
        track.anchor, track.seen_s = sighting.anchor, sighting.at_s
        track.object_class = sighting.object_class
        found: list[Crossing] = []
        for line in lines:
            side = side_of(line.geometry, x, y)
            if side == 0:
                continue
            state = track.lines.get(line.line_id)
            if state is None:
                track.lines[line.line_id] = _Side(side)
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
                found.append(Crossing(line.line_id, line.version, sighting.track_id,
                                      sighting.object_class, direction, frame_index))
        return found

    def forget(self, live_track_ids: set[int], now_s: float) -> None:
        """End of a frame captured at `now_s`: drop tracks the tracker has ended once they are
        too old to hand over (or time went backwards: a restarted stream)."""
        self.now_s = now_s
        for tid in [t for t, track in self.tracks.items()
                    if t not in live_track_ids
                    and not 0.0 <= now_s - track.seen_s <= self.handover_s]:
            del self.tracks[tid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settle_frames": self.settle_frames,
            "now_s": self.now_s,
            "tracks": {
                str(tid): {
                    "class": t.object_class, "anchor": list(t.anchor), "size": list(t.size),
                    "seen_s": t.seen_s, "first": list(t.first),
                    "lines": {str(lid): [s.side, s.side_n, s.pending, s.pending_n]
                              for lid, s in t.lines.items()},
                }
                for tid, t in self.tracks.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineCounter:
        counter = cls(int(data.get("settle_frames", 2)), now_s=float(data.get("now_s", 0.0)))
        for tid, t in data.get("tracks", {}).items():
            counter.tracks[int(tid)] = _Track(
                str(t["class"]), _pair(t["anchor"]), _pair(t["size"]), float(t["seen_s"]),
                _pair(t["first"]), _sides(t["lines"]))
        for tid, legacy in data.get("sides", {}).items():  # written before hand-over
            counter.tracks[int(tid)] = _Track("", (0.0, 0.0), (0.0, 0.0), 0.0, (0.0, 0.0),
                                              _sides(legacy))
        return counter


def _pair(values: list[float]) -> tuple[float, float]:
    return float(values[0]), float(values[1])


def _sides(lines: dict[str, list[int]]) -> dict[int, _Side]:
    return {int(lid): _Side(int(v[0]), int(v[1]), int(v[2]), int(v[3])) for lid, v in lines.items()}
