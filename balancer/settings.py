"""Balancer settings: liveness, circuit breaker, policy and failover, from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from balancer.breaker import BreakerConfig
from balancer.liveness import LivenessConfig
from balancer.policy import HybridConfig, PolicyName
from contracts.settings import CommonSettings


class BalancerSettings(CommonSettings):
    balancer_id: str = "balancer-1"
    balancer_policy: PolicyName = Field(
        default="hybrid", description="hybrid; round_robin and least_loaded for comparison")
    ingress_prefetch: int = Field(default=64, ge=1, le=10_000)
    liveness_mode: Literal["expiry", "phi"] = Field(
        default="phi", description="phi: accrual detector; expiry: fixed silences")
    heartbeat_timeout_s: float = Field(
        default=5.0, gt=0, description="expiry mode: silence before down (suspect at half)")
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="phi mode: the interval expected before any is measured "
        "(a beat that names its own interval wins)")
    heartbeat_acceptable_pause_s: float = Field(
        default=3.0, ge=0, description="phi mode: a silence this much longer than the usual "
        "interval is still no suspicion (GC pauses, network jitter)")
    heartbeat_min_std_s: float = Field(default=0.1, gt=0)
    liveness_poll_s: float = Field(default=0.1, gt=0, description="how often the clock is "
                                   "applied to liveness and breakers while no batch arrives")
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_min_volume: int = Field(default=10, ge=1)
    breaker_window: int = Field(default=20, ge=1, description="last N outcomes")
    breaker_window_s: float | None = Field(default=60.0, gt=0,
                                           description="and only those of the last N seconds")
    breaker_slow_s: float = Field(default=5.0, gt=0,
                                  description="a batch processed slower counts as a failure")
    breaker_cool_down_s: float = Field(default=10.0, gt=0)
    breaker_probes: int = Field(default=3, ge=1)
    default_capacity_per_s: float = Field(
        default=10.0, gt=0, description="assumed for a worker that has not measured its own")
    moves_per_interval: int = Field(
        default=20, ge=0, description="optional camera moves per second (rebalancing and "
        "probes); failovers are never limited")
    # 12 s: a move's effect on the two workers shows only after a few heartbeats (1 s) and
    # queue polls, while the new worker reloads the tracker and the old one hands back the
    # fenced batches it still had queued; a batch's default deadline is 5 s. Twelve seconds
    # lets every consequence of a move be measured, twice over, before the same camera may
    # move again, and caps the churn at one optional move per camera per 12 s. A failover
    # (holder down, open or incapable) never waits for it.
    min_dwell_s: float = Field(
        default=12.0, ge=0, description="a camera stays this long with a worker before an "
        "optional move (overload or rebalancing); failovers and breaker probes are exempt")
    assignments_reload_idle_s: float = Field(
        default=1.0, ge=0, description="re-read every assignment before routing after this "
        "long without a batch (a standby taking over has a stale view)")
    dead_queue_watch_s: float = Field(
        default=120.0, ge=0, description="keep draining a dead worker's queue this long: "
        "batches it held unacked come back when the broker closes its connection")
    dead_queue_recheck_s: float = Field(default=2.0, gt=0)
    no_worker_poll_s: float = Field(default=0.25, gt=0)
    standby_probe_s: float = Field(
        default=1.0, gt=0, description="how often a balancer not yet given a batch asks "
        "whether it is frames.ingress's only consumer, and so the active one")
    worker_state_refresh_s: float = Field(
        default=5.0, gt=0, description="rewrite every worker's liveness and breaker columns "
        "this often (besides at transitions): failure rates move without transitions")
    worker_events_retention_s: float = Field(default=7 * 86400.0, gt=0)
    worker_events_prune_s: float = Field(default=60.0, gt=0,
                                         description="delete expired worker_events this often")
    worker_state_queue_size: int = Field(
        default=1000, ge=1, description="records waiting for the writer; more are dropped")

    @model_validator(mode="after")
    def _cores_accept(self) -> BalancerSettings:
        # Build the cores' configurations once here, so a bad combination fails at start-up.
        self.liveness()
        self.breaker()
        self.hybrid()
        return self

    def liveness(self) -> LivenessConfig:
        return LivenessConfig(
            mode=self.liveness_mode, timeout_s=self.heartbeat_timeout_s,
            suspect_after_s=self.heartbeat_timeout_s / 2,
            acceptable_pause_s=self.heartbeat_acceptable_pause_s,
            first_interval_s=self.heartbeat_interval_s, min_std_s=self.heartbeat_min_std_s,
        )

    def breaker(self) -> BreakerConfig:
        return BreakerConfig(
            failure_rate=self.breaker_failure_rate, min_volume=self.breaker_min_volume,
            window=self.breaker_window, window_s=self.breaker_window_s,
            slow_s=self.breaker_slow_s, cool_down_s=self.breaker_cool_down_s,
            probes=self.breaker_probes,
        )

    def hybrid(self) -> HybridConfig:
        return HybridConfig(delay_s=self.no_worker_poll_s,
                            moves_per_interval=self.moves_per_interval,
                            min_dwell_s=self.min_dwell_s)
