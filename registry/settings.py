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
    max_body_bytes: int = Field(default=256 * 1024, ge=1024,
                                description="larger request bodies are refused with 413")
    rate_limit_per_s: float = Field(default=20.0, gt=0,
                                    description="per API key, unless the key sets its own")
    rate_limit_burst: int = Field(default=60, ge=1)
    api_key_cache_s: float = Field(default=5.0, ge=0,
                                   description="a revoked key is refused within this time")
    media_dir: Path | None = Field(
        default=None, description="file:// camera urls must point under it; unset: refused")

    @field_validator("media_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # MEDIA_DIR= would otherwise become Path(""), the working directory: everything in it.
        return None if value == "" else value
