"""Choosing a worker for a camera's batch. Pure (the clock is passed in) and table-tested.

The hybrid policy, in order:
1. Filter: capable, region allowed (a strict camera never leaves its region), live (a suspect
   keeps the cameras it has but gets no new ones), breaker closed (half-open only as a probe,
   and only with low or normal batches: a critical batch is never anyone's experiment).
2. Affinity: a camera stays with the worker holding its tracker while that worker is usable.
   It moves only when the holder is overloaded or far more utilised than the least utilised
   worker, the best alternative wins by a margin, and the move budget (K per interval) allows:
   a joining worker takes cameras gradually instead of a thundering herd of tracker reloads.
   Hysteresis against ping-pong (a soak run's backlog after a failover sent cameras back and
   forth every few seconds, each move fencing the old worker's queued batches and resetting
   the tracker, which fed the backlog): such an optional move also needs the camera to have
   stayed `min_dwell_s` with its holder, and a target that is not saturated itself once the
   camera joins. Leaving a holder that is down, open or incapable is never held back.
3. Otherwise place by score (`HybridPolicy.score`): expected time to result, committed
   utilisation, the queueing that load will cause, and a penalty for another region.
4. Admission: high and critical are always routed (worker queues are priority queues, so they
   jump the backlog). Normal is shed when its expected time to result would take more than 0.4
   of the time left before its deadline, low past 0.2; low within normal's limit is delayed
   first. Every shed becomes a recorded gap upstream; the policy only says why.

`round_robin` and `least_loaded` are the textbook baselines (per batch, no affinity, no
shedding, liveness and capability only), kept for the simulation's comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from balancer.breaker import BreakerState
from contracts.broker import Priority

PolicyName = Literal["hybrid", "round_robin", "least_loaded"]
POLICY_NAMES: tuple[PolicyName, ...] = ("hybrid", "round_robin", "least_loaded")
RouteReason = Literal["affinity", "placed", "moved", "probe"]


@dataclass(frozen=True)
class Assignment:
    worker_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What the policy knows of one live (up or suspect) worker. `backlog` is the balancer's
    estimate of the batches queued or in flight there now: the last measured depth (broker
    queue plus in flight), plus what it routed since, minus what the capacity drained since."""

    worker_id: str
    region: str
    capabilities: frozenset[str]
    capacity_per_s: float  # batches per second it sustains
    backlog: int = 0
    latency_ema_s: float = 0.0  # its recent processing time per batch
    # Batch rate of the cameras it holds, per priority (low, normal, high, critical).
    held_per_s: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    liveness: Literal["up", "suspect"] = "up"
    breaker: BreakerState = "closed"
    models: frozenset[str] = frozenset()  # named models it serves (MODEL_DIR)
    probe_slots: int = 0  # admissions left while half-open

    @property
    def service_s(self) -> float:
        """Processing time per batch; the latency EMA knows it better than the nominal
        capacity when the GPU crawls."""
        return max(1 / max(self.capacity_per_s, 1e-9), self.latency_ema_s)

    @property
    def utilisation(self) -> float:
        return sum(self.held_per_s) / max(self.capacity_per_s, 1e-9)

    def expected_s(self, priority: Priority = Priority.CRITICAL) -> float:
        """Time until a batch of this priority routed now would be done: the backlog ahead,
        drained by the capacity that the held cameras of higher priority leave over (their
        batches overtake it in the worker's priority queue), then its own processing."""
        capacity = max(self.capacity_per_s, 1e-9)
        left = max(capacity - sum(self.held_per_s[priority + 1:]), 0.05 * capacity)
        return self.backlog / left + self.service_s


@dataclass(frozen=True, slots=True)
class BatchRequest:
    camera_id: str
    capability: str
    region: str
    priority: Priority
    time_left_s: float  # until the batch's deadline
    current: str | None = None  # the worker holding the camera's tracker
    region_strict: bool = False
    rate_per_s: float = 1.0  # the camera's batch rate, to project utilisation
    model: str | None = None  # the camera's named model; None: the workers' default
    held_since_mono: float = -math.inf  # when `current` took the camera; -inf: long ago


