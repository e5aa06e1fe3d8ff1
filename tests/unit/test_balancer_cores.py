from __future__ import annotations

import time

from balancer.liveness import Liveness, LivenessConfig
from contracts.messages import WorkerHeartbeat


def beat(worker_id: str, region: str = "eu", caps: tuple[str, ...] = ("motion",),
         in_flight: int = 0, stopping: bool = False) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker_id=worker_id, boot_id="b", region=region, capabilities=caps,
                           queue=f"frames.worker.{worker_id}", in_flight=in_flight,
                           sent_at=time.time(), stopping=stopping)


def test_liveness_expires_on_receiver_clock_and_drops_stopping_workers() -> None:
    live = Liveness(LivenessConfig(mode="expiry", timeout_s=5))
    live.observe(beat("w1"), now_mono=100.0)
    live.observe(beat("w2"), now_mono=103.0)
    assert set(live.live(104.0)) == {"w1", "w2"}
    assert set(live.live(106.0)) == {"w2"}
    live.observe(beat("w2", stopping=True), now_mono=106.5)
    assert live.live(106.6) == {}
