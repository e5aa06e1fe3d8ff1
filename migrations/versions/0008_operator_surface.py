"""Operator surface: sites and pinned addresses on cameras, API keys, camera snapshots, alert
rules and alerts; fleet-wide outbox events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ROLES = ("admin", "operator", "viewer")
_KINDS = ("count_over", "zone_occupancy", "camera_status", "worker_down", "queue_lag",
          "latency", "dlq_not_empty")
_STATES = ("firing", "acknowledged", "resolved")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.add_column("cameras", sa.Column(
        "site", sa.Text, nullable=False, server_default="default",
        comment="the shop/station it belongs to; API keys are scoped to sites"))
    op.add_column("cameras", sa.Column(
        "pinned_address", sa.Text, nullable=True,
        comment="the IP the url's host resolved to when it was validated; ingest connects "
                "there and never re-resolves (DNS rebinding)"))
    op.create_index("ix_cameras_site", "cameras", ["site", "id"])

    op.alter_column("outbox", "camera_id", nullable=True,
                    comment="null: a fleet-wide event (worker down)")
    op.alter_column("outbox", "region", nullable=True)
    op.alter_column("outbox", "topic", comment="counts | alerts")

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True,
                  comment="public part of the key (cck_<id>_<secret>)"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_sha256", sa.Text, nullable=False,
                  comment="hex digest; the secret is not kept"),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False, comment="a site, or '*' for every site"),
        sa.Column("rate_per_s", sa.Float, nullable=True,
                  comment="requests/s; null: the registry's default"),
        sa.Column("burst", sa.Integer, nullable=True,
                  comment="requests at once; null: the default"),
        sa.Column("created_by", sa.Text, nullable=True,
                  comment="the key that created it; null: the CLI"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("role", _ROLES), name="ck_api_keys_role"),
    )
    op.create_table(
        "camera_snapshots",
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("jpeg", sa.LargeBinary, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Text, nullable=True),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("site", sa.Text, nullable=True, comment="null: fleet-wide (workers, queues)"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("camera_id", sa.Text, sa.ForeignKey("cameras.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
                  comment="kind-specific: window_s, line_id, zone_id, object_class, statuses, "
                          "queue"),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("clear_threshold", sa.Float, nullable=True,
                  comment="hysteresis: resolves at or below it; null: the threshold"),
        sa.Column("for_s", sa.Float, nullable=False, server_default="0",
                  comment="the condition must hold this long before it fires"),
        sa.Column("cooldown_s", sa.Float, nullable=False, server_default="300",
                  comment="after a resolution, the rule does not fire again for this long"),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint(_in("kind", _KINDS), name="ck_alert_rules_kind"),
    )
    op.create_index("ix_alert_rules_site", "alert_rules", ["site"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("rule_id", sa.BigInteger, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("site", sa.Text, nullable=True),
        sa.Column("camera_id", sa.Text, nullable=True),
        sa.Column("subject", sa.Text, nullable=False,
                  comment="what it is about: a camera, worker, queue"),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False, comment="the measurement when it fired"),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Text, nullable=True, comment="api key id"),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint(_in("state", _STATES), name="ck_alerts_state"),
    )
    op.create_index("uq_alerts_open", "alerts", ["rule_id", "subject"], unique=True,
                    postgresql_where=sa.text("state IN ('firing', 'acknowledged')"))
    op.create_index("ix_alerts_site_fired", "alerts", ["site", "fired_at"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("camera_snapshots")
    op.drop_table("api_keys")
    op.execute("DELETE FROM outbox WHERE camera_id IS NULL OR region IS NULL")
    op.alter_column("outbox", "topic", comment=None)
    op.alter_column("outbox", "region", nullable=False)
    op.alter_column("outbox", "camera_id", nullable=False)
    op.drop_index("ix_cameras_site", "cameras")
    op.drop_column("cameras", "pinned_address")
    op.drop_column("cameras", "site")
