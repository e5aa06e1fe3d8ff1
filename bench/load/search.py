"""The camera ramp's rules: which count to try next, and whether a step was sustained. Pure.

A step is sustained when, over its timed window:
- p99 capture-to-WebSocket latency is under the target (500 ms);
- every camera delivered at least `min_rate_share` of its expected events per second (a
  camera the system starves cannot hide behind the others' good latency);
- the broker's frame queues stayed bounded and did not grow (a backlog that is still small at
  the end of a short window would grow without bound in a longer one);
- no coverage gap was recorded (shed, stale, dropped: work the system gave up on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.load.latency import EventTimes, StageStats, percentile


@dataclass(frozen=True)
class Limits:
    p99_ms: float = 500.0
    min_rate_share: float = 0.9
    depth_per_camera: float = 2.0  # batches waiting in frames.* queues per camera, at most
    depth_floor: int = 10


@dataclass(frozen=True)
class StepResult:
    cameras: int
    window_s: float
    events: int
    p99_ms: float  # capture to WebSocket client
    slowest_camera_per_s: float  # events per second of the camera that delivered fewest
    depth_first: int  # frames.* queue depth, all queues summed, at the window's first sample
    depth_last: int
    depth_max: int
    gaps: Mapping[str, int]  # reason -> coverage gaps recorded during the step
    stages: Sequence[StageStats]
    disordered: int  # events whose stage instants are out of the pipeline's order
    failure: str | None

    @property
    def sustained(self) -> bool:
        return self.failure is None


def judge(cameras: Sequence[str], events: Sequence[EventTimes], window_s: float,
          expected_per_s: float, depths: Sequence[int], gaps: Mapping[str, int],
          stages: Sequence[StageStats], limits: Limits) -> StepResult:
    per_camera = dict.fromkeys(cameras, 0)
    for e in events:
        if e.camera_id in per_camera:
            per_camera[e.camera_id] += 1
    slowest = min(per_camera.values(), default=0) / window_s if window_s > 0 else 0.0
    p99 = percentile([e.total_s * 1000 for e in events], 0.99)
    first, last = (depths[0], depths[-1]) if depths else (0, 0)
    deepest = max(depths, default=0)
    bound = max(limits.depth_floor, math.ceil(limits.depth_per_camera * len(cameras)))
    failure = None
    if not events:
        failure = "no events reached the WebSocket client"
    elif not p99 < limits.p99_ms:
        failure = f"p99 {p99:.0f} ms >= {limits.p99_ms:.0f} ms"
    elif slowest < limits.min_rate_share * expected_per_s:
        worst = min(per_camera, key=lambda c: per_camera[c])
        failure = (f"camera {worst} delivered {slowest:.2f} events/s < "
                   f"{limits.min_rate_share:g} x {expected_per_s:g}")
    elif deepest > bound:
        failure = f"backlog: {deepest} batches queued > {bound}"
    elif last - first > len(cameras):
        failure = f"backlog growing: {first} -> {last} batches queued"
    elif sum(gaps.values()):
        failure = "gaps recorded: " + ", ".join(f"{n} {why}" for why, n in sorted(gaps.items()))
    return StepResult(len(cameras), window_s, len(events), p99, slowest, first, last, deepest,
                      dict(gaps), list(stages), sum(not e.in_order for e in events), failure)


def next_cameras(tried: Mapping[int, bool], start: int, max_cameras: int) -> int | None:
    """Double from `start` while steps pass (up to `max_cameras`), then bisect between the
    largest pass and the smallest failure above it; None when the answer is known."""
    if not tried:
        return min(start, max_cameras)
    best = max((n for n, ok in tried.items() if ok), default=0)
    above = [n for n, ok in tried.items() if not ok and n > best]
    if not above:
        return None if best >= max_cameras else min(best * 2, max_cameras)
    low_fail = min(above)
    if low_fail - best <= 1:
        return None
    return (best + low_fail) // 2
