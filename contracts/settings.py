"""Settings shared by every role. Each role subclasses this; instances are built once in
`__main__`/the CLI and passed down, never read from a global."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5682/"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5442/camcount"
    region: str = "local"
    log_level: str = "INFO"
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(default=0, ge=0, le=65535, description="health and metrics; 0 = any")
    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, description="after SIGTERM, how long the shutdown may take before "
        "what still hangs is abandoned (exit code 124); infra/runner.py")
