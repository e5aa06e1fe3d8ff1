"""Reads of what ingest writes: camera_status, camera_events, ingest_nodes, camera_leases.

The registry never writes these tables; the ingest node holding a camera's lease does.
Liveness is judged on the database clock (`now()`), the clock the nodes' expiries are set on.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, false, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.secrets import mask_credentials
from contracts.tables import camera_events, camera_leases, camera_status, cameras, ingest_nodes
from registry.status_models import CameraEventOut, CameraStats, CameraStatusOut, IngestNodeOut

log = logging.getLogger("camcount.registry")

WAITING = "waiting for an ingest node"
DISABLED = "disabled through the API"


async def status_rows(conn: AsyncConnection, camera_ids: list[str]) -> dict[str, Row[Any]]:
    """Each camera's status row with whether the node that wrote it is still alive."""
    if not camera_ids:
        return {}
    node_alive = func.coalesce(ingest_nodes.c.expires_at > func.now(), false())
    rows = await conn.execute(
        select(camera_status, node_alive.label("node_alive"))
        .outerjoin(ingest_nodes, ingest_nodes.c.id == camera_status.c.node_id)
        .where(camera_status.c.camera_id.in_(camera_ids))
    )
    return {r.camera_id: r for r in rows}


def _stats(raw: dict[str, Any] | None, camera_id: str) -> CameraStats:
    try:
        return CameraStats.model_validate(raw or {})
    except ValidationError as exc:
        # One node's odd counter must not fail the listing of every camera.
        log.warning("camera %s: unreadable ingest stats: %s", camera_id, exc)
        return CameraStats()


def effective_status(camera: Row[Any], row: Row[Any] | None) -> CameraStatusOut:
    """What the API reports for `camera` given its status row (None: no node wrote one yet).

    `enabled` is the registry's own truth and wins: a node may not have noticed the camera
    was disabled, or may have died leaving its last "live" behind.
    """
    if not camera.enabled:
        said = row if row is not None and row.status == "disabled" else None
        return CameraStatusOut(
            status="disabled",
            reason=mask_credentials(said.reason) if said is not None and said.reason else DISABLED,
            since=camera.updated_at if said is None else said.since,
            node_id=None, node_alive=None,
            last_frame_at=None if row is None else row.last_frame_at,
            stats=CameraStats(),
        )
    if row is None or row.status == "disabled":
        # Re-enabled (or new): the last "disabled" is stale until a node takes the camera.
        # Waiting since the last change (for a new camera, its creation): a camera re-enabled
        # today has not been waiting since it was created.
        return CameraStatusOut(
            status="connecting", reason=WAITING, since=camera.updated_at, node_id=None,
            node_alive=None,
            last_frame_at=None if row is None else row.last_frame_at, stats=CameraStats(),
        )
    return CameraStatusOut(
        status=row.status, reason=mask_credentials(row.reason), since=row.since,
        node_id=row.node_id, node_alive=None if row.node_id is None else bool(row.node_alive),
        last_frame_at=row.last_frame_at, stats=_stats(row.stats, camera.id),
    )


async def camera_history(engine: AsyncEngine, camera_id: str, limit: int,
                         site: str | None = None) -> list[CameraEventOut] | None:
    """Newest first; None for an unknown camera (events outlive a deleted camera, but the API
    answers only for registered ones)."""
    async with engine.connect() as conn:
        query = select(cameras.c.id).where(cameras.c.id == camera_id)
        if site is not None:
            query = query.where(cameras.c.site == site)
        known = (await conn.execute(query)).first()
        if known is None:
            return None
        rows = await conn.execute(
            select(camera_events).where(camera_events.c.camera_id == camera_id)
            .order_by(camera_events.c.at.desc(), camera_events.c.id.desc()).limit(limit))
        return [
            CameraEventOut(id=r.id, camera_id=r.camera_id, status=r.status, previous=r.previous,
                           reason=mask_credentials(r.reason), at=r.at, node_id=r.node_id)
            for r in rows
        ]


async def list_ingest_nodes(engine: AsyncEngine, site: str | None = None,
                            ) -> list[IngestNodeOut]:
    """Every node with its load. `camera_ids` lists only the cameras of `site` (None: all):
    a node's load is fleet information, which cameras it pulls is not."""
    # One transaction: now() is the same instant for the nodes' and the leases' expiries.
    async with engine.begin() as conn:
        nodes = (await conn.execute(
            select(ingest_nodes, (ingest_nodes.c.expires_at > func.now()).label("alive"))
            .order_by(ingest_nodes.c.id)
        )).all()
        leases = await conn.execute(
            select(camera_leases.c.node_id, camera_leases.c.camera_id, cameras.c.site)
            .join(cameras, cameras.c.id == camera_leases.c.camera_id)
            .where(camera_leases.c.expires_at > func.now())
            .order_by(camera_leases.c.node_id, camera_leases.c.camera_id)
        )
        held: dict[str, int] = {}
        shown: dict[str, list[str]] = {}
        for lease in leases:
            held[lease.node_id] = held.get(lease.node_id, 0) + 1
            if site is None or lease.site == site:
                shown.setdefault(lease.node_id, []).append(lease.camera_id)
    return [
        IngestNodeOut(
            id=n.id, boot_id=n.boot_id, capacity=n.capacity, started_at=n.started_at,
            expires_at=n.expires_at, alive=n.alive, draining=n.draining,
            cameras=held.get(n.id, 0), camera_ids=shown.get(n.id, []),
        )
        for n in nodes
    ]
