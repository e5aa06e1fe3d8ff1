"""Reading a camera's active, versioned counting geometry inside the apply transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.geometry import LineGeometry, Point
from contracts.tables import cameras, counting_lines, zones
from workers.counting import CountingLine
from workers.detection import Detection
from workers.zones import CountingZone


async def load_lines(conn: AsyncConnection, camera_id: str) -> list[CountingLine]:
    rows = await conn.execute(
        select(counting_lines.c.id, counting_lines.c.version, counting_lines.c.geometry)
        .where(counting_lines.c.camera_id == camera_id, counting_lines.c.active)
        .order_by(counting_lines.c.id)
    )
    return [
        CountingLine(r.id, r.version, LineGeometry.model_validate(r.geometry)) for r in rows
    ]


async def load_zones(conn: AsyncConnection, camera_id: str) -> list[CountingZone]:
    rows = await conn.execute(
        select(zones.c.id, zones.c.version, zones.c.polygon)
        .where(zones.c.camera_id == camera_id, zones.c.active)
        .order_by(zones.c.id)
    )
    return [
        CountingZone(r.id, r.version, tuple(Point.model_validate(p) for p in r.polygon))
        for r in rows
    ]


@dataclass(frozen=True)
class DetectionFilter:
    """A camera's own choice of what to count, applied to the worker's detections."""

    classes: frozenset[str] | None = None
    min_confidence: float | None = None

    def apply(self, frames: Sequence[list[Detection]]) -> list[list[Detection]]:
        if self.classes is None and self.min_confidence is None:
            return list(frames)
        return [
            [d for d in frame
             if (self.classes is None or d.object_class in self.classes)
             and (self.min_confidence is None or d.score >= self.min_confidence)]
            for frame in frames
        ]


async def load_filter(conn: AsyncConnection, camera_id: str) -> DetectionFilter:
    row = (
        await conn.execute(
            select(cameras.c.object_classes, cameras.c.min_confidence)
            .where(cameras.c.id == camera_id)
        )
    ).first()
    if row is None:
        return DetectionFilter()
    classes = frozenset(row.object_classes) if row.object_classes is not None else None
    return DetectionFilter(classes, row.min_confidence)
