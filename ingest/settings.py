"""Ingest settings."""

from __future__ import annotations

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
