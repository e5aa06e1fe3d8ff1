"""Worker settings, from the environment (the names operators of AI worker fleets expect)."""

from __future__ import annotations

import secrets

from pydantic import Field, field_validator

from contracts.ids import check_slug
from contracts.settings import CommonSettings


def _new_worker_id() -> str:
    return f"w-{secrets.token_hex(4)}"


class WorkerSettings(CommonSettings):
    worker_id: str = Field(default_factory=_new_worker_id)
    worker_type: str = "motion"
    prefetch_count: int = Field(default=4, ge=1, le=1000)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    job_timeout_s: float = Field(default=30.0, gt=0)
    retry_delay_s: float = Field(default=1.0, ge=0, description="before redelivering on failure")

    @field_validator("worker_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        return check_slug(value, "WORKER_ID")
