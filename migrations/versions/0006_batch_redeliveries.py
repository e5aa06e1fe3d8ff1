"""Redeliveries per batch, so a batch that crashes every worker it reaches is given up on.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_redeliveries",
        sa.Column("camera_id", sa.Text, nullable=False),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("camera_id", "stream_epoch", "seq"),
        sa.Index("ix_batch_redeliveries_last_at", "last_at"),
    )


def downgrade() -> None:
    op.drop_table("batch_redeliveries")
