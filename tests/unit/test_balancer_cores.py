from __future__ import annotations

import time

import pytest

from balancer.liveness import Liveness, LivenessConfig
from balancer.policy import Assignment, choose_worker
from contracts.messages import WorkerHeartbeat


def beat(worker_id: str, region: str = "eu", caps: tuple[str, ...] = ("motion",),
         in_flight: int = 0, stopping: bool = False) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker_id=worker_id, boot_id="b", region=region, capabilities=caps,
                           queue=f"frames.worker.{worker_id}", in_flight=in_flight,
                           sent_at=time.time(), stopping=stopping)


LIVE = {w.worker_id: w for w in (beat("w1"), beat("w2"), beat("w3", region="us"),
                                   beat("g1", caps=("onnx",)))}


@pytest.mark.parametrize(
    ("camera", "cap", "region", "current", "assigned", "expected"),
    [
        # affinity wins while the holder is live and capable
        ("c1", "motion", "eu", Assignment("w2", 3), {"c1": Assignment("w2", 3)}, "w2"),
        # the holder is gone: least-loaded local worker
        ("c1", "motion", "eu", Assignment("dead", 3),
         {"c1": Assignment("dead", 3), "c2": Assignment("w1", 1)}, "w2"),
        # new camera, no load anywhere: local before remote, then by id
        ("c9", "motion", "eu", None, {}, "w1"),
        # only a remote region can serve
        ("c9", "motion", "us", None, {}, "w3"),
        # capability filter
        ("c9", "onnx", "eu", None, {}, "g1"),
        ("c9", "yolo", "eu", None, {}, None),
    ],
)
def test_choose_worker(camera: str, cap: str, region: str, current: Assignment | None,
                       assigned: dict[str, Assignment], expected: str | None) -> None:
    assert choose_worker(camera, cap, region, current, LIVE, assigned) == expected


def test_liveness_expires_on_receiver_clock_and_drops_stopping_workers() -> None:
    live = Liveness(LivenessConfig(mode="expiry", timeout_s=5))
    live.observe(beat("w1"), now_mono=100.0)
    live.observe(beat("w2"), now_mono=103.0)
    assert set(live.live(104.0)) == {"w1", "w2"}
    assert set(live.live(106.0)) == {"w2"}
    live.observe(beat("w2", stopping=True), now_mono=106.5)
    assert live.live(106.6) == {}
