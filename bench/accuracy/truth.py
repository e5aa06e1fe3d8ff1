"""True line crossings from MOTChallenge ground truth: the yardstick of bench/accuracy.

Pure: parsing and counting only, no I/O beyond reading the gt file's text. Written apart from
workers/counting.py on purpose (no settling, no confirmation, no tracker), so that the
benchmark does not grade the pipeline with the pipeline's own rules.

A crossing is a change of side of a track's foot point (bottom centre of its box) across the
line between two consecutive annotated frames of that track, where the movement segment meets
the line segment. Sides follow the project's convention (contracts.geometry.side_of): side is
the sign of (b - a) x (p - a) in image coordinates (y down), and moving from side +1 to side -1
is "in". For a vertical line drawn top to bottom, left-to-right is "in".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Direction = Literal["in", "out"]
Point = tuple[float, float]


@dataclass(frozen=True)
class GtBox:
    """One row of a MOT gt.txt: `frame,id,left,top,width,height,flag,x,y,z` (1-based frames,
    pixels). The flag is MOT's "consider" column: rows with 0 are ignored by the evaluation."""

    frame: int
    track_id: int
    left: float
    top: float
    width: float
    height: float
    flag: float = 1.0

    @property
    def foot(self) -> Point:
        return self.left + self.width / 2, self.top + self.height


@dataclass(frozen=True)
class PixelLine:
    """A counting line segment from a to b in pixels of the video."""

    a: Point
    b: Point

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError("line endpoints a and b must differ")

    def cross(self, p: Point) -> float:
        (ax, ay), (bx, by) = self.a, self.b
        return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)

    def side(self, p: Point) -> int:
        c = self.cross(p)
        return 1 if c > 1e-9 else -1 if c < -1e-9 else 0

    def relative(self, width: int, height: int) -> tuple[Point, Point]:
        """The same segment in the 0..1 coordinates the camera registry takes."""
        return (
            (self.a[0] / width, self.a[1] / height),
            (self.b[0] / width, self.b[1] / height),
        )

    @classmethod
    def parse(cls, text: str) -> PixelLine:
        """`x1,y1,x2,y2` in pixels."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError(f"a line is x1,y1,x2,y2 in pixels, got {text!r}")
        x1, y1, x2, y2 = (float(p) for p in parts)
        return cls((x1, y1), (x2, y2))


@dataclass(frozen=True)
class TrueCrossing:
    track_id: int
    frame: int  # the annotated frame on which the foot point is first seen on the new side
    direction: Direction


@dataclass(frozen=True)
class DirectionCounts:
    in_: int = 0
    out: int = 0

    @property
    def total(self) -> int:
        return self.in_ + self.out

    def as_dict(self) -> dict[str, int]:
        return {"in": self.in_, "out": self.out}


def parse_mot_gt(text: str) -> list[GtBox]:
    """Rows of a MOT gt.txt; blank lines are skipped, rows whose flag is 0 are dropped."""
    boxes: list[GtBox] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 6:
            raise ValueError(f"gt line {number}: expected at least 6 fields, got {raw!r}")
        try:
            box = GtBox(
                frame=int(float(fields[0])), track_id=int(float(fields[1])),
                left=float(fields[2]), top=float(fields[3]),
                width=float(fields[4]), height=float(fields[5]),
                flag=float(fields[6]) if len(fields) > 6 else 1.0,
            )
        except ValueError as exc:
            raise ValueError(f"gt line {number}: {exc}") from exc
        if box.flag != 0:
            boxes.append(box)
    return boxes


def load_mot_gt(path: Path) -> list[GtBox]:
    return parse_mot_gt(path.read_text())


def foot_tracks(boxes: Iterable[GtBox]) -> dict[int, list[tuple[int, Point]]]:
    """Each track's foot points in frame order."""
    tracks: dict[int, list[tuple[int, Point]]] = {}
    for box in boxes:
        tracks.setdefault(box.track_id, []).append((box.frame, box.foot))
    for points in tracks.values():
        points.sort(key=lambda fp: fp[0])
    return tracks


def _meets_segment(line: PixelLine, p: Point, q: Point) -> bool:
    """Whether the move p -> q, whose ends lie on opposite sides of the infinite line, meets
    the segment a-b (rather than passing beside one of its ends)."""
    cp, cq = line.cross(p), line.cross(q)
    s = cp / (cp - cq)
    hit = (p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1]))
    (ax, ay), (bx, by) = line.a, line.b
    dx, dy = bx - ax, by - ay
    t = ((hit[0] - ax) * dx + (hit[1] - ay) * dy) / (dx * dx + dy * dy)
    return -1e-9 <= t <= 1 + 1e-9


def track_crossings(
    track_id: int, points: Sequence[tuple[int, Point]], line: PixelLine
) -> list[TrueCrossing]:
    found: list[TrueCrossing] = []
    last: Point | None = None  # the last foot point strictly on one side of the line
    last_side = 0
    for frame, point in points:
        side = line.side(point)
        if side == 0:
            continue  # on the line: the crossing, if any, completes at the next point off it
        if last is not None and side != last_side and _meets_segment(line, last, point):
            found.append(TrueCrossing(track_id, frame, "in" if last_side > 0 else "out"))
        last, last_side = point, side
    return found


def true_crossings(boxes: Iterable[GtBox], line: PixelLine) -> list[TrueCrossing]:
    """Every crossing of every track, ordered by frame then track."""
    found = [
        crossing
        for track_id, points in foot_tracks(boxes).items()
        for crossing in track_crossings(track_id, points, line)
    ]
    return sorted(found, key=lambda c: (c.frame, c.track_id))


def count_directions(crossings: Iterable[TrueCrossing]) -> DirectionCounts:
    directions = [c.direction for c in crossings]
    return DirectionCounts(directions.count("in"), directions.count("out"))
