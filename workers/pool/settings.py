"""Pool manager settings, from the environment. The manager's environment is also what its
workers inherit (RABBITMQ_URL, DATABASE_URL, DETECTOR, ...): it defines the default type."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from contracts.ids import check_slug
from contracts.settings import CommonSettings


def _host_pool_id() -> str:
    """Worker ids are `<POOL_ID>-<type>-<n>`: the host name keeps two hosts' pools apart."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().split(".")[0].lower())
    return slug.strip("-_")[:32] or "pool"


class PoolSettings(CommonSettings):
    pool_id: str = Field(default_factory=_host_pool_id,
                         description="worker ids are <POOL_ID>-<type>-<n>; default: host name")
    num_workers: int = Field(default=1, ge=0, le=1024,
                             description="workers of the default type started with the pool")
    max_workers: int = Field(default=64, ge=1, le=1024,
                             description="workers the pool keeps at most, of all types")
    worker_type: str = Field(default="motion",
                             description="the default type's name (and its workers' capability)")
    worker_types_file: Path | None = Field(default=None, description="more types: YAML or JSON")
    pool_http_host: str = "127.0.0.1"
    pool_http_port: int = Field(default=8090, ge=0, le=65535, description="API, health, metrics")
    start_stagger_s: float = Field(default=1.0, ge=0, description="between two spawns")
    restart_backoff_initial_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=60.0, gt=0)
    restart_backoff_multiplier: float = Field(default=2.0, ge=1)
    restart_backoff_jitter: float = Field(default=0.2, ge=0, le=1,
                                          description="± this fraction of each delay")
    restart_reset_after_s: float = Field(
        default=60.0, ge=0, description="up this long, a worker's next crash counts as a first"
    )
    restart_limit: int = Field(default=0, ge=0,
                               description="crashes in a row before giving up; 0 = never")
    drain_timeout_s: float = Field(
        default=40.0, gt=0,
        description="after SIGTERM, how long workers get to finish in-flight batches before "
        "SIGKILL; keep it above the workers' JOB_TIMEOUT_S",
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="workers' /health polls")
    worker_ops_port_base: int = Field(
        default=0, ge=0, le=65535,
        description="workers' OPS_PORT: BASE, BASE+1, ...; 0 = a free port per process",
    )

    @field_validator("pool_id", "worker_type")
    @classmethod
    def _slug(cls, value: str, info: ValidationInfo) -> str:
        return check_slug(value, (info.field_name or "").upper())

    @model_validator(mode="after")
    def _backoff_order(self) -> PoolSettings:
        if self.restart_backoff_max_s < self.restart_backoff_initial_s:
            raise ValueError("RESTART_BACKOFF_MAX_S must not be below RESTART_BACKOFF_INITIAL_S")
        if self.num_workers > self.max_workers:
            raise ValueError("NUM_WORKERS must not exceed MAX_WORKERS")
        return self
