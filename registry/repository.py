"""Registry reads and writes in PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.access import DEFAULT_SITE
from contracts.messages import WorkerHeartbeat
from contracts.secrets import mask_url
from contracts.tables import (
    camera_progress,
    cameras,
    count_buckets,
    counting_lines,
    coverage_gaps,
    worker_events,
    workers,
    zone_buckets,
    zones,
)
from registry.models import (
    BreakerOut,
    CameraIn,
    CameraOut,
    CountRow,
    CountsOut,
    GapRow,
    LineOut,
    WorkerEventOut,
    WorkerLoad,
    WorkerOut,
    ZoneOut,
    ZoneRow,
)
from registry.status_repository import effective_status, status_rows


class AlreadyExists(Exception):
    pass


def visible(camera_id: str, site: str | None) -> ColumnElement[bool]:
    """The camera `camera_id`, if it is of `site` (None: of any site). A camera of another
    site is answered exactly like one that does not exist."""
    clause = cameras.c.id == camera_id
    return clause if site is None else and_(clause, cameras.c.site == site)


async def create_camera(engine: AsyncEngine, camera: CameraIn,
                        pinned_address: str | None = None) -> CameraOut:
    values = camera.model_dump(exclude={"lines", "zones"})
    values["pinned_address"] = pinned_address  # in the same insert: ingest never sees it unset
    values["site"] = camera.site or DEFAULT_SITE
    values["priority"] = int(camera.priority)
    try:
        async with engine.begin() as conn:
            await conn.execute(cameras.insert().values(values))
            if camera.lines:
                await conn.execute(
                    counting_lines.insert().values([
                        {"camera_id": camera.id, "name": line.name, "version": 1,
                         "geometry": line.geometry().model_dump()}
                        for line in camera.lines
                    ])
                )
            if camera.zones:
                await conn.execute(
                    zones.insert().values([
                        {"camera_id": camera.id, "name": zone.name, "version": 1,
                         "polygon": [p.model_dump() for p in zone.points]}
                        for zone in camera.zones
                    ])
                )
    except IntegrityError:
        raise AlreadyExists(camera.id) from None
    found = await get_camera(engine, camera.id)
    assert found is not None
    return found


async def update_camera(
    engine: AsyncEngine, camera_id: str, plan: Callable[[Mapping[str, Any]], dict[str, Any]],
    site: str | None = None,
) -> CameraOut | None:
    """Apply the changes `plan` makes of the stored row; None for an unknown camera.

    The row is locked while `plan` looks at it, so concurrent updates queue and each plans
    against the row the other left. FOR NO KEY UPDATE: the id never changes here, so the
    writes of ingest and workers that only reference the camera (foreign keys) need not wait.
    updated_at moves only when something changed: a disabled camera's status reads it as the
    time it was disabled.
    """
    async with engine.begin() as conn:
        stored = (await conn.execute(select(cameras).where(visible(camera_id, site))
                                     .with_for_update(key_share=True))).first()
        if stored is None:
            return None
        changes = plan(dict(stored._mapping))
        if changes:
            await conn.execute(cameras.update().where(cameras.c.id == camera_id)
                               .values(**changes, updated_at=func.now()))
    return await get_camera(engine, camera_id)


async def _lines(conn: AsyncConnection, camera_ids: list[str]) -> dict[str, list[LineOut]]:
    rows = await conn.execute(
        select(counting_lines)
        .where(counting_lines.c.camera_id.in_(camera_ids), counting_lines.c.active)
        .order_by(counting_lines.c.id)
    )
    out: dict[str, list[LineOut]] = {}
    for r in rows:
        out.setdefault(r.camera_id, []).append(
            LineOut(id=r.id, name=r.name, version=r.version, **r.geometry)
        )
    return out


async def _zones(conn: AsyncConnection, camera_ids: list[str]) -> dict[str, list[ZoneOut]]:
    rows = await conn.execute(
        select(zones)
        .where(zones.c.camera_id.in_(camera_ids), zones.c.active)
        .order_by(zones.c.id)
    )
    out: dict[str, list[ZoneOut]] = {}
    for r in rows:
        out.setdefault(r.camera_id, []).append(
            ZoneOut(id=r.id, name=r.name, version=r.version, points=r.polygon)
        )
    return out


async def list_cameras(
    engine: AsyncEngine, *, limit: int = 100, offset: int = 0, camera_id: str | None = None,
    site: str | None = None,
) -> list[CameraOut]:
    query = (
        select(cameras, camera_progress.c.totals, camera_progress.c.occupancy)
        .outerjoin(camera_progress, camera_progress.c.camera_id == cameras.c.id)
        .order_by(cameras.c.id)
        .limit(limit)
        .offset(offset)
    )
    if camera_id is not None:
        query = query.where(cameras.c.id == camera_id)
    if site is not None:
        query = query.where(cameras.c.site == site)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        lines = await _lines(conn, [r.id for r in rows])
        zone_map = await _zones(conn, [r.id for r in rows])
        statuses = await status_rows(conn, [r.id for r in rows])
    return [
        CameraOut(
            id=r.id, name=r.name, url=mask_url(r.url), site=r.site, region=r.region,
            priority=r.priority,
            target_fps=r.target_fps, batch_frames=r.batch_frames, batch_ms=r.batch_ms,
            deadline_s=r.deadline_s, capability=r.capability,
            object_classes=r.object_classes, min_confidence=r.min_confidence, model=r.model,
            enabled=r.enabled,
            created_at=r.created_at, updated_at=r.updated_at,
            lines=lines.get(r.id, []), zones=zone_map.get(r.id, []), totals=r.totals or {},
            occupancy=r.occupancy or {}, status=effective_status(r, statuses.get(r.id)),
        )
        for r in rows
    ]


async def get_camera(engine: AsyncEngine, camera_id: str, site: str | None = None,
                     ) -> CameraOut | None:
    found = await list_cameras(engine, limit=1, camera_id=camera_id, site=site)
    return found[0] if found else None


async def counts(engine: AsyncEngine, camera_id: str, since: datetime, site: str | None = None,
                 ) -> CountsOut | None:
    """None when there is no such camera (checked in the same connection as the reads)."""
    async with engine.connect() as conn:
        known = (await conn.execute(select(cameras.c.id).where(visible(camera_id, site)))
                 ).first()
        if known is None:
            return None
        current = (
            await conn.execute(
                select(camera_progress.c.totals, camera_progress.c.occupancy)
                .where(camera_progress.c.camera_id == camera_id)
            )
        ).first()
        buckets = await conn.execute(
            select(count_buckets)
            .where(count_buckets.c.camera_id == camera_id, count_buckets.c.bucket_start >= since)
            .order_by(count_buckets.c.bucket_start, count_buckets.c.line_id)
        )
        zone_rows = await conn.execute(
            select(zone_buckets)
            .where(zone_buckets.c.camera_id == camera_id, zone_buckets.c.bucket_start >= since)
            .order_by(zone_buckets.c.bucket_start, zone_buckets.c.zone_id)
        )
        gap = coverage_gaps.c
        gaps = await conn.execute(
            select(coverage_gaps)
            .where(gap.camera_id == camera_id, or_(
                gap.recorded_at >= since,
                # A gap of time is recorded when it opens: while open, or if it closed inside
                # the window, it overlaps the window however long ago it began.
                gap.ended_at >= since, and_(gap.started_at.is_not(None), gap.ended_at.is_(None)),
            ))
            # Gaps of batches by sequence; gaps of time (NULL seqs) after them, by start.
            .order_by(gap.stream_epoch, gap.seq_from.asc().nulls_last(), gap.started_at, gap.id)
        )
        return CountsOut(
            camera_id=camera_id,
            totals=current.totals if current else {},
            occupancy=current.occupancy if current else {},
            buckets=[CountRow.model_validate(r, from_attributes=True) for r in buckets],
            zones=[ZoneRow.model_validate(r, from_attributes=True) for r in zone_rows],
            gaps=[GapRow.model_validate(r, from_attributes=True) for r in gaps],
        )


async def record_heartbeat(engine: AsyncEngine, beat: WorkerHeartbeat, received_at: datetime,
                           status: str) -> None:
    values: dict[str, Any] = {
        "boot_id": beat.boot_id, "worker_type": beat.worker_type, "region": beat.region,
        "capabilities": list(beat.capabilities), "queue": beat.queue, "status": status,
        "in_flight": beat.in_flight, "processed": beat.processed,
        "latency_ema_s": beat.latency_ema_s, "last_heartbeat_at": received_at,
        "load": WorkerLoad.model_validate(beat, from_attributes=True).model_dump(),
    }
    # The balancer's columns (liveness, breaker, judged_*) are its own: never touched here.
    stmt = insert(workers).values(id=beat.worker_id, first_seen_at=received_at, **values)
    async with engine.begin() as conn:
        await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))


def _breaker(raw: dict[str, Any] | None) -> BreakerOut | None:
    if raw is None:
        return None
    opened = raw.get("opened_at")  # Unix seconds in the row, like every *_at in messages
    return BreakerOut.model_validate(
        {**raw, "opened_at": None if opened is None else datetime.fromtimestamp(opened, UTC)})


def _worker(r: Row[Any], now: datetime, down_after_s: float) -> WorkerOut:
    age = (now - r.last_heartbeat_at).total_seconds()
    status = r.status if r.status == "stopping" or age <= down_after_s else "down"
    return WorkerOut(
        id=r.id, worker_type=r.worker_type, region=r.region,
        capabilities=list(r.capabilities), boot_id=r.boot_id, queue=r.queue, status=status,
        liveness=r.liveness, breaker=_breaker(r.breaker), judged_by=r.judged_by,
        judged_at=r.judged_at, load=WorkerLoad.model_validate(r.load),
        in_flight=r.in_flight, processed=r.processed, latency_ema_s=r.latency_ema_s,
        first_seen_at=r.first_seen_at, last_heartbeat_at=r.last_heartbeat_at,
        heartbeat_age_s=round(age, 3),
    )


async def list_workers(engine: AsyncEngine, down_after_s: float,
                       worker_id: str | None = None) -> list[WorkerOut]:
    query = select(workers).order_by(workers.c.id)
    if worker_id is not None:
        query = query.where(workers.c.id == worker_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    now = datetime.now(UTC)
    return [_worker(r, now, down_after_s) for r in rows]


async def get_worker(engine: AsyncEngine, worker_id: str, down_after_s: float
                     ) -> WorkerOut | None:
    found = await list_workers(engine, down_after_s, worker_id)
    return found[0] if found else None


async def worker_history(engine: AsyncEngine, worker_id: str, limit: int
                         ) -> list[WorkerEventOut] | None:
    """Newest first; None for a worker never seen."""
    async with engine.connect() as conn:
        known = (await conn.execute(select(workers.c.id).where(workers.c.id == worker_id))
                 ).first()
        if known is None:
            return None
        rows = await conn.execute(
            select(worker_events).where(worker_events.c.worker_id == worker_id)
            .order_by(worker_events.c.at.desc(), worker_events.c.id.desc()).limit(limit))
        return [WorkerEventOut.model_validate(r, from_attributes=True) for r in rows]
