"""Recorded video jobs: the job, its segments (each a virtual camera) and the merged counts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NOW = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "video_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False,
                  comment="absolute path of the video file"),
        sa.Column("uploaded", sa.Boolean, nullable=False,
                  comment="the registry wrote the file"),
        sa.Column("capability", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("object_classes", JSONB, nullable=True),
        sa.Column("min_confidence", sa.Float, nullable=True),
        sa.Column("region", sa.Text, nullable=False, server_default="local"),
        sa.Column("lines", JSONB, nullable=False, comment="[{name, a: {x, y}, b: {x, y}}]"),
        sa.Column("segment_s", sa.Float, nullable=False),
        sa.Column("overlap_s", sa.Float, nullable=False),
        sa.Column("batch_frames", sa.Integer, nullable=False),
        sa.Column("target_fps", sa.Float, nullable=True,
                  comment="null: every frame of the file"),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("fps", sa.Float, nullable=True),
        sa.Column("base_at", sa.Float, nullable=True,
                  comment="Unix s given to frame 0: frame i is captured at base_at + i / fps"),
        sa.Column("frames_total", sa.Integer, nullable=True),
        sa.Column("frames_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("segments_total", sa.Integer, nullable=True),
        sa.Column("segments_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("runner_id", sa.Text, nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True,
                  comment="database clock; past it another runner may take the job over"),
        sa.Column("created_by", sa.Text, nullable=True, comment="api key id"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'running', 'done', 'failed')",
                           name="ck_video_jobs_state"),
    )
    op.create_index("ix_video_jobs_site", "video_jobs", ["site", "created_at"])
    op.create_index("ix_video_jobs_open", "video_jobs", ["created_at"],
                    postgresql_where=sa.text("state IN ('pending', 'running')"))
    op.create_table(
        "video_segments",
        sa.Column("job_id", sa.Text, sa.ForeignKey("video_jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("camera_id", sa.Text, nullable=False, comment="its virtual camera"),
        sa.Column("first_frame", sa.Integer, nullable=False,
                  comment="the tracker starts here (overlap)"),
        sa.Column("own_from", sa.Integer, nullable=False,
                  comment="crossings from this frame count"),
        sa.Column("own_to", sa.Integer, nullable=False,
                  comment="... up to this one (exclusive)"),
        sa.Column("batches", sa.Integer, nullable=False),
        sa.Column("frames_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.CheckConstraint("state IN ('pending', 'running', 'done')",
                           name="ck_video_segments_state"),
    )
    op.create_table(
        "video_job_counts",
        sa.Column("job_id", sa.Text, sa.ForeignKey("video_jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("line_name", sa.Text, primary_key=True),
        sa.Column("direction", sa.Text, primary_key=True),
        sa.Column("object_class", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("video_job_counts")
    op.drop_table("video_segments")
    op.drop_table("video_jobs")
