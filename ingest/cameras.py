"""Which cameras this node pulls, read from PostgreSQL (credentials included: ingest alone
reads them), and the stream epoch that makes every batch id unique across reconnects."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.broker import Priority
from contracts.tables import cameras


@dataclass(frozen=True)
class CameraSpec:
    id: str
    url: str
    region: str
    priority: Priority
    target_fps: float
    batch_frames: int
    batch_ms: int
    deadline_s: float
    capability: str
    model: str | None


async def enabled_cameras(engine: AsyncEngine) -> dict[str, CameraSpec]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(cameras).where(cameras.c.enabled))
        return {
            r.id: CameraSpec(r.id, r.url, r.region, Priority(r.priority), r.target_fps,
                             r.batch_frames, r.batch_ms, r.deadline_s, r.capability, r.model)
            for r in rows
        }


async def next_stream_epoch(engine: AsyncEngine, camera_id: str) -> int:
    async with engine.begin() as conn:
        epoch = (
            await conn.execute(
                cameras.update()
                .where(cameras.c.id == camera_id)
                .values(stream_epoch=cameras.c.stream_epoch + 1)
                .returning(cameras.c.stream_epoch)
            )
        ).scalar_one()
    return int(epoch)
