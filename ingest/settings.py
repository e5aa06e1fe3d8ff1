"""Ingest settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from contracts.settings import CommonSettings


class IngestSettings(CommonSettings):
    node_id: str = "ingest-1"
    camera_poll_s: float = Field(default=2.0, gt=0, description="how often cameras are re-read")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    rtsp_timeout_s: float = Field(default=10.0, gt=0)
    jpeg_quality: int = Field(default=80, ge=10, le=100)
    max_width: int = Field(default=640, ge=64, description="frames wider are downscaled")
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    reconnect_healthy_s: float = Field(
        default=30.0, gt=0, description="a session this long resets the reconnect back-off")
    # Camera health (a watchdog outside the decoder).
    stall_s: float = Field(default=5.0, gt=0, description="no frame this long: stalled")
    frozen_s: float = Field(
        default=20.0, gt=0, description="identical pictures or stopped timestamps: frozen")
    # Publishing.
    outbox_batches: int = Field(
        default=8, ge=1, description="batches a camera may queue for the broker; then the "
        "oldest are dropped (and recorded as a gap)")
    publish_window: int = Field(default=4, ge=1, description="unconfirmed publishes per camera")
    confirm_log: Path | None = Field(
        default=None, description="tests only: append a JSON line per batch the broker "
        "confirmed to this file (ingest/confirm_log.py; the fault suite reads it)")
    status_refresh_s: float = Field(default=1.0, gt=0, description="camera stats write period")
    snapshot_s: float = Field(default=10.0, ge=0, description="how often a camera's latest "
                              "frame is stored for the dashboard's line editor; 0: never")
    # Several nodes share the cameras through leases (ingest/leases.py, ingest/lease_store.py).
    ingest_capacity: int = Field(
        default=100, ge=0, description="most cameras this node pulls; cameras no node has room "
        "for are refused with the status `unassigned` instead of degrading them all")
    lease_ttl_s: float = Field(
        default=6.0, ge=0.5, description="a node that dies loses its cameras after this")
    lease_renew_s: float | None = Field(
        default=None, gt=0, description="how often leases are renewed; default lease_ttl_s / 3")
    lease_max_releases: int = Field(
        default=2, ge=1, description="cameras a node above its fair share hands over per round")

    @property
    def lease_renew_every_s(self) -> float:
        return self.lease_renew_s if self.lease_renew_s is not None else self.lease_ttl_s / 3

    def model_post_init(self, context: object, /) -> None:
        # A renewal period this long would let leases lapse between two renewals.
        if self.lease_renew_every_s >= self.lease_ttl_s / 2:
            raise ValueError(f"LEASE_RENEW_S ({self.lease_renew_every_s:g}) must be below half "
                             f"of LEASE_TTL_S ({self.lease_ttl_s:g})")
