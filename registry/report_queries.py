"""The reads behind a report: the cameras (with what bounds their coverage), PostgreSQL's sums
of their minutes into the report's buckets, and their coverage gaps.

The sums run on the (camera_id, bucket_start) indexes of count_buckets and zone_buckets, and
`width_bucket` over the report's own boundaries puts each minute in its bucket, so hours and
days in any time zone (daylight saving included) come out of one query shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.tables import (
    camera_events,
    camera_progress,
    count_buckets,
    counting_lines,
    coverage_gaps,
    zone_buckets,
    zones,
)
from contracts.tables import cameras as camera_table
from registry.report import CameraFacts, GapRow, SummedRows
from registry.report_rows import Dimension, Measure, Summed

# A gap of batches recorded without times is placed just before it was recorded (see
# report_buckets.place_gap); those recorded this long after a report's end are not fetched.
SEQ_GAP_SLACK = timedelta(days=1)


async def _fetch(conn: AsyncConnection, query: Select[Any]) -> list[Any]:
    """Rows straight from asyncpg: SQLAlchemy's result layer took three times as long as the
    query itself for a month of minutes (43,200 rows). The statement is SQLAlchemy's own,
    compiled for this connection's dialect."""
    compiled = query.compile(dialect=conn.dialect)
    args = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg's; its records slice like tuples
    rows: list[Any] = await driver.fetch(compiled.string, *args)
    return rows


