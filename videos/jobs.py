"""Video jobs in PostgreSQL: creating one (the API), claiming and leasing one (the runner), its
segments and their virtual cameras, and reading it back with its line and zone counts."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.broker import Priority
from contracts.tables import camera_progress, cameras, counting_lines, coverage_gaps, zones
from contracts.video_tables import (
    video_job_counts,
    video_job_zone_counts,
    video_jobs,
    video_segments,
)
from videos.retention import discard_upload
from videos.segments import Segment

JobRow = Row[Any]


def new_job_id() -> str:
    # Short: it prefixes the segments' camera ids, which must stay valid slugs.
    return f"v{secrets.token_hex(6)}"


def segment_camera_id(job_id: str, index: int) -> str:
    return f"{job_id}-{index}"


async def create_job(engine: AsyncEngine, values: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        await conn.execute(video_jobs.insert().values(values))


def _visible(job_id: str, site: str | None) -> Any:
    condition = video_jobs.c.id == job_id
    return condition if site is None else and_(condition, video_jobs.c.site == site)


@dataclass(frozen=True)
class JobView:
    """A job with its merged results (empty until it is done)."""

    job: JobRow
    counts: list[Row[Any]]  # per line, direction and class
    zone_counts: list[Row[Any]]  # per zone and class


async def read_job(engine: AsyncEngine, job_id: str, site: str | None = None) -> JobView | None:
    """The job (of `site`, when given) and its merged counts; None when not visible."""
    async with engine.connect() as conn:
        job = (await conn.execute(select(video_jobs).where(_visible(job_id, site)))).first()
        if job is None:
            return None
        counts = list(await conn.execute(
            select(video_job_counts).where(video_job_counts.c.job_id == job_id)
            .order_by(video_job_counts.c.line_name, video_job_counts.c.direction,
                      video_job_counts.c.object_class)))
        zone_counts = list(await conn.execute(
            select(video_job_zone_counts).where(video_job_zone_counts.c.job_id == job_id)
            .order_by(video_job_zone_counts.c.zone_name, video_job_zone_counts.c.object_class)))
    return JobView(job, counts, zone_counts)


async def list_jobs(engine: AsyncEngine, site: str | None, limit: int,
                    offset: int) -> list[JobRow]:
    query = select(video_jobs).order_by(video_jobs.c.created_at.desc(), video_jobs.c.id)
    if site is not None:
        query = query.where(video_jobs.c.site == site)
    async with engine.connect() as conn:
        return list(await conn.execute(query.limit(limit).offset(offset)))


async def claim(engine: AsyncEngine, runner_id: str, lease_s: float) -> JobRow | None:
    """Take the oldest pending job, or a running one whose runner stopped renewing its lease;
    SKIP LOCKED: runners never wait on each other."""
    lease = text("now() + make_interval(secs => :lease_s)").bindparams(lease_s=lease_s)
    async with engine.begin() as conn:
        candidate = (await conn.execute(
            select(video_jobs.c.id)
            .where(or_(video_jobs.c.state == "pending",
                       and_(video_jobs.c.state == "running",
                            video_jobs.c.lease_expires_at < func.now())))
            .order_by(video_jobs.c.created_at).limit(1)
            .with_for_update(skip_locked=True))).first()
        if candidate is None:
            return None
        return (await conn.execute(
            update(video_jobs).where(video_jobs.c.id == candidate.id)
            .values(state="running", runner_id=runner_id, lease_expires_at=lease,
                    updated_at=func.now())
            .returning(*video_jobs.c))).one()


async def renew(engine: AsyncEngine, job_id: str, runner_id: str, lease_s: float,
                **progress: Any) -> bool:
    """Extend the lease and write progress; False when the job is no longer ours (taken over,
    finished, failed or deleted)."""
    lease = text("now() + make_interval(secs => :lease_s)").bindparams(lease_s=lease_s)
    async with engine.begin() as conn:
        result = await conn.execute(
            update(video_jobs)
            .where(video_jobs.c.id == job_id, video_jobs.c.runner_id == runner_id,
                   video_jobs.c.state == "running")
            .values(lease_expires_at=lease, updated_at=func.now(), **progress))
    return result.rowcount == 1


async def fail(engine: AsyncEngine, job_id: str, error: str, *, keep_upload: bool) -> None:
    """Settle the job as failed; its upload is deleted unless `keep_upload`."""
    async with engine.begin() as conn:
        failed = (await conn.execute(
            update(video_jobs).where(video_jobs.c.id == job_id,
                                     video_jobs.c.state.in_(("pending", "running")))
            .values(state="failed", error=error[:2000], finished_at=func.now(),
                    updated_at=func.now(), lease_expires_at=None)
            .returning(video_jobs.c.source_path, video_jobs.c.uploaded))).first()
        await drop_segment_cameras(conn, job_id)
    if failed is not None:  # else settled meanwhile, by whoever then deleted the upload
        await discard_upload(job_id, failed.source_path, failed.uploaded, keep_upload)


async def drop_segment_cameras(conn: AsyncConnection, job_id: str) -> None:
    """The virtual cameras go once the job is settled: their rows (progress, events, buckets)
    cascade with them, and no camera list shows them."""
    ids = select(video_segments.c.camera_id).where(video_segments.c.job_id == job_id)
    await conn.execute(cameras.delete().where(cameras.c.id.in_(ids.scalar_subquery())))


@dataclass(frozen=True)
class Layout:
    """What a job looks like once started: its timing and its segments."""

    fps: float
    frames_total: int
    base_at: float
    segments: list[Segment]
    batches: list[int]


async def start_segments(engine: AsyncEngine, job: JobRow, fps: float, frames_total: int,
                         base_at: float, planned: Sequence[Segment],
                         batches: Sequence[int]) -> Layout:
    """Create the segments and their virtual cameras once; a runner that takes over a job finds
    them (and the timing the first runner chose) and goes on with those."""
    async with engine.begin() as conn:
        row = (await conn.execute(select(video_jobs).where(video_jobs.c.id == job.id)
                                  .with_for_update())).one()
        if row.base_at is None:
            await conn.execute(update(video_jobs).where(video_jobs.c.id == job.id).values(
                fps=fps, frames_total=frames_total, base_at=base_at,
                segments_total=len(planned)))
            for segment, count in zip(planned, batches, strict=True):
                await _create_segment(conn, job, segment, count)
        else:
            fps, frames_total, base_at = row.fps, row.frames_total, row.base_at
        rows = list(await conn.execute(select(video_segments).where(
            video_segments.c.job_id == job.id).order_by(video_segments.c.idx)))
    return Layout(fps, frames_total, base_at,
                  [Segment(r.idx, r.first_frame, r.own_from, r.own_to) for r in rows],
                  [r.batches for r in rows])


async def _create_segment(conn: AsyncConnection, job: JobRow, segment: Segment,
                          batches: int) -> None:
    camera_id = segment_camera_id(job.id, segment.index)
    await conn.execute(insert(cameras).values(
        id=camera_id, name=f"{job.name} (video {job.id}, segment {segment.index})",
        url=f"video:{job.id}/{segment.index}", region=job.region, priority=int(Priority.LOW),
        capability=job.capability, object_classes=job.object_classes,
        min_confidence=job.min_confidence, model=job.model, site=job.site,
        # Disabled: no ingest node pulls it; the video runner feeds it.
        enabled=False,
    ).on_conflict_do_nothing())
    if job.lines:
        await conn.execute(counting_lines.insert().values([
            {"camera_id": camera_id, "name": line["name"], "version": 1,
             "geometry": {"a": line["a"], "b": line["b"]}} for line in job.lines]))
    if job.zones:
        await conn.execute(zones.insert().values([
            {"camera_id": camera_id, "name": zone["name"], "version": 1,
             "polygon": zone["points"]} for zone in job.zones]))
    await conn.execute(video_segments.insert().values(
        job_id=job.id, idx=segment.index, camera_id=camera_id, first_frame=segment.first_frame,
        own_from=segment.own_from, own_to=segment.own_to, batches=batches))


async def set_batches(engine: AsyncEngine, job_id: str, index: int, batches: int) -> None:
    """A segment that ended early (a damaged file) has fewer batches than planned."""
    async with engine.begin() as conn:
        await conn.execute(update(video_segments).where(
            video_segments.c.job_id == job_id, video_segments.c.idx == index
        ).values(batches=batches))


async def applied_batches(engine: AsyncEngine, job_id: str) -> dict[int, int]:
    """Per segment: how many of its batches are applied (its progress's last seq + 1)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(video_segments.c.idx, camera_progress.c.last_seq)
            .select_from(video_segments.outerjoin(
                camera_progress, camera_progress.c.camera_id == video_segments.c.camera_id))
            .where(video_segments.c.job_id == job_id))
        return {r.idx: (r.last_seq + 1 if r.last_seq is not None else 0) for r in rows}


async def write_segment_progress(engine: AsyncEngine, job_id: str,
                                 frames: dict[int, tuple[int, str]]) -> None:
    """Per segment: (own frames done, state)."""
    async with engine.begin() as conn:
        for index, (done, state) in frames.items():
            await conn.execute(update(video_segments).where(
                video_segments.c.job_id == job_id, video_segments.c.idx == index,
            ).values(frames_done=done, state=state))


async def segment_gaps(engine: AsyncEngine, job_id: str) -> list[str]:
    """Batches of the job's segments recorded as gaps (shed, stale, dead-lettered): counts
    over them would be short, so the job cannot finish."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(video_segments.c.idx, coverage_gaps.c.seq_from, coverage_gaps.c.seq_to,
                   coverage_gaps.c.reason)
            .select_from(video_segments.join(
                coverage_gaps, coverage_gaps.c.camera_id == video_segments.c.camera_id))
            .where(video_segments.c.job_id == job_id).order_by(video_segments.c.idx))
        return [f"segment {r.idx} batches {r.seq_from}-{r.seq_to}: {r.reason}" for r in rows]


async def count_by_state(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(video_jobs.c.state, func.count().label("n"))
                                  .group_by(video_jobs.c.state))
        return {r.state: r.n for r in rows}
