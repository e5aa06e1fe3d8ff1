"""Writing one applied batch's effects inside the apply transaction: crossing and zone events,
per-minute line and zone buckets, the camera's progress with its checkpoint, an outbox row for
the relay."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.messages import BatchHeaders
from contracts.tables import (
    OUTBOX_CHANNEL,
    camera_progress,
    count_buckets,
    crossing_events,
    outbox,
    zone_buckets,
)
from contracts.zone_tables import zone_events
from workers.camera_state import BatchEffects, CameraState, count_key


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _minute(ts: float) -> datetime:
    return _dt(ts - ts % 60)


async def write_effects(
    conn: AsyncConnection,
    worker_id: str,
    headers: BatchHeaders,
    frame_times: Sequence[float],
    state: CameraState,
    effects: BatchEffects,
    first: bool,
    started_at: float | None = None,  # when the worker began on it, for latency breakdowns
) -> None:
    def at(frame_index: int) -> float:
        if not frame_times:
            return headers.captured_at
        return frame_times[min(frame_index, len(frame_times) - 1)]

    occupancy = state.occupancy()
    await _crossings(conn, headers, effects, at)
    await _zones(conn, headers, effects, at)
    values: dict[str, Any] = {
        "stream_epoch": headers.stream_epoch, "last_seq": headers.seq,
        "tracker_checkpoint": state.to_checkpoint(), "totals": state.totals,
        "occupancy": occupancy, "worker_id": worker_id, "updated_at": func.now(),
    }
    if first:
        await conn.execute(insert(camera_progress).values(camera_id=headers.camera_id, **values))
    else:
        await conn.execute(
            camera_progress.update()
            .where(camera_progress.c.camera_id == headers.camera_id)
            .values(values)
        )
    delta = Counter(
        count_key(c.line_id, c.direction, c.object_class) for c in effects.crossings
    )
    await conn.execute(
        insert(outbox).values(
            camera_id=headers.camera_id, region=headers.region, topic="counts",
            payload={"batch_id": str(headers.batch_id), "captured_at": headers.captured_at,
                     "committed_at": time.time(), "published_at": headers.published_at,
                     "started_at": started_at, "delta": dict(delta),
                     "totals": state.totals, "occupancy": occupancy},
        )
    )
    await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


async def _crossings(conn: AsyncConnection, headers: BatchHeaders, effects: BatchEffects,
                     at: Any) -> None:
    crossings = effects.crossings
    if not crossings:
        return
    await conn.execute(
        insert(crossing_events).values([
            {"camera_id": headers.camera_id, "line_id": c.line_id,
             "line_version": c.line_version, "track_id": c.track_id,
             "object_class": c.object_class, "direction": c.direction,
             "occurred_at": _dt(at(c.frame_index)), "stream_epoch": headers.stream_epoch,
             "seq": headers.seq}
            for c in crossings
        ])
    )
    buckets = Counter(
        (c.line_id, c.line_version, c.object_class, c.direction, _minute(at(c.frame_index)))
        for c in crossings
    )
    stmt = insert(count_buckets).values([
        {"camera_id": headers.camera_id, "line_id": k[0], "line_version": k[1],
         "object_class": k[2], "direction": k[3], "bucket_start": k[4], "count": n}
        for k, n in buckets.items()
    ])
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["camera_id", "line_id", "line_version", "object_class", "direction",
                        "bucket_start"],
        set_={"count": count_buckets.c.count + stmt.excluded.count},
    ))


async def _zones(conn: AsyncConnection, headers: BatchHeaders, effects: BatchEffects,
                 at: Any) -> None:
    if not effects.zone_events and not effects.peak_occupancy:
        return
    if effects.zone_events:
        # One by one as well: the buckets cannot be split at a recorded video's segment
        # boundaries (videos/zone_merge.py), nor later at a report's arbitrary window.
        await conn.execute(insert(zone_events).values([
            {"camera_id": headers.camera_id, "zone_id": e.zone_id,
             "zone_version": e.zone_version, "track_id": e.track_id,
             "object_class": e.object_class, "kind": e.kind,
             "occurred_at": _dt(at(e.frame_index)),
             "dwell_s": e.dwell_s if e.kind == "exit" else None,
             "stream_epoch": headers.stream_epoch, "seq": headers.seq}
            for e in effects.zone_events
        ]))
    minute = _minute(headers.captured_at)
    rows: dict[tuple[int, int, str, datetime], dict[str, Any]] = {}

    def row(zone_id: int, version: int, cls: str, bucket: datetime) -> dict[str, Any]:
        return rows.setdefault((zone_id, version, cls, bucket), {
            "camera_id": headers.camera_id, "zone_id": zone_id, "zone_version": version,
            "object_class": cls, "bucket_start": bucket, "entries": 0, "exits": 0,
            "peak_occupancy": 0, "dwell_total_s": 0.0, "dwell_count": 0,
        })

    for e in effects.zone_events:
        r = row(e.zone_id, e.zone_version, e.object_class, _minute(at(e.frame_index)))
        if e.kind == "enter":
            r["entries"] += 1
        else:
            r["exits"] += 1
            r["dwell_total_s"] += e.dwell_s
            r["dwell_count"] += 1
    for (zone_id, version, cls), peak in effects.peak_occupancy.items():
        r = row(zone_id, version, cls, minute)
        r["peak_occupancy"] = max(r["peak_occupancy"], peak)
    stmt = insert(zone_buckets).values(list(rows.values()))
    ex = stmt.excluded
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["camera_id", "zone_id", "zone_version", "object_class", "bucket_start"],
        set_={
            "entries": zone_buckets.c.entries + ex.entries,
            "exits": zone_buckets.c.exits + ex.exits,
            "peak_occupancy": func.greatest(zone_buckets.c.peak_occupancy, ex.peak_occupancy),
            "dwell_total_s": zone_buckets.c.dwell_total_s + ex.dwell_total_s,
            "dwell_count": zone_buckets.c.dwell_count + ex.dwell_count,
        },
    ))
