"""Zones: versioned polygons, per-minute occupancy buckets, current occupancy in progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "zones",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("polygon", JSONB, nullable=False, comment="[{x, y}, ...] relative 0..1"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("camera_id", "name", "version", name="uq_zones_version"),
    )
    op.create_table(
        "zone_buckets",
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("zone_id", sa.BigInteger, primary_key=True),
        sa.Column("zone_version", sa.Integer, primary_key=True),
        sa.Column("object_class", sa.Text, primary_key=True),
        sa.Column("bucket_start", TZ, primary_key=True),
        sa.Column("entries", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("exits", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("peak_occupancy", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dwell_total_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("dwell_count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_zone_buckets_camera_time", "zone_buckets", ["camera_id", "bucket_start"])
    op.add_column(
        "camera_progress",
        sa.Column("occupancy", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
                  comment="'zone_id:class' -> objects inside now"),
    )


def downgrade() -> None:
    op.drop_column("camera_progress", "occupancy")
    op.drop_table("zone_buckets")
    op.drop_table("zones")
