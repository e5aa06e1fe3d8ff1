"""The motion detector's background per camera, so a worker taking a camera over primes its
detector with it instead of learning the first frame, objects included, as background.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_backgrounds",
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("image", sa.LargeBinary, nullable=False,
                  comment="JPEG of the motion detector's background at its working size"),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False,
                  comment="capture time of the batch it was learnt up to"),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("camera_backgrounds")