@dataclass(frozen=True, slots=True)
class Route:
    worker_id: str
    reason: RouteReason


@dataclass(frozen=True, slots=True)
class Delay:
    retry_after_s: float
    reason: Literal["overload", "no_worker"]


@dataclass(frozen=True, slots=True)
class Shed:
    reason: Literal["shed"] = "shed"


Decision = Route | Delay | Shed


class Policy(Protocol):
    name: PolicyName

    def decide(
        self, request: BatchRequest, workers: Mapping[str, WorkerView], now_mono: float
    ) -> Decision: ...


@dataclass(frozen=True)
class HybridConfig:
    region_penalty_s: float = 0.5  # score added for a worker in another region
    strict_regions: bool = False  # True: no camera ever leaves its region
    overload_s: float = 1.0  # holder's expected time above this: look for a better worker
    imbalance: float = 0.3  # holder's utilisation above the pool's least by this: look too
    move_margin_s: float = 0.2  # a move must improve the score by at least this
    moves_per_interval: int = 20  # optional moves (not failovers) per interval ...
    scans_per_interval: int = 100  # ... and searches for a better worker (O(workers) each)
    move_interval_s: float = 1.0
    util_weight_s: float = 1.0  # score per unit of committed utilisation
    normal_admit_share: float = 0.4  # of the time left before the deadline
    low_admit_share: float = 0.2
    delay_s: float = 0.25  # how long a delayed batch waits before it is decided again
    stats_interval_s: float = 1.0  # how stale the pool-wide statistics may be
    # How long a camera stays with a holder before an optional move (not a failover, not a
    # breaker probe): see BalancerSettings.min_dwell_s for why 12 s.
    min_dwell_s: float = 12.0

    def __post_init__(self) -> None:
        if not 0 < self.low_admit_share <= self.normal_admit_share <= 1:
            raise ValueError("need 0 < low_admit_share <= normal_admit_share <= 1")
        if (min(self.moves_per_interval, self.scans_per_interval) < 0
                or self.move_interval_s <= 0 or self.delay_s <= 0 or self.min_dwell_s < 0):
            raise ValueError("invalid move budget, delay or dwell")


def _capable(w: WorkerView, req: BatchRequest, strict: bool) -> bool:
    return (req.capability in w.capabilities
            and (req.model is None or req.model in w.models)
            and (w.region == req.region or not (strict or req.region_strict)))


@dataclass(frozen=True)
class _PoolStats:
    min_utilisation: Mapping[str, float]  # per capability, over up and closed workers
    probing: tuple[str, ...]  # half-open workers, to be rechecked against the live view


