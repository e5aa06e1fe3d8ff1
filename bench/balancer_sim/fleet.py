"""The simulated world, drawn once per seed: cameras, heterogeneous workers and their faults.

Everything here is a frozen value; the same seed gives every policy the same world, so the
policies' numbers differ only by their decisions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, TypeVar

from contracts.broker import Priority

REGIONS = (("eu", 0.4), ("us", 0.3), ("ap", 0.2), ("sa", 0.1))
PRIORITY_MIX = ((Priority.CRITICAL, 0.05), (Priority.HIGH, 0.15), (Priority.NORMAL, 0.60),
                (Priority.LOW, 0.20))
T = TypeVar("T")
FaultKind = Literal["crash", "restart", "slow", "fast", "errors", "healthy", "join", "freeze",
                    "thaw"]


@dataclass(frozen=True)
class SimConfig:
    cameras: int = 1000
    workers: int = 100
    duration_s: float = 60.0  # cameras produce batches for this long; then the fleet drains
    load: float = 0.7  # total camera batch rate / total worker capacity
    seed: int = 1
    period_s: float = 1.0  # a camera's batch interval (each camera jitters it by up to 5 %)
    deadline_s: float = 5.0  # a batch not started by then is a stale gap
    heartbeat_s: float = 1.0
    onnx_share: float = 0.3  # cameras needing the ONNX detector (GPU workers only)
    strict_share: float = 0.05  # cameras that must stay in their region (data residency)
    corrupt_share: float = 0.002  # batches with a corrupt frame: dead-lettered by the worker
    cross_region_s: float = 0.1  # extra transfer time to a worker in another region
    faults: bool = True


@dataclass(frozen=True)
class CameraSpec:
    camera_id: str
    region: str
    capability: str
    priority: Priority
    period_s: float
    phase_s: float
    strict: bool


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: str
    region: str
    capabilities: frozenset[str]
    capacity_per_s: float  # nominal batches per second
    joins_at_s: float  # 0: there from the start


@dataclass(frozen=True)
class Fault:
    at_s: float
    worker_id: str
    kind: FaultKind


@dataclass(frozen=True)
class Fleet:
    cameras: tuple[CameraSpec, ...]
    workers: tuple[WorkerSpec, ...]
    faults: tuple[Fault, ...]


def _pick(rng: random.Random, weighted: tuple[tuple[T, float], ...]) -> T:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def build_fleet(config: SimConfig) -> Fleet:
    rng = random.Random(config.seed)
    cameras = tuple(
        CameraSpec(
            camera_id=f"cam{i:04d}",
            region=_pick(rng, REGIONS),
            capability="onnx" if rng.random() < config.onnx_share else "motion",
            priority=_pick(rng, PRIORITY_MIX),
            period_s=config.period_s * rng.uniform(0.95, 1.05),
            phase_s=rng.uniform(0, config.period_s),
            strict=rng.random() < config.strict_share,
        )
        for i in range(config.cameras)
    )
    workers = _workers(config, rng, cameras)
    return Fleet(cameras, workers, _faults(config, rng, workers) if config.faults else ())


def _workers(config: SimConfig, rng: random.Random,
             cameras: tuple[CameraSpec, ...]) -> tuple[WorkerSpec, ...]:
    # Workers per region in proportion to its cameras (capacities still differ at random).
    regions = [r for r, share in REGIONS for _ in range(round(share * config.workers))]
    regions = (regions + [REGIONS[0][0]] * config.workers)[: config.workers]
    rng.shuffle(regions)
    drafts: list[tuple[str, bool, float]] = []
    for region in regions:
        gpu = rng.random() < 0.5
        # CPU workers 2-6 batches/s, GPU workers 8-24: a spread of an order of magnitude.
        drafts.append((region, gpu, rng.uniform(8, 24) if gpu else rng.uniform(2, 6)))
    demand = sum(1 / c.period_s for c in cameras)
    scale = demand / (config.load * sum(cap for _, _, cap in drafts))
    late = set(rng.sample(range(config.workers), k=max(1, config.workers // 20)))
    return tuple(
        WorkerSpec(
            worker_id=f"w{i:03d}",
            region=region,
            capabilities=frozenset({"motion", "onnx"} if gpu else {"motion"}),
            capacity_per_s=cap * scale,
            joins_at_s=rng.uniform(0.2, 0.4) * config.duration_s if i in late else 0.0,
        )
        for i, (region, gpu, cap) in enumerate(drafts)
    )


def _faults(config: SimConfig, rng: random.Random,
            workers: tuple[WorkerSpec, ...]) -> tuple[Fault, ...]:
    """5 % crash (half restart 10-20 s later), 5 % slow down 6x for 15-25 s, 3 % fail most
    batches for 15-25 s; all in the middle of the run, so there is a before and an after."""
    d = config.duration_s
    faults: list[Fault] = []
    pool = [w for w in workers if w.joins_at_s == 0.0]
    chosen = rng.sample(pool, k=min(len(pool), max(3, len(pool) * 13 // 100)))
    n_crash = max(1, len(workers) * 5 // 100)
    n_slow = max(1, len(workers) * 5 // 100)
    for i, w in enumerate(chosen):
        at = rng.uniform(0.2, 0.6) * d
        if i < n_crash:
            faults.append(Fault(at, w.worker_id, "crash"))
            if i % 2 == 0:
                faults.append(Fault(at + rng.uniform(10, 20), w.worker_id, "restart"))
        elif i < n_crash + n_slow:
            faults.append(Fault(at, w.worker_id, "slow"))
            faults.append(Fault(at + rng.uniform(15, 25), w.worker_id, "fast"))
        else:
            faults.append(Fault(at, w.worker_id, "errors"))
            faults.append(Fault(at + rng.uniform(15, 25), w.worker_id, "healthy"))
    faults.extend(Fault(w.joins_at_s, w.worker_id, "join") for w in workers if w.joins_at_s)
    return tuple(sorted(faults, key=lambda f: (f.at_s, f.worker_id)))
