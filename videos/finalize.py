"""The idempotent finalize: merge a job's segment counts into its result, once.

One transaction holds the job's row lock from the check to the state change, so finalizes
triggered twice or at the same time (the runner, an operator's POST .../finalize, a runner
that took the job over) queue on the lock, and all but the first find the job 'done' and
change nothing. The counts are inserted with ON CONFLICT DO NOTHING as a second guard: even a
finalize that somehow ran twice could not add them up twice.

The merge: each segment's crossing events, kept only where the segment owns them
(videos/ownership.py), summed per line name, direction and class. Lines are matched by name:
every segment's virtual camera has its own copy of the job's lines. Zone events by the same
rule, per zone name and class, with peak occupancy replayed per segment (videos/zone_merge.py).

Once the job is settled (this call or an earlier one), an uploaded video's file is deleted
(videos/retention.py).
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.tables import camera_progress, counting_lines, crossing_events, zones
from contracts.video_tables import (
    video_job_counts,
    video_job_zone_counts,
    video_jobs,
    video_segments,
)
from contracts.zone_tables import zone_events
from videos.jobs import drop_segment_cameras
from videos.ownership import Window, owns
from videos.retention import discard_upload
from videos.zone_merge import ZoneMark, merge_zones


class Finalized(enum.Enum):
    MERGED = "merged"  # this call merged the counts
    ALREADY = "already"  # done before: nothing changed
    NOT_READY = "not_ready"  # a segment is not fully applied yet
    FAILED = "failed"
    MISSING = "missing"


_SETTLED = (Finalized.MERGED, Finalized.ALREADY, Finalized.FAILED)


async def finalize(engine: AsyncEngine, job_id: str, *, keep_upload: bool) -> Finalized:
    """`keep_upload`: the KEEP_UPLOADED_VIDEOS setting (required: the registry and the runner
    both finalize, and both must honour it)."""
    outcome, job = await _merge(engine, job_id)
    if job is not None and outcome in _SETTLED:
        await discard_upload(job_id, job.source_path, job.uploaded, keep_upload)
    return outcome


async def _merge(engine: AsyncEngine, job_id: str) -> tuple[Finalized, Row[Any] | None]:
    async with engine.begin() as conn:
        job = (await conn.execute(select(video_jobs).where(video_jobs.c.id == job_id)
                                  .with_for_update())).first()
        if job is None:
            return Finalized.MISSING, None
        if job.state == "done":
            return Finalized.ALREADY, job
        if job.state == "failed":
            return Finalized.FAILED, job
        segments = list(await conn.execute(
            select(video_segments, camera_progress.c.last_seq)
            .select_from(video_segments.outerjoin(
                camera_progress, camera_progress.c.camera_id == video_segments.c.camera_id))
            .where(video_segments.c.job_id == job_id)))
        if (job.segments_total is None or len(segments) != job.segments_total
                or any(s.last_seq is None or s.last_seq + 1 < s.batches for s in segments)):
            return Finalized.NOT_READY, job
        windows = {s.camera_id: Window.of(s.own_from, s.own_to, job.frames_total, job.base_at,
                                          job.fps) for s in segments}
        events = await conn.execute(
            select(crossing_events.c.camera_id, crossing_events.c.occurred_at,
                   crossing_events.c.direction, crossing_events.c.object_class,
                   counting_lines.c.name)
            .join(counting_lines, counting_lines.c.id == crossing_events.c.line_id)
            .where(crossing_events.c.camera_id.in_(list(windows))))
        counts = Counter(
            (e.name, e.direction, e.object_class) for e in events
            if owns(windows[e.camera_id], e.occurred_at.timestamp()))
        if counts:
            await conn.execute(insert(video_job_counts).values([
                {"job_id": job_id, "line_name": name, "direction": direction,
                 "object_class": cls, "count": n}
                for (name, direction, cls), n in counts.items()
            ]).on_conflict_do_nothing())
        await _merge_zones(conn, job_id, windows)
        await conn.execute(update(video_segments).where(video_segments.c.job_id == job_id)
                           .values(state="done", frames_done=video_segments.c.own_to
                                   - video_segments.c.own_from))
        await conn.execute(update(video_jobs).where(video_jobs.c.id == job_id).values(
            state="done", segments_done=job.segments_total, frames_done=job.frames_total,
            finished_at=func.now(), updated_at=func.now(), lease_expires_at=None))
        await drop_segment_cameras(conn, job_id)
    return Finalized.MERGED, job


async def _merge_zones(conn: AsyncConnection, job_id: str, windows: dict[str, Window]) -> None:
    rows = await conn.execute(
        select(zone_events.c.camera_id, zone_events.c.occurred_at, zone_events.c.kind,
               zone_events.c.object_class, zone_events.c.dwell_s, zones.c.name)
        .join(zones, zones.c.id == zone_events.c.zone_id)
        .where(zone_events.c.camera_id.in_(list(windows))))
    marks: dict[str, list[ZoneMark]] = {camera_id: [] for camera_id in windows}
    for r in rows:
        marks[r.camera_id].append(ZoneMark(r.occurred_at.timestamp(), r.name, r.object_class,
                                           r.kind, r.dwell_s))
    totals = merge_zones((windows[camera_id], m) for camera_id, m in marks.items())
    if totals:
        await conn.execute(insert(video_job_zone_counts).values([
            {"job_id": job_id, "zone_name": name, "object_class": cls, "entries": t.entries,
             "exits": t.exits, "peak_occupancy": t.peak_occupancy,
             "dwell_total_s": t.dwell_total_s, "dwell_count": t.dwell_count}
            for (name, cls), t in totals.items()
        ]).on_conflict_do_nothing())
