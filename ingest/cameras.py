"""Which cameras this node pulls, read from PostgreSQL (credentials included: ingest alone
reads them), and the stream epoch that makes every batch id unique across reconnects and
fences a node that lost the camera's lease."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.broker import Priority
from contracts.tables import camera_leases, cameras
from ingest.leases import Fence, LeaseLost

__all__ = ["CameraSpec", "LeaseLost", "enabled_cameras", "next_stream_epoch"]


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
    # The address the registry validated the url's host at: connected to instead of resolving
    # the name again (DNS rebinding). None: a file, or a row written without the API.
    pinned_address: str | None = None


async def enabled_cameras(engine: AsyncEngine) -> dict[str, CameraSpec]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(cameras).where(cameras.c.enabled))
        return {
            r.id: CameraSpec(r.id, r.url, r.region, Priority(r.priority), r.target_fps,
                             r.batch_frames, r.batch_ms, r.deadline_s, r.capability, r.model,
                             r.pinned_address)
            for r in rows
        }


async def next_stream_epoch(engine: AsyncEngine, camera_id: str, fence: Fence) -> int:
    """Start a new stream epoch, only while `fence` still holds the camera's lease (checked in
    the same statement, on the database's clock); raises LeaseLost otherwise. The worker drops
    batches of epochs older than the camera's progress, so once the new holder's batches are
    applied a stale node's are recorded as out-of-order gaps, never counted."""
    if not fence.held():
        raise LeaseLost(camera_id, fence.token)
    holds = sa.exists().where(
        camera_leases.c.camera_id == camera_id,
        camera_leases.c.node_id == fence.node_id,
        camera_leases.c.token == fence.token,
        camera_leases.c.expires_at > sa.func.now(),
    )
    async with engine.begin() as conn:
        epoch = (
            await conn.execute(
                cameras.update()
                .where(cameras.c.id == camera_id, holds)
                .values(stream_epoch=cameras.c.stream_epoch + 1)
                .returning(cameras.c.stream_epoch)
            )
        ).scalar_one_or_none()
    if epoch is None:
        raise LeaseLost(camera_id, fence.token)
    return int(epoch)
