"""Initial schema: cameras, lines, workers, assignments, progress, events, buckets, gaps, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _camera_fk() -> sa.ForeignKey:
    return sa.ForeignKey("cameras.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, comment="secret: only ingest reads it unmasked"),
        sa.Column("region", sa.Text, nullable=False, server_default="local"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="1"),
        sa.Column("target_fps", sa.Float, nullable=False, server_default="5"),
        sa.Column("batch_frames", sa.Integer, nullable=False, server_default="5"),
        sa.Column("batch_ms", sa.Integer, nullable=False, server_default="1000"),
        sa.Column("deadline_s", sa.Float, nullable=False, server_default="10"),
        sa.Column("capability", sa.Text, nullable=False, server_default="motion"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "counting_lines",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, _camera_fk(), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("geometry", JSONB, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("camera_id", "name", "version", name="uq_counting_lines_version"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("boot_id", sa.Text, nullable=False),
        sa.Column("worker_type", sa.Text, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("capabilities", JSONB, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, comment="up | suspect | down | stopping"),
        sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("latency_ema_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("last_heartbeat_at", TZ, nullable=False, comment="receiver's clock"),
    )
    op.create_table(
        "assignments",
        sa.Column("camera_id", sa.Text, _camera_fk(), primary_key=True),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column(
            "epoch", sa.BigInteger, nullable=False,
            comment="rises on every reassignment (fencing)",
        ),
        sa.Column("assigned_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "camera_progress",
        sa.Column("camera_id", sa.Text, _camera_fk(), primary_key=True),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("tracker_checkpoint", JSONB, nullable=False),
        sa.Column("totals", JSONB, nullable=False),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "crossing_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, _camera_fk(), nullable=False),
        sa.Column("line_id", sa.BigInteger, nullable=False),
        sa.Column("line_version", sa.Integer, nullable=False),
        sa.Column("track_id", sa.BigInteger, nullable=False),
        sa.Column("object_class", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_crossing_events_camera_time", "crossing_events", ["camera_id", "occurred_at"]
    )
    op.create_table(
        "count_buckets",
        sa.Column("camera_id", sa.Text, _camera_fk(), primary_key=True),
        sa.Column("line_id", sa.BigInteger, primary_key=True),
        sa.Column("line_version", sa.Integer, primary_key=True),
        sa.Column("object_class", sa.Text, primary_key=True),
        sa.Column("direction", sa.Text, primary_key=True),
        sa.Column("bucket_start", TZ, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_count_buckets_camera_time", "count_buckets", ["camera_id", "bucket_start"])
    op.create_table(
        "coverage_gaps",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, _camera_fk(), nullable=False),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("seq_from", sa.BigInteger, nullable=False),
        sa.Column("seq_to", sa.BigInteger, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column(
            "reason", sa.Text, nullable=False,
            comment="stale | shed | dead_lettered | missing | ...",
        ),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("recorded_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_unique_constraint(
        "uq_coverage_gaps_start", "coverage_gaps", ["camera_id", "stream_epoch", "seq_from"]
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", TZ, nullable=True),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )


def downgrade() -> None:
    for table in (
        "outbox", "coverage_gaps", "count_buckets", "crossing_events", "camera_progress",
        "assignments", "workers", "counting_lines", "cameras",
    ):
        op.drop_table(table)
