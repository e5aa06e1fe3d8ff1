"""Per-event zone history (migration 0012), declared on contracts.tables' metadata.

The per-minute zone_buckets cannot be split at an arbitrary instant: a recorded-video job's
segments overlap, and each zone entry or exit must count for exactly one of them
(videos/zone_merge.py), so every camera's zone events are also kept one by one, as crossing
events are. Written in the apply transaction with the buckets (workers/effects.py); rows go
with their camera.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
)

from contracts.tables import metadata

ZONE_EVENT_KINDS = ("enter", "exit")

zone_events = Table(
    "zone_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
    Column("zone_id", BigInteger, nullable=False),
    Column("zone_version", Integer, nullable=False),
    Column("track_id", BigInteger, nullable=False),
    Column("object_class", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False,
           comment="capture time of the frame where the change settled"),
    Column("dwell_s", Float, nullable=True, comment="exits: seconds inside; null for entries"),
    Column("stream_epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    CheckConstraint(f"kind IN ({', '.join(repr(k) for k in ZONE_EVENT_KINDS)})",
                    name="ck_zone_events_kind"),
    Index("ix_zone_events_camera_time", "camera_id", "occurred_at"),
)