class HybridPolicy:
    name: PolicyName = "hybrid"

    def __init__(self, config: HybridConfig | None = None) -> None:
        self.config = config or HybridConfig()
        self._moves = self._scans = 0
        self._budget_at = -math.inf
        self._stats = _PoolStats({}, ())
        self._stats_at = -math.inf

    def decide(
        self, request: BatchRequest, workers: Mapping[str, WorkerView], now_mono: float
    ) -> Decision:
        holder = workers.get(request.current) if request.current is not None else None
        if holder is not None and self._may_keep(holder, request):
            target = self._better_than(holder, request, workers, now_mono)
            if target is not None:
                return self._admit(request, target, "probe" if _is_probe(target) else "moved")
            return self._admit(request, holder, "probe" if _is_probe(holder) else "affinity")
        # New camera, or the holder is down, open, incapable: a move no budget may delay.
        best = self._best(request, workers, exclude=None)
        if best is None:
            return Delay(self.config.delay_s, "no_worker")
        if _is_probe(best):
            return self._admit(request, best, "probe")
        return self._admit(request, best, "placed" if request.current is None else "moved")

    def score(self, w: WorkerView, request: BatchRequest, joining: bool) -> float:
        """Lower is better, in seconds: the expected time to result now; the committed
        utilisation (a linear pull towards an even spread, which keeps headroom everywhere
        for bursts and failovers); the queueing that the committed load will cause, M/M/1's
        service time x u / (1 - u), with u the load of the camera's priority and above (all
        a priority queue makes it wait for; it spreads the urgent cameras); a region penalty.
        `joining`: the camera is not yet counted in the worker's load."""
        cfg = self.config
        capacity = max(w.capacity_per_s, 1e-9)
        extra = request.rate_per_s / capacity if joining else 0.0
        urgent = sum(w.held_per_s[request.priority:]) / capacity + extra
        queueing = w.service_s * _queueing_factor(urgent)
        penalty = 0.0 if w.region == request.region else cfg.region_penalty_s
        return (w.expected_s(request.priority) + cfg.util_weight_s * (w.utilisation + extra)
                + queueing + penalty)

    def saturated(self, w: WorkerView, req: BatchRequest) -> bool:
        """Whether `w`, once the camera joins it, is overloaded itself: its batches of the
        camera's priority would take longer than `overload_s`, or the load of that priority
        and above (all its priority queue serves first) would reach its capacity, so its
        backlog could only grow. Moving between two saturated workers cannot help: the move
        adds a tracker reload and fences the batches queued at the old worker."""
        capacity = max(w.capacity_per_s, 1e-9)
        urgent = (sum(w.held_per_s[req.priority:]) + req.rate_per_s) / capacity
        return w.expected_s(req.priority) > self.config.overload_s or urgent >= 1.0

    def _may_keep(self, w: WorkerView, req: BatchRequest) -> bool:
        if not _capable(w, req, self.config.strict_regions):
            return False
        if w.breaker == "closed":
            return True  # suspect or up: a suspect keeps its cameras
        return w.breaker == "half_open" and _may_probe(w, req)

    def _better_than(self, holder: WorkerView, req: BatchRequest,
                     workers: Mapping[str, WorkerView], now_mono: float) -> WorkerView | None:
        cfg = self.config
        if now_mono - self._budget_at >= cfg.move_interval_s:
            self._moves, self._scans = cfg.moves_per_interval, cfg.scans_per_interval
            self._budget_at = now_mono
        if self._moves < 1 or self._scans < 1:
            return None
        stats = self._pool_stats(workers, now_mono)
        # Probes are exempt from the dwell: the breaker's slots already bound them, and a
        # worker whose cameras all just left it (that is why it opened) recovers only by them.
        dwelt = now_mono - req.held_since_mono >= cfg.min_dwell_s
        over = dwelt and holder.expected_s(req.priority) > cfg.overload_s
        floor = stats.min_utilisation.get(req.capability, holder.utilisation)
        # Rebalancing is an optimisation: it may spend only half the moves, so that a camera
        # whose batches suffer ("over") always finds one left.
        imbalanced = (dwelt and 2 * self._moves > cfg.moves_per_interval
                      and holder.utilisation - floor > cfg.imbalance)
        probe = next((workers[p] for p in stats.probing if p in workers and p != holder.worker_id
                      and _may_probe(workers[p], req)
                      and _capable(workers[p], req, cfg.strict_regions)), None)
        if not (over or imbalanced or probe is not None):
            return None
        self._scans -= 1  # a scan is O(workers): only with a reason, and only so many
        target = probe  # recovery needs traffic; a low or normal camera is the cheap kind
        if target is None:
            best = self._best(req, workers, exclude=holder.worker_id, probes=False)
            if (best is not None and not self.saturated(best, req)
                    and (self.score(best, req, True) + cfg.move_margin_s
                         < self.score(holder, req, False))):
                target = best
        if target is not None:
            self._moves -= 1
        return target

    def _best(self, req: BatchRequest, workers: Mapping[str, WorkerView], exclude: str | None,
              probes: bool = True) -> WorkerView | None:
        strict = self.config.strict_regions
        best: WorkerView | None = None
        best_score = math.inf
        for w in workers.values():
            if w.worker_id == exclude or not _capable(w, req, strict):
                continue
            if w.breaker == "half_open":
                if probes and _may_probe(w, req):
                    return w
                continue
            if w.breaker != "closed" or w.liveness != "up":
                continue
            value = self.score(w, req, True)
            if value < best_score:
                best, best_score = w, value
        return best

    def _admit(self, req: BatchRequest, w: WorkerView, reason: RouteReason) -> Decision:
        cfg = self.config
        if req.priority >= Priority.HIGH:
            return Route(w.worker_id, reason)
        penalty = 0.0 if w.region == req.region else cfg.region_penalty_s
        expected = w.expected_s(req.priority) + penalty
        normal_limit = cfg.normal_admit_share * req.time_left_s
        limit = normal_limit if req.priority == Priority.NORMAL else (
            cfg.low_admit_share * req.time_left_s)
        if expected <= limit:
            return Route(w.worker_id, reason)
        if req.priority == Priority.LOW and expected <= normal_limit:
            # Moderate pressure: a short wait may find room; its deadline bounds the waiting.
            return Delay(cfg.delay_s, "overload")
        return Shed("shed")

    def _pool_stats(self, workers: Mapping[str, WorkerView], now_mono: float) -> _PoolStats:
        if now_mono - self._stats_at < self.config.stats_interval_s:
            return self._stats
        floor: dict[str, float] = {}
        probing: list[str] = []
        for w in workers.values():
            if w.breaker == "half_open":
                probing.append(w.worker_id)
            elif w.breaker == "closed" and w.liveness == "up":
                for cap in w.capabilities:
                    floor[cap] = min(floor.get(cap, math.inf), w.utilisation)
        self._stats, self._stats_at = _PoolStats(floor, tuple(probing)), now_mono
        return self._stats


