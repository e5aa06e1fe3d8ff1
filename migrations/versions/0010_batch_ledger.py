"""Batch ledger: an opt-in record of every batch a worker applied (BATCH_LEDGER=true).

camera_progress keeps only the last seq, so a batch applied twice leaves no trace there; the
fault suite (tests/faults) needs to see every apply. The worker writes a row in the SAME
transaction as the apply, so a SIGKILL between commit and ack cannot make the ledger and the
counts disagree. No unique key on purpose: a double apply shows up as two rows. Off by default
(production does not pay a row per batch).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("camera_id", sa.Text, nullable=False),
        sa.Column("stream_epoch", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("crossings", sa.Integer, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Index("ix_batch_ledger_batch", "camera_id", "stream_epoch", "seq"),
    )


def downgrade() -> None:
    op.drop_table("batch_ledger")
