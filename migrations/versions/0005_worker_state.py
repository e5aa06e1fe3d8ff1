"""Worker state for the API and dashboard: the heartbeat's load and the active balancer's
verdicts (liveness, circuit breaker) on `workers`, and recent history in `worker_events`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
# Spelled out rather than imported: a migration must not change when contracts/ does.
KINDS = ("worker.up", "worker.suspect", "worker.down",
         "breaker.open", "breaker.half_open", "breaker.closed")


def upgrade() -> None:
    op.add_column("workers", sa.Column(
        "load", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
        comment="the last heartbeat's load, GPU and outcome counters"))
    op.add_column("workers", sa.Column("liveness", sa.Text, nullable=True,
                                       comment="up | suspect | down (balancer's clock)"))
    op.add_column("workers", sa.Column(
        "breaker", JSONB, nullable=True,
        comment="state, failure_rate, calls, failures, opened_at (Unix s), probes"))
    op.add_column("workers", sa.Column("judged_by", sa.Text, nullable=True,
                                       comment="balancer id"))
    op.add_column("workers", sa.Column("judged_at", TZ, nullable=True))
    op.create_check_constraint("ck_workers_liveness", "workers",
                               "liveness IN ('up', 'suspect', 'down')")
    op.create_table(
        "worker_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("boot_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("at", TZ, nullable=False, comment="judging balancer's clock"),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("judged_by", sa.Text, nullable=False, comment="balancer id"),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})",
                           name="ck_worker_events_kind"),
    )
    op.create_index("ix_worker_events_worker_at", "worker_events", ["worker_id", "at"])
    op.create_index("ix_worker_events_at", "worker_events", ["at"])


def downgrade() -> None:
    op.drop_table("worker_events")
    op.drop_constraint("ck_workers_liveness", "workers")
    for column in ("judged_at", "judged_by", "breaker", "liveness", "load"):
        op.drop_column("workers", column)
