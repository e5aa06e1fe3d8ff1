"""Relative (0..1) image geometry, so lines survive a change of stream resolution."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    x: float = Field(ge=0.0, le=1.0, description="fraction of the frame width")
    y: float = Field(ge=0.0, le=1.0, description="fraction of the frame height")


class LineGeometry(BaseModel):
    """A counting line from a to b. Moving from side +1 to side -1 (see `side_of`) is 'in'.

    In image coordinates (y grows downwards) a vertical line drawn top to bottom has side +1
    on its left, so left-to-right motion across it counts as 'in'.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    a: Point
    b: Point

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineGeometry:
        if abs(self.a.x - self.b.x) < 1e-6 and abs(self.a.y - self.b.y) < 1e-6:
            raise ValueError("line endpoints a and b must differ")
        return self


def side_of(line: LineGeometry, x: float, y: float) -> int:
    """+1 or -1 for the two sides of the infinite line through a and b, 0 on the line.

    Sign of the 2-D cross product (b - a) x (p - a) in image coordinates.
    """
    cross = (line.b.x - line.a.x) * (y - line.a.y) - (line.b.y - line.a.y) * (x - line.a.x)
    if cross > 1e-12:
        return 1
    if cross < -1e-12:
        return -1
    return 0


def within_segment(line: LineGeometry, x: float, y: float) -> bool:
    """Whether the projection of p falls between a and b (a crossing must hit the segment)."""
    dx, dy = line.b.x - line.a.x, line.b.y - line.a.y
    t = ((x - line.a.x) * dx + (y - line.a.y) * dy) / (dx * dx + dy * dy)
    return 0.0 <= t <= 1.0
