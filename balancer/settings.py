"""Balancer settings."""

from __future__ import annotations

from pydantic import Field

from contracts.settings import CommonSettings


class BalancerSettings(CommonSettings):
    balancer_id: str = "balancer-1"
    ingress_prefetch: int = Field(default=64, ge=1, le=10_000)
    heartbeat_timeout_s: float = Field(default=5.0, gt=0, description="silence before down")
    no_worker_poll_s: float = Field(default=0.25, gt=0)
