"""Settings of the video API (mixed into the registry's) and of the video runner."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.settings import CommonSettings


def _unset_when_empty(value: object) -> object:
    # VIDEO_DIR= would otherwise become Path(""): the working directory.
    return None if value == "" else value


class UploadRetention(BaseSettings):
    """Read by both processes that settle a job: the registry (an operator's finalize) and the
    runner (its own finalize, or a failure). Both must hold the same value."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    keep_uploaded_videos: bool = Field(
        default=False, description="keep an uploaded video's file once its job is done or "
                                   "failed; by default it is deleted then (a named file under "
                                   "VIDEO_SOURCE_DIR is never deleted)")


class VideoApiSettings(UploadRetention):
    """Where uploads go and which files a job may name. Unset directories refuse that route."""

    video_dir: Path | None = Field(
        default=None, description="uploaded videos are written under it; unset: uploads refused")
    video_source_dir: Path | None = Field(
        default=None, description="a job may name a file under it (POST /api/videos); unset: "
                                  "refused")
    max_video_bytes: int = Field(default=4 * 1024**3, ge=1024,
                                 description="largest upload (its own limit, not MAX_BODY_BYTES)")

    @field_validator("video_dir", "video_source_dir", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        return _unset_when_empty(value)


class VideoRunnerSettings(UploadRetention, CommonSettings):
    runner_id: str = Field(default_factory=lambda: f"videos-{secrets.token_hex(4)}")
    poll_s: float = Field(default=1.0, gt=0, description="how often pending jobs are looked for")
    lease_s: float = Field(default=30.0, gt=0,
                           description="a job whose runner stopped renewing for this long is "
                                       "taken over by another runner")
    progress_s: float = Field(default=0.5, gt=0, description="progress read and written")
    log_every_s: float = Field(default=5.0, gt=0, description="progress log lines at most")
    window_batches: int = Field(
        default=1, ge=1, description="batches of one segment in flight at once. Above 1, a "
        "balancer move of the segment while several are in flight reorders them (the fenced "
        "ones come back behind newer ones) into a gap, which fails the job")
    parallel_segments: int = Field(default=8, ge=1,
                                   description="segments in flight at once: the parallelism "
                                               "(keep it at twice the workers or more)")
    gate_poll_s: float = Field(default=0.05, gt=0,
                               description="how often segment progress is read to send the "
                                           "next batch")
    batch_deadline_s: float = Field(default=900.0, gt=0,
                                    description="a batch not applied this long after its "
                                                "publication becomes a gap (the job fails)")
    max_width: int = Field(default=640, ge=16)
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    burst: bool = Field(default=False, description="exit once no job is left (tests, batch runs)")
