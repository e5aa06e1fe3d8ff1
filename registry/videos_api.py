"""Recorded video jobs: upload a video (multipart, streamed to VIDEO_DIR) or name a file under
VIDEO_SOURCE_DIR, with counting lines and zones and a detector; follow its progress; read its
counts. The video runner (`camcount videos`) does the work (videos/service.py).

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.auth import Auth, Principal
from registry.cameras_api import _site_of_new_camera
from registry.errors import AUTHENTICATED, error_responses
from registry.models import (
    BatchFrames,
    Capability,
    LineIn,
    Lines,
    MinConfidence,
    ModelName,
    ObjectClasses,
    Slug,
    ZoneIn,
    Zones,
)
from registry.settings import RegistrySettings
from videos import jobs
from videos.finalize import Finalized, finalize
from videos.sources import resolve_source
from videos.upload import FILE_FIELD, SPEC_FIELD, UploadError, receive_upload


class VideoSpec(BaseModel):
    """A job's settings: lines and zones as for a camera (at least one of either)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    site: Slug | None = Field(default=None, description="as for cameras: the key's own site "
                              "when left out")
    region: Slug = "local"
    capability: Capability = "motion"
    model: ModelName = None
    object_classes: ObjectClasses = None
    min_confidence: MinConfidence = None
    lines: Lines = []
    zones: Zones = Field(default=[], description="polygons in relative 0..1 coordinates; "
                         "the result has entries, exits, peak occupancy and dwell per zone "
                         "and class")
    segment_s: float = Field(default=60.0, gt=0, le=3600,
                             description="footage per segment; segments run in parallel")
    overlap_s: float = Field(default=3.0, ge=0, le=60,
                             description="each segment's tracker starts this much earlier; "
                                         "keep it above the tracker's confirmation, settling "
                                         "and hand-over time (videos/segments.py)")
    target_fps: float | None = Field(default=None, gt=0, le=120,
                                     description="frames per second processed; null: all")
    batch_frames: BatchFrames = 5

    @model_validator(mode="after")
    def _counts_something(self) -> Self:
        if not self.lines and not self.zones:
            raise ValueError("a video job needs at least one line or zone")
        return self


class VideoFromPath(VideoSpec):
    path: str = Field(min_length=1, max_length=4096,
                      description="absolute path of a file under VIDEO_SOURCE_DIR")


class VideoCountOut(BaseModel):
    line: str
    direction: str
    object_class: str
    count: int


class VideoZoneCountOut(BaseModel):
    zone: str
    object_class: str
    entries: int
    exits: int
    peak_occupancy: int = Field(description="the most objects inside at once")
    dwell_total_s: float = Field(description="time inside of the objects that left, summed")
    dwell_count: int = Field(description="objects that left, whose dwell is summed")
    dwell_avg_s: float | None = Field(description="mean stay of the objects that left; null "
                                      "where none left")


class VideoJobOut(BaseModel):
    id: str
    name: str
    site: str
    state: str = Field(description="pending | running | done | failed")
    error: str
    source: str = Field(description="the video's file name")
    uploaded: bool
    capability: str
    model: str | None
    object_classes: list[str] | None
    min_confidence: float | None
    region: str
    lines: list[LineIn]
    zones: list[ZoneIn]
    segment_s: float
    overlap_s: float
    target_fps: float | None
    batch_frames: int
    fps: float | None
    segments_done: int
    segments_total: int | None
    frames_done: int
    frames_total: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    counts: list[VideoCountOut] = Field(description="merged per line, direction and class; "
                                        "filled when the job is done")
    zone_counts: list[VideoZoneCountOut] = Field(description="merged per zone and class; "
                                                 "filled when the job is done")


def _zone_count_out(c: Any) -> VideoZoneCountOut:
    return VideoZoneCountOut(
        zone=c.zone_name, object_class=c.object_class, entries=c.entries, exits=c.exits,
        peak_occupancy=c.peak_occupancy, dwell_total_s=c.dwell_total_s,
        dwell_count=c.dwell_count,
        dwell_avg_s=c.dwell_total_s / c.dwell_count if c.dwell_count else None)


def _job_out(job: Any, counts: Sequence[Any] = (),
             zone_counts: Sequence[Any] = ()) -> VideoJobOut:
    return VideoJobOut(
        id=job.id, name=job.name, site=job.site, state=job.state, error=job.error,
        source=Path(job.source_path).name, uploaded=job.uploaded, capability=job.capability,
        model=job.model, object_classes=job.object_classes, min_confidence=job.min_confidence,
        region=job.region, lines=[LineIn.model_validate(x) for x in job.lines],
        zones=[ZoneIn.model_validate(x) for x in job.zones],
        segment_s=job.segment_s, overlap_s=job.overlap_s, target_fps=job.target_fps,
        batch_frames=job.batch_frames, fps=job.fps, segments_done=job.segments_done,
        segments_total=job.segments_total, frames_done=job.frames_done,
        frames_total=job.frames_total, created_at=job.created_at, updated_at=job.updated_at,
        finished_at=job.finished_at,
        counts=[VideoCountOut(line=c.line_name, direction=c.direction,
                              object_class=c.object_class, count=c._mapping["count"])
                for c in counts],
        zone_counts=[_zone_count_out(c) for c in zone_counts])


