"""Reading a camera's active, versioned counting geometry inside the apply transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.geometry import LineGeometry, Point
from contracts.tables import counting_lines, zones
from workers.counting import CountingLine
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
