"""A camera may name the model its frames go through.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cameras", sa.Column("model", sa.Text, nullable=True,
                                       comment="a model name in MODEL_DIR; null = default"))


def downgrade() -> None:
    op.drop_column("cameras", "model")
