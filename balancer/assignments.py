"""Camera-to-worker assignments in PostgreSQL. Every reassignment raises the epoch (fencing)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from balancer.policy import Assignment
from contracts.tables import assignments


async def load_all(engine: AsyncEngine) -> dict[str, Assignment]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(assignments.c.camera_id, assignments.c.worker_id, assignments.c.epoch)
        )
        return {r.camera_id: Assignment(r.worker_id, r.epoch) for r in rows}


async def load_one(engine: AsyncEngine, camera_id: str) -> Assignment | None:
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(assignments.c.worker_id, assignments.c.epoch)
            .where(assignments.c.camera_id == camera_id)
        )).first()
    return None if row is None else Assignment(row.worker_id, row.epoch)


async def assign(engine: AsyncEngine, camera_id: str, worker_id: str) -> Assignment:
    stmt = (
        insert(assignments)
        .values(camera_id=camera_id, worker_id=worker_id, epoch=1)
        .on_conflict_do_update(
            index_elements=["camera_id"],
            set_={"worker_id": worker_id, "epoch": assignments.c.epoch + 1,
                  "assigned_at": func.now()},
        )
        .returning(assignments.c.epoch)
    )
    async with engine.begin() as conn:
        epoch = (await conn.execute(stmt)).scalar_one()
    return Assignment(worker_id, int(epoch))
