"""Which site and region each camera belongs to, cached from the `cameras` table.

Every relayed count is checked against the site of its camera, so the table is not read per
event: the whole map is re-read every `refresh_s`, and at most every `miss_refresh_s` when a
camera is not found (just created) or not visible to the asker. A camera of another site and
an unknown camera take the same path, so neither the answer nor its timing tells them apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import ALL_SITES, site_visible
from contracts.tables import cameras


@dataclass(frozen=True)
class Place:
    site: str
    region: str


Loader = Callable[[], Awaitable[dict[str, Place]]]


def table_loader(engine: AsyncEngine) -> Loader:
    async def load() -> dict[str, Place]:
        async with engine.connect() as conn:
            rows = await conn.execute(select(cameras.c.id, cameras.c.site, cameras.c.region))
            return {r.id: Place(r.site, r.region) for r in rows}

    return load


class CameraDirectory:
    def __init__(self, load: Loader, *, refresh_s: float, miss_refresh_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load, self._clock = load, clock
        self._refresh_s, self._miss_refresh_s = refresh_s, miss_refresh_s
        self._places: dict[str, Place] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self.loads = 0

    async def find(self, camera_id: str, site: str = ALL_SITES) -> Place | None:
        """The camera's place if a key of `site` sees it; None for an unknown camera and for
        one of another site alike."""
        await self._refresh_if_older(self._refresh_s)
        place = self._places.get(camera_id)
        if place is None or not site_visible(site, place.site):
            await self._refresh_if_older(self._miss_refresh_s)
            place = self._places.get(camera_id)
        return place if place is not None and site_visible(site, place.site) else None

    async def site_of(self, camera_id: str) -> str | None:
        place = await self.find(camera_id)
        return None if place is None else place.site

    async def _refresh_if_older(self, age_s: float) -> None:
        if self._loaded_at is not None and self._clock() - self._loaded_at < age_s:
            return
        async with self._lock:  # concurrent misses share one read
            if self._loaded_at is not None and self._clock() - self._loaded_at < age_s:
                return
            self._places = await self._load()
            self._loaded_at = self._clock()
            self.loads += 1