def _ids(ids: Sequence[str]) -> Any:
    return any_(bindparam("camera_ids", list(ids), type_=ARRAY(Text)))


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock: the one that stamped the progress rows and gaps."""
    now: datetime = (await conn.execute(select(func.now()))).scalar_one()
    return now


async def cameras(conn: AsyncConnection, ids: Sequence[str] | None, site: str | None,
                  limit: int) -> list[CameraFacts]:
    """The cameras named (or all of the site, by id, at most `limit`) that the key sees."""
    c, p, e = camera_table.c, camera_progress.c, camera_events.c
    # Watched from its first live frame, not from registration: a camera that never delivered
    # (wrong password, unreachable) has no camera_down gap, since ingest opens those only on
    # leaving live. Cameras without any status history (never run by ingest) fall back to
    # their registration.
    first_live = (select(func.min(e.at)).where(e.camera_id == c.id, e.status == "live")
                  .scalar_subquery())
    query = (
        select(c.id, c.name, c.created_at, c.batch_ms, c.batch_frames, c.target_fps,
               c.object_classes, p.updated_at, first_live.label("first_live"))
        .select_from(camera_table.outerjoin(camera_progress, p.camera_id == c.id))
        .order_by(c.id).limit(limit)
    )
    if ids is not None:
        query = query.where(c.id == _ids(ids))
    if site is not None:
        query = query.where(c.site == site)
    found = (await conn.execute(query)).all()
    ids_found = [r.id for r in found]
    lines = await _names(conn, counting_lines, ids_found)
    zone_names = await _names(conn, zones, ids_found)
    return [
        CameraFacts(
            id=r.id, name=r.name, last_applied_at=r.updated_at,
            registered_at=max(r.created_at, r.first_live) if r.first_live else r.created_at,
            batch_period_s=min(r.batch_ms / 1000, r.batch_frames / r.target_fps),
            lines=lines.get(r.id, ()), zones=zone_names.get(r.id, ()),
            classes=tuple(sorted(r.object_classes or ())),
        )
        for r in found
    ]


async def _names(conn: AsyncConnection, table: Any, camera_ids: Sequence[str],
                 ) -> dict[str, tuple[str, ...]]:
    """The active lines' (or zones') names of each camera."""
    rows = await conn.execute(
        select(table.c.camera_id, table.c.name).distinct()
        .where(table.c.camera_id == _ids(camera_ids), table.c.active)
        .order_by(table.c.camera_id, table.c.name))
    out: dict[str, list[str]] = {}
    for camera_id, name in rows:
        out.setdefault(camera_id, []).append(name)
    return {camera_id: tuple(names) for camera_id, names in out.items()}


async def summed(conn: AsyncConnection, measure: Measure, dims: Sequence[Dimension],
                 camera_ids: Sequence[str], bounds: Sequence[datetime],
                 uniform_s: int | None = None, limit: int | None = None) -> SummedRows:
    """Per camera, per asked dimension and per report bucket: the measure's fields.
    `uniform_s`: every bucket lasts that many seconds (bucket=minute). At most `limit` rows
    (the caller asks one more than it accepts, to know)."""
    if measure.name == "crossings":
        t = count_buckets.c
        names, name_id = counting_lines, t.line_id
        fields: list[Any] = [cast(func.sum(t.count), BigInteger)]
        named = "line"
    else:
        t = zone_buckets.c
        names, name_id = zones, t.zone_id
        fields = [cast(func.sum(t.entries), BigInteger), cast(func.sum(t.exits), BigInteger),
                  func.max(t.peak_occupancy), func.sum(t.dwell_total_s),
                  cast(func.sum(t.dwell_count), BigInteger)]
        named = "zone"
    source: Any = t.camera_id.table
    keys: list[Any] = []
    if named in dims:
        # Versions of a line (or zone) share its name: a report follows the name.
        source = source.outerjoin(names, names.c.id == name_id)
        keys.append(func.coalesce(names.c.name, literal(f"{named} ") + cast(name_id, Text)))
    if "class" in dims:
        keys.append(t.object_class)
    if "direction" in dims and measure.name == "crossings":
        keys.append(count_buckets.c.direction)
    if uniform_s is not None:
        # Buckets of equal length from the start (minutes): arithmetic, no boundary array
        # (43,200 of them for a month) to send and search.
        bucket: Any = cast(func.date_part("epoch", t.bucket_start - bounds[0]), BigInteger) \
            // uniform_s + 1
    else:
        bucket = func.width_bucket(t.bucket_start, bindparam(
            "bounds", list(bounds), type_=ARRAY(DateTime(timezone=True))))
    # The camera's first and last counted minute, in Unix seconds (cheaper to decode).
    query = (
        select(t.camera_id, *keys, bucket, *fields,
               func.date_part("epoch", func.min(t.bucket_start)),
               func.date_part("epoch", func.max(t.bucket_start)))
        .select_from(source)
        .where(t.camera_id == _ids(camera_ids), t.bucket_start >= bounds[0],
               t.bucket_start < bounds[-1])
        .group_by(t.camera_id, *keys, bucket)
        .limit(limit)
    )
    rows: list[Summed] = []
    data_from: dict[str, float] = {}
    data_to: dict[str, float] = {}
    key_end = 1 + len(keys)
    for r in await _fetch(conn, query):
        camera, first, last = r[0], r[-2], r[-1]
        rows.append((camera, r[1:key_end], r[key_end] - 1, r[key_end + 1:-2]))
        if first < data_from.get(camera, first + 1):
            data_from[camera] = first
        if last > data_to.get(camera, last - 1):
            data_to[camera] = last
    return SummedRows(rows, data_from, data_to)


async def gaps(conn: AsyncConnection, camera_ids: Sequence[str], start: datetime,
               end: datetime) -> list[GapRow]:
    """The cameras' gaps that may overlap [start, end): gaps of time by their times, gaps of
    batches recorded without times by when they were recorded."""
    g = coverage_gaps.c
    query = (
        select(g.camera_id, g.stream_epoch, g.seq_from, g.seq_to, g.started_at, g.ended_at,
               g.recorded_at, g.reason, g.detail)
        .where(g.camera_id == _ids(camera_ids), or_(
            and_(g.started_at.is_not(None), g.started_at < end,
                 or_(g.ended_at.is_(None), g.ended_at > start)),
            and_(g.started_at.is_(None), func.coalesce(g.ended_at, g.recorded_at) > start,
                 g.recorded_at < end + SEQ_GAP_SLACK),
        ))
        .order_by(g.camera_id, func.coalesce(g.started_at, g.recorded_at), g.id)
    )
    return [GapRow(*r) for r in await conn.execute(query)]
