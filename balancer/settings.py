"""Balancer settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from balancer.liveness import LivenessConfig
from contracts.settings import CommonSettings


class BalancerSettings(CommonSettings):
    balancer_id: str = "balancer-1"
    ingress_prefetch: int = Field(default=64, ge=1, le=10_000)
    heartbeat_timeout_s: float = Field(default=5.0, gt=0, description="silence before down")
    liveness_mode: Literal["expiry", "phi"] = Field(
        default="expiry", description="expiry: suspect after half the timeout; phi: accrual")
    no_worker_poll_s: float = Field(default=0.25, gt=0)

    def liveness(self) -> LivenessConfig:
        return LivenessConfig(mode=self.liveness_mode, timeout_s=self.heartbeat_timeout_s,
                              suspect_after_s=self.heartbeat_timeout_s / 2)
