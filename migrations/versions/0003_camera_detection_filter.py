"""Per-camera detection filter: the classes counted and a minimum confidence.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cameras", sa.Column("object_classes", JSONB, nullable=True,
                                       comment="classes counted; null = all"))
    op.add_column("cameras", sa.Column("min_confidence", sa.Float, nullable=True,
                                       comment="null = the worker's threshold"))


def downgrade() -> None:
    op.drop_column("cameras", "min_confidence")
    op.drop_column("cameras", "object_classes")
