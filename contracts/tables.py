"""The PostgreSQL schema as SQLAlchemy Core tables (declarations only, no I/O).

migrations/ creates exactly this; tests/integration/test_migrations.py checks they agree.
"""

from __future__ import annotations

from typing import get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from contracts.access import DEFAULT_SITE, ROLES
from contracts.alerting import ALERT_KINDS, ALERT_STATES
from contracts.camera_status import CAMERA_STATUSES
from contracts.messages import WorkerEventKind

metadata = MetaData()

# The apply transaction NOTIFYs this channel so the outbox relay wakes at once.
OUTBOX_CHANNEL = "camcount_outbox"

cameras = Table(
    "cameras",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False, comment="secret: only ingest reads it unmasked"),
    Column("region", Text, nullable=False, server_default="local"),
    Column("priority", Integer, nullable=False, server_default="1"),
    Column("target_fps", Float, nullable=False, server_default="5"),
    Column("batch_frames", Integer, nullable=False, server_default="5"),
    Column("batch_ms", Integer, nullable=False, server_default="1000"),
    Column("deadline_s", Float, nullable=False, server_default="10"),
    Column("capability", Text, nullable=False, server_default="motion"),
    Column("object_classes", JSONB, nullable=True, comment="classes counted; null = all"),
    Column("min_confidence", Float, nullable=True, comment="null = the worker's threshold"),
    Column("model", Text, nullable=True, comment="a model name in MODEL_DIR; null = default"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("stream_epoch", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("site", Text, nullable=False, server_default=DEFAULT_SITE,
           comment="the shop/station it belongs to; API keys are scoped to sites"),
    Column("pinned_address", Text, nullable=True,
           comment="the IP the url's host resolved to when it was validated; ingest connects "
                   "there and never re-resolves (DNS rebinding)"),
    Index("ix_cameras_site", "site", "id"),
)

counting_lines = Table(
    "counting_lines",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("geometry", JSONB, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("camera_id", "name", "version", name="uq_counting_lines_version"),
)

zones = Table(
    "zones",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("polygon", JSONB, nullable=False, comment="[{x, y}, ...] relative 0..1"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("camera_id", "name", "version", name="uq_zones_version"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("boot_id", Text, nullable=False),
    Column("worker_type", Text, nullable=False),
    Column("region", Text, nullable=False),
    Column("capabilities", JSONB, nullable=False),
    Column("queue", Text, nullable=False),
    Column("status", Text, nullable=False, comment="up | suspect | down | stopping"),
    Column("in_flight", Integer, nullable=False, server_default="0"),
    Column("processed", BigInteger, nullable=False, server_default="0"),
    Column("latency_ema_s", Float, nullable=False, server_default="0"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_heartbeat_at", DateTime(timezone=True), nullable=False,
           comment="receiver's clock"),
    Column("load", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
           comment="the last heartbeat's load, GPU and outcome counters"),
    # The active balancer's verdicts; null until one has judged the worker.
    Column("liveness", Text, nullable=True, comment="up | suspect | down (balancer's clock)"),
    Column("breaker", JSONB, nullable=True,
           comment="state, failure_rate, calls, failures, opened_at (Unix s), probes"),
    Column("judged_by", Text, nullable=True, comment="balancer id"),
    Column("judged_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("liveness IN ('up', 'suspect', 'down')", name="ck_workers_liveness"),
)

WORKER_EVENT_KINDS: tuple[str, ...] = get_args(WorkerEventKind)

worker_events = Table(
    "worker_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("worker_id", Text, nullable=False),
    Column("boot_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False, comment="judging balancer's clock"),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("judged_by", Text, nullable=False, comment="balancer id"),
    CheckConstraint(f"kind IN ({', '.join(repr(k) for k in WORKER_EVENT_KINDS)})",
                    name="ck_worker_events_kind"),
    Index("ix_worker_events_worker_at", "worker_id", "at"),
    # Retention deletes by age alone.
    Index("ix_worker_events_at", "at"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("worker_id", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False, comment="rises on every reassignment (fencing)"),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

camera_progress = Table(
    "camera_progress",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("stream_epoch", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("tracker_checkpoint", JSONB, nullable=False),
    Column("totals", JSONB, nullable=False),
    Column("occupancy", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
           comment="'zone_id:class' -> objects inside now"),
    Column("worker_id", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

crossing_events = Table(
    "crossing_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("line_id", BigInteger, nullable=False),
    Column("line_version", Integer, nullable=False),
    Column("track_id", BigInteger, nullable=False),
    Column("object_class", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("stream_epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_crossing_events_camera_time", "camera_id", "occurred_at"),
)

count_buckets = Table(
    "count_buckets",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("line_id", BigInteger, primary_key=True),
    Column("line_version", Integer, primary_key=True),
    Column("object_class", Text, primary_key=True),
    Column("direction", Text, primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("count", BigInteger, nullable=False),
    # Covering (migration 0009): a camera's month of minutes is read from the index alone.
    Index("ix_count_buckets_camera_time", "camera_id", "bucket_start",
          postgresql_include=["line_id", "object_class", "direction", "count"]),
)

zone_buckets = Table(
    "zone_buckets",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("zone_id", BigInteger, primary_key=True),
    Column("zone_version", Integer, primary_key=True),
    Column("object_class", Text, primary_key=True),
    Column("bucket_start", DateTime(timezone=True), primary_key=True),
    Column("entries", BigInteger, nullable=False, server_default="0"),
    Column("exits", BigInteger, nullable=False, server_default="0"),
    Column("peak_occupancy", Integer, nullable=False, server_default="0"),
    Column("dwell_total_s", Float, nullable=False, server_default="0"),
    Column("dwell_count", BigInteger, nullable=False, server_default="0"),
    Index("ix_zone_buckets_camera_time", "camera_id", "bucket_start",
          postgresql_include=["zone_id", "object_class", "entries", "exits", "peak_occupancy",
                              "dwell_total_s", "dwell_count"]),
)

# Written only when the broker redelivers a batch (a worker died or drained holding it): a
# crash-looping batch has no delivery count on a classic queue, so the workers keep one here.
batch_redeliveries = Table(
    "batch_redeliveries",
    metadata,
    Column("camera_id", Text, primary_key=True),
    Column("stream_epoch", BigInteger, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("deliveries", Integer, nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_batch_redeliveries_last_at", "last_at"),
)

coverage_gaps = Table(
    "coverage_gaps",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("stream_epoch", BigInteger, nullable=False),
    # Null for a span of time with no batches at all (ingest: camera down, frames dropped).
    Column("seq_from", BigInteger, nullable=True),
    Column("seq_to", BigInteger, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=False, comment="stale | shed | dead_lettered | missing | ..."),
    Column("detail", Text, nullable=False, server_default=""),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One gap per span start: recording a gap is idempotent (ON CONFLICT DO NOTHING).
    UniqueConstraint("camera_id", "stream_epoch", "seq_from", name="uq_coverage_gaps_start"),
)

# Opt-in (BATCH_LEDGER=true, migration 0010): one row per applied batch, written in the apply
# transaction, for the fault suite. No unique key: a batch applied twice must show as two rows.
batch_ledger = Table(
    "batch_ledger",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, nullable=False),
    Column("stream_epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("worker_id", Text, nullable=False),
    Column("crossings", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_batch_ledger_batch", "camera_id", "stream_epoch", "seq"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, nullable=True, comment="null: a fleet-wide event (worker down)"),
    Column("region", Text, nullable=True),
    Column("topic", Text, nullable=False, comment="counts | alerts"),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)


# --- ingest: nodes, camera leases, camera status (migration 0007) ---

ingest_nodes = Table(
    "ingest_nodes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("boot_id", Text, nullable=False, comment="changes when the process restarts"),
    Column("capacity", Integer, nullable=False, comment="most cameras this node will pull"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False,
           comment="alive until then (database clock); renewed with its leases"),
    Column("draining", Boolean, nullable=False, server_default=text("false")),
)

camera_leases = Table(
    "camera_leases",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("node_id", Text, nullable=False),
    Column("token", BigInteger, nullable=False,
           comment="fencing token: rises on every acquisition, never reused for a camera"),
    Column("acquired_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False, comment="database clock"),
    Index("ix_camera_leases_node", "node_id"),
)

camera_status = Table(
    "camera_status",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("node_id", Text, nullable=True, comment="the ingest node that judged it"),
    Column("last_frame_at", DateTime(timezone=True), nullable=True),
    Column("stats", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
           comment="fps, decoded, sampled, dropped, reconnects (ingest's counters)"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in CAMERA_STATUSES)})",
                    name="ck_camera_status_status"),
)

camera_events = Table(
    "camera_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, nullable=False, comment="kept after the camera is deleted"),
    Column("status", Text, nullable=False),
    Column("previous", Text, nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("node_id", Text, nullable=True),
    Index("ix_camera_events_camera_at", "camera_id", "at"),
)


# --- operator surface: API keys, snapshots, alert rules and alerts (migration 0008) ---

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True, comment="public part of the key (cck_<id>_<secret>)"),
    Column("name", Text, nullable=False),
    Column("secret_sha256", Text, nullable=False, comment="hex digest; the secret is not kept"),
    Column("role", Text, nullable=False),
    Column("site", Text, nullable=False, comment="a site, or '*' for every site"),
    Column("rate_per_s", Float, nullable=True, comment="requests/s; null: the registry's default"),
    Column("burst", Integer, nullable=True, comment="requests at once; null: the default"),
    Column("created_by", Text, nullable=True, comment="the key that created it; null: the CLI"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="ck_api_keys_role"),
)

camera_snapshots = Table(
    "camera_snapshots",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("jpeg", LargeBinary, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("captured_at", DateTime(timezone=True), nullable=False),
    Column("node_id", Text, nullable=True),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("site", Text, nullable=True, comment="null: fleet-wide (workers, queues)"),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=True),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
           comment="kind-specific: window_s, line_id, zone_id, object_class, statuses, queue"),
    Column("threshold", Float, nullable=False),
    Column("clear_threshold", Float, nullable=True,
           comment="hysteresis: resolves at or below it; null: the threshold"),
    Column("for_s", Float, nullable=False, server_default="0",
           comment="the condition must hold this long before it fires"),
    Column("cooldown_s", Float, nullable=False, server_default="300",
           comment="after a resolution, the rule does not fire again for this long"),
    Column("webhook_url", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"kind IN ({', '.join(repr(k) for k in ALERT_KINDS)})",
                    name="ck_alert_rules_kind"),
    Index("ix_alert_rules_site", "site"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("rule_id", BigInteger, ForeignKey("alert_rules.id", ondelete="CASCADE"),
           nullable=False),
    Column("site", Text, nullable=True),
    Column("camera_id", Text, nullable=True),
    Column("subject", Text, nullable=False, comment="what it is about: a camera, worker, queue"),
    Column("state", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=False, comment="the measurement when it fired"),
    Column("threshold", Float, nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_by", Text, nullable=True, comment="api key id"),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in ALERT_STATES)})",
                    name="ck_alerts_state"),
    # One open alert per rule and subject: firing twice is idempotent.
    Index("uq_alerts_open", "rule_id", "subject", unique=True,
          postgresql_where=text("state IN ('firing', 'acknowledged')")),
    Index("ix_alerts_site_fired", "site", "fired_at"),
)

# Recorded video jobs (migration 0011) and detector state (0013) live in their own modules, on
# this metadata; imported here so that whoever reads `metadata` (Alembic, the schema test)
# sees them.
from contracts import detector_tables as _detector_tables  # noqa: E402, F401
from contracts import video_tables as _video_tables  # noqa: E402, F401
