"""Versioned counting lines and zones of a camera.

Replacing a camera's set keeps each unchanged line (same id, same version, counts continue),
gives a changed one a new row with the next version (the old row stays, inactive, so counts
that reference it keep their meaning) and deactivates the ones left out. Workers read the
active geometry inside each batch's transaction, so the next batch counts on the new version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import camera_snapshots, cameras, counting_lines, zones
from registry.models import LineIn, ZoneIn
from registry.repository import visible


async def _replace(engine: AsyncEngine, table: Table, column: str, camera_id: str,
                   wanted: dict[str, Any], site: str | None) -> bool:
    """Make `wanted` (name -> geometry as stored) the camera's active set in `table`; False
    for a camera the site does not see."""
    async with engine.begin() as conn:
        # FOR NO KEY UPDATE: concurrent replacements of one camera's geometry queue behind it.
        found = await conn.execute(select(cameras.c.id).where(visible(camera_id, site))
                                   .with_for_update(key_share=True))
        if found.first() is None:
            return False
        rows = (await conn.execute(select(table).where(table.c.camera_id == camera_id))).all()
        active = {r.name: r for r in rows if r.active}
        versions: dict[str, int] = {}
        for r in rows:
            versions[r.name] = max(r.version, versions.get(r.name, 0))
        for name, row in active.items():
            if wanted.get(name) != row._mapping[column]:
                await conn.execute(table.update().where(table.c.id == row.id)
                                   .values(active=False))
        new = [
            {"camera_id": camera_id, "name": name, "version": versions.get(name, 0) + 1,
             column: geometry}
            for name, geometry in wanted.items()
            if name not in active or active[name]._mapping[column] != geometry
        ]
        if new:
            await conn.execute(table.insert().values(new))
        await conn.execute(cameras.update().where(cameras.c.id == camera_id)
                           .values(updated_at=func.now()))
    return True


async def replace_lines(engine: AsyncEngine, camera_id: str, lines: Sequence[LineIn],
                        site: str | None) -> bool:
    """False for a camera the site does not see."""
    return await _replace(engine, counting_lines, "geometry", camera_id,
                          {line.name: line.geometry().model_dump() for line in lines}, site)


async def replace_zones(engine: AsyncEngine, camera_id: str, wanted: Sequence[ZoneIn],
                        site: str | None) -> bool:
    """False for a camera the site does not see."""
    return await _replace(engine, zones, "polygon", camera_id,
                          {zone.name: [p.model_dump() for p in zone.points] for zone in wanted},
                          site)


async def snapshot(engine: AsyncEngine, camera_id: str, site: str | None,
                   ) -> tuple[bool, Any]:
    """(the camera is visible, its snapshot row or None)."""
    async with engine.connect() as conn:
        known = (await conn.execute(select(cameras.c.id).where(visible(camera_id, site)))
                 ).first()
        if known is None:
            return False, None
        row = (await conn.execute(select(camera_snapshots)
                                  .where(camera_snapshots.c.camera_id == camera_id))).first()
    return True, row