def _view_out(view: jobs.JobView) -> VideoJobOut:
    return _job_out(view.job, view.counts, view.zone_counts)


def _refused(loc: tuple[str, ...], message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message,
                                    "input": value}])


UPLOAD_PATH = "/api/videos/upload"
_UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [SPEC_FIELD, FILE_FIELD],
    "properties": {
        SPEC_FIELD: {"type": "string", "description": "the job's settings as JSON (VideoSpec)"},
        FILE_FIELD: {"type": "string", "format": "binary", "description": "the video"},
    }}}}}


def videos_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["videos"], responses=AUTHENTICATED)
    Operator = Annotated[Principal, Depends(auth.operator)]
    Viewer = Annotated[Principal, Depends(auth.viewer)]
    not_found = error_responses(404)

    async def create(spec: VideoSpec, caller: Principal, source: Path, uploaded: bool,
                     job_id: str) -> VideoJobOut:
        values = spec.model_dump(exclude={"path", "site"}, mode="json")
        values.update(id=job_id, site=_site_of_new_camera(caller, spec.site),
                      source_path=str(source), uploaded=uploaded, created_by=caller.key_id)
        await jobs.create_job(engine, values)
        found = await jobs.read_job(engine, job_id)
        assert found is not None
        return _view_out(found)

    @router.post("/api/videos", status_code=status.HTTP_201_CREATED,
                 responses=error_responses(403))
    async def create_from_path(body: VideoFromPath, caller: Operator) -> VideoJobOut:
        """A job over a file already on the runners' disk, under VIDEO_SOURCE_DIR."""
        _site_of_new_camera(caller, body.site)  # 403 before the file system is looked at
        try:
            source = await asyncio.to_thread(resolve_source, body.path,
                                             settings.video_source_dir)
        except ValueError as exc:
            raise _refused(("body", "path"), str(exc), body.path) from None
        return await create(body, caller, source, False, jobs.new_job_id())

    @router.post(UPLOAD_PATH, status_code=status.HTTP_201_CREATED,
                 responses=error_responses(403), openapi_extra={"requestBody": _UPLOAD_BODY})
    async def upload(request: Request, caller: Operator) -> VideoJobOut:
        """Upload a video (multipart/form-data: `spec`, the settings as JSON, and `file`),
        streamed to VIDEO_DIR under MAX_VIDEO_BYTES (not the JSON body limit)."""
        if settings.video_dir is None:
            raise _refused(("body", FILE_FIELD),
                           "uploads are refused: the registry has no VIDEO_DIR configured")
        job_id = jobs.new_job_id()
        directory = settings.video_dir.resolve()
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        destination = directory / f"{job_id}.video"
        try:
            raw, _ = await receive_upload(request.stream(), request.headers.get("content-type"),
                                          destination, settings.max_video_bytes)
        except UploadError as exc:
            if exc.status == status.HTTP_413_CONTENT_TOO_LARGE:
                raise HTTPException(exc.status, str(exc)) from None
            where = ("header", exc.field) if exc.field == "content-type" else ("body", exc.field)
            raise _refused(where, str(exc)) from None
        try:
            spec = VideoSpec.model_validate(json.loads(raw))
            _site_of_new_camera(caller, spec.site)
        except (ValueError, ValidationError, HTTPException) as exc:
            await asyncio.to_thread(destination.unlink, missing_ok=True)
            if isinstance(exc, HTTPException):
                raise
            if isinstance(exc, ValidationError):
                raise RequestValidationError([
                    {**e, "loc": ("body", SPEC_FIELD, *e["loc"])} for e in exc.errors()
                ]) from None
            raise _refused(("body", SPEC_FIELD), f"spec is not JSON: {exc}") from None
        return await create(spec, caller, destination, True, job_id)

    @router.get("/api/videos")
    async def list_videos(
        caller: Viewer,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[VideoJobOut]:
        """The key's site's video jobs, newest first (counts left empty: GET one for them)."""
        rows = await jobs.list_jobs(engine, caller.site_filter, limit, offset)
        return [_job_out(row) for row in rows]

    @router.get("/api/videos/{job_id}", responses=not_found)
    async def get_video(job_id: str, caller: Viewer) -> VideoJobOut:
        """State and progress (segments and frames done of their totals); counts once done."""
        found = await jobs.read_job(engine, job_id, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video job {job_id!r}")
        return _view_out(found)

    @router.post("/api/videos/{job_id}/finalize", responses=error_responses(404, 409))
    async def finalize_video(job_id: str, caller: Operator) -> VideoJobOut:
        """Merge the segments' counts now (the runner does it by itself at the end). Safe to
        repeat or race: a done job is returned unchanged."""
        if await jobs.read_job(engine, job_id, caller.site_filter) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video job {job_id!r}")
        outcome = await finalize(engine, job_id, keep_upload=settings.keep_uploaded_videos)
        if outcome in (Finalized.NOT_READY, Finalized.FAILED):
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"video job {job_id!r} cannot be finalized: {outcome.value}")
        found = await jobs.read_job(engine, job_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video job {job_id!r}")
        return _view_out(found)

    return router
