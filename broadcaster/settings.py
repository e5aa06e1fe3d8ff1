"""Broadcaster settings."""

from __future__ import annotations

from pydantic import Field

from contracts.settings import CommonSettings


class BroadcasterSettings(CommonSettings):
    ws_host: str = "127.0.0.1"
    ws_port: int = Field(default=8765, ge=0, le=65535)
    client_queue_size: int = Field(default=256, ge=1)
    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    poll_interval_s: float = Field(default=1.0, gt=0, description="fallback when NOTIFY is lost")
    relay_batch: int = Field(default=500, ge=1)
