"""Ingest nodes, camera leases (fencing tokens), camera status and its history; gaps of time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_STATUSES = ("connecting", "live", "stalled", "frozen", "auth_failed", "unreachable",
             "backpressure", "unassigned", "disabled")


def upgrade() -> None:
    op.alter_column("coverage_gaps", "seq_from", nullable=True)
    op.alter_column("coverage_gaps", "seq_to", nullable=True)
    op.create_table(
        "ingest_nodes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("boot_id", sa.Text, nullable=False,
                  comment="changes when the process restarts"),
        sa.Column("capacity", sa.Integer, nullable=False,
                  comment="most cameras this node will pull"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False,
                  comment="alive until then (database clock); renewed with its leases"),
        sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "camera_leases",
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("node_id", sa.Text, nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False,
                  comment="fencing token: rises on every acquisition, never reused for a camera"),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False,
                  comment="database clock"),
        sa.Index("ix_camera_leases_node", "node_id"),
    )
    op.create_table(
        "camera_status",
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Text, nullable=True, comment="the ingest node that judged it"),
        sa.Column("last_frame_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stats", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
                  comment="fps, decoded, sampled, dropped, reconnects (ingest's counters)"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in _STATUSES)})",
                           name="ck_camera_status_status"),
    )
    op.create_table(
        "camera_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, nullable=False,
                  comment="kept after the camera is deleted"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("previous", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Text, nullable=True),
        sa.Index("ix_camera_events_camera_at", "camera_id", "at"),
    )


def downgrade() -> None:
    op.drop_table("camera_events")
    op.drop_table("camera_status")
    op.drop_table("camera_leases")
    op.drop_table("ingest_nodes")
    op.execute("DELETE FROM coverage_gaps WHERE seq_from IS NULL OR seq_to IS NULL")
    op.alter_column("coverage_gaps", "seq_to", nullable=False)
    op.alter_column("coverage_gaps", "seq_from", nullable=False)