def _queueing_factor(utilisation: float) -> float:
    """u / (1 - u), continued as a steep line past 0.95 so it stays finite and increasing."""
    if utilisation <= 0.95:
        return utilisation / (1 - utilisation)
    return 19.0 + 400.0 * (utilisation - 0.95)


def _is_probe(w: WorkerView) -> bool:
    return w.breaker == "half_open"


def _may_probe(w: WorkerView, req: BatchRequest) -> bool:
    return w.probe_slots > 0 and w.liveness == "up" and req.priority <= Priority.NORMAL


def _baseline_ok(w: WorkerView, req: BatchRequest) -> bool:
    return w.liveness == "up" and _capable(w, req, False)


class RoundRobinPolicy:
    """Each batch to the next live, capable worker in turn; blind to load and breakers."""

    name: PolicyName = "round_robin"

    def __init__(self) -> None:
        self._cursor = 0

    def decide(
        self, request: BatchRequest, workers: Mapping[str, WorkerView], now_mono: float
    ) -> Decision:
        ids = tuple(workers)
        for step in range(len(ids)):
            w = workers[ids[(self._cursor + step) % len(ids)]]
            if _baseline_ok(w, request):
                self._cursor = (self._cursor + step + 1) % len(ids)
                return Route(w.worker_id, "placed")
        return Delay(0.25, "no_worker")


class LeastLoadedPolicy:
    """Each batch to the live, capable worker with the fewest outstanding batches (least
    connections): load-aware but blind to capacity, affinity, regions and breakers."""

    name: PolicyName = "least_loaded"

    def decide(
        self, request: BatchRequest, workers: Mapping[str, WorkerView], now_mono: float
    ) -> Decision:
        best: WorkerView | None = None
        for w in workers.values():
            if _baseline_ok(w, request) and (best is None or w.backlog < best.backlog):
                best = w
        return Delay(0.25, "no_worker") if best is None else Route(best.worker_id, "placed")


def make_policy(name: PolicyName, config: HybridConfig | None = None) -> Policy:
    if name == "hybrid":
        return HybridPolicy(config)
    if name == "round_robin":
        return RoundRobinPolicy()
    if name == "least_loaded":
        return LeastLoadedPolicy()
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")

