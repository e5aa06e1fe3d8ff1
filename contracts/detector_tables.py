"""Detector state kept with the camera (migration 0013), declared on contracts.tables' metadata.

camera_backgrounds: the motion detector's learnt background (workers/backgrounds.py), a row of
its own rather than part of camera_progress's checkpoint, which every batch rewrites: the
background is written only every few seconds, and PostgreSQL keeps an unchanged large value
out of the per-batch update.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, LargeBinary, Table, Text, func

from contracts.tables import metadata

camera_backgrounds = Table(
    "camera_backgrounds",
    metadata,
    Column("camera_id", Text, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("image", LargeBinary, nullable=False,
           comment="JPEG of the motion detector's background at its working size"),
    Column("captured_at", DateTime(timezone=True), nullable=False,
           comment="capture time of the batch it was learnt up to"),
    Column("worker_id", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
