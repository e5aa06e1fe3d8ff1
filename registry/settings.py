"""Registry settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from contracts.settings import CommonSettings

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"


class RegistrySettings(CommonSettings):
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    broadcaster_public_url: str = "ws://127.0.0.1:8765/ws"
    worker_down_after_s: float = Field(default=5.0, gt=0)
    dashboard_dir: Path = DASHBOARD_DIR
    max_page_size: int = 500
    media_dir: Path | None = Field(
        default=None, description="file:// camera urls must point under it; unset: refused")

    @field_validator("media_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # MEDIA_DIR= would otherwise become Path(""), the working directory: everything in it.
        return None if value == "" else value
