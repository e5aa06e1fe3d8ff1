"""Tables of recorded-video jobs (migrations 0011 and 0012), declared on contracts.tables'
metadata.

A job is split into segments; each segment is processed as a virtual camera (a disabled
`cameras` row of its own, so the existing apply path, fencing and progress serve it), and the
job's result is merged from the segments' crossing and zone events by an idempotent finalize.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# zone_tables rides along: contracts.tables imports this module so that whoever reads
# `metadata` (Alembic, the schema test) sees every table, and zone_events must be among them.
from contracts import zone_tables as _zone_tables  # noqa: F401
from contracts.tables import metadata

VIDEO_JOB_STATES = ("pending", "running", "done", "failed")
SEGMENT_STATES = ("pending", "running", "done")

video_jobs = Table(
    "video_jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("source_path", Text, nullable=False, comment="absolute path of the video file"),
    Column("uploaded", Boolean, nullable=False, comment="the registry wrote the file"),
    Column("capability", Text, nullable=False),
    Column("model", Text, nullable=True),
    Column("object_classes", JSONB, nullable=True),
    Column("min_confidence", Float, nullable=True),
    Column("region", Text, nullable=False, server_default="local"),
    Column("lines", JSONB, nullable=False, comment="[{name, a: {x, y}, b: {x, y}}]"),
    Column("zones", JSONB, nullable=False, server_default=text("'[]'::jsonb"),
           comment="[{name, points: [{x, y}, ...]}]"),
    Column("segment_s", Float, nullable=False),
    Column("overlap_s", Float, nullable=False),
    Column("batch_frames", Integer, nullable=False),
    Column("target_fps", Float, nullable=True, comment="null: every frame of the file"),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("error", Text, nullable=False, server_default=""),
    Column("fps", Float, nullable=True),
    Column("base_at", Float, nullable=True,
           comment="Unix s given to frame 0: frame i is captured at base_at + i / fps"),
    Column("frames_total", Integer, nullable=True),
    Column("frames_done", Integer, nullable=False, server_default="0"),
    Column("segments_total", Integer, nullable=True),
    Column("segments_done", Integer, nullable=False, server_default="0"),
    Column("runner_id", Text, nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True,
           comment="database clock; past it another runner may take the job over"),
    Column("created_by", Text, nullable=True, comment="api key id"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in VIDEO_JOB_STATES)})",
                    name="ck_video_jobs_state"),
    Index("ix_video_jobs_site", "site", "created_at"),
    Index("ix_video_jobs_open", "created_at",
          postgresql_where=text("state IN ('pending', 'running')")),
)

video_segments = Table(
    "video_segments",
    metadata,
    Column("job_id", Text, ForeignKey("video_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("camera_id", Text, nullable=False, comment="its virtual camera"),
    Column("first_frame", Integer, nullable=False, comment="the tracker starts here (overlap)"),
    Column("own_from", Integer, nullable=False, comment="crossings from this frame count"),
    Column("own_to", Integer, nullable=False, comment="... up to this one (exclusive)"),
    Column("batches", Integer, nullable=False),
    Column("frames_done", Integer, nullable=False, server_default="0"),
    Column("state", Text, nullable=False, server_default="pending"),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in SEGMENT_STATES)})",
                    name="ck_video_segments_state"),
)

video_job_counts = Table(
    "video_job_counts",
    metadata,
    Column("job_id", Text, ForeignKey("video_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("line_name", Text, primary_key=True),
    Column("direction", Text, primary_key=True),
    Column("object_class", Text, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

video_job_zone_counts = Table(
    "video_job_zone_counts",
    metadata,
    Column("job_id", Text, ForeignKey("video_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("zone_name", Text, primary_key=True),
    Column("object_class", Text, primary_key=True),
    Column("entries", BigInteger, nullable=False),
    Column("exits", BigInteger, nullable=False),
    Column("peak_occupancy", Integer, nullable=False),
    Column("dwell_total_s", Float, nullable=False),
    Column("dwell_count", BigInteger, nullable=False, comment="exits whose dwell is summed"),
)
