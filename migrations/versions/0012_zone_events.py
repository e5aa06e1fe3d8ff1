"""Zones on recorded-video jobs: every camera's zone events one by one, a job's zones and its
merged zone counts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zone_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("zone_id", sa.BigInteger, nullable=False),
        sa.Column("zone_version", sa.Integer, nullable=False),
        sa.Column("track_id", sa.BigInteger, nullable=False),
        sa.Column("object_class", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False,
                  comment="capture time of the frame where the change settled"),
        sa.Column("dwell_s", sa.Float, nullable=True,
                  comment="exits: seconds inside; null for entries"),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind IN ('enter', 'exit')", name="ck_zone_events_kind"),
    )
    op.create_index("ix_zone_events_camera_time", "zone_events", ["camera_id", "occurred_at"])
    op.add_column("video_jobs", sa.Column(
        "zones", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"),
        comment="[{name, points: [{x, y}, ...]}]"))
    op.create_table(
        "video_job_zone_counts",
        sa.Column("job_id", sa.Text, sa.ForeignKey("video_jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("zone_name", sa.Text, primary_key=True),
        sa.Column("object_class", sa.Text, primary_key=True),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("exits", sa.BigInteger, nullable=False),
        sa.Column("peak_occupancy", sa.Integer, nullable=False),
        sa.Column("dwell_total_s", sa.Float, nullable=False),
        sa.Column("dwell_count", sa.BigInteger, nullable=False,
                  comment="exits whose dwell is summed"),
    )


def downgrade() -> None:
    op.drop_table("video_job_zone_counts")
    op.drop_column("video_jobs", "zones")
    op.drop_index("ix_zone_events_camera_time", table_name="zone_events")
    op.drop_table("zone_events")
