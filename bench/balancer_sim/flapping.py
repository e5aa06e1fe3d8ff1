"""The soak run's failure, replayed: a pool-wide backlog after a failover must not make
cameras ping-pong between workers.

Two equal workers hold 20 cameras at 0.77 of their capacity. Both freeze for a few seconds at
once (a broker memory alarm blocks their heartbeats and their work), long enough for one to be
judged down and failed over; then both thaw with a backlog. A policy that moves a camera
whenever its holder is overloaded and the other worker scores a little better sends cameras
back and forth every few seconds; each move would fence the batches queued at the old worker
and reset the tracker in the real system. `python -m bench.balancer_sim.flapping` prints the
moves per camera for each policy.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from balancer.policy import HybridConfig, HybridPolicy, Policy
from bench.balancer_sim.engine import simulate
from bench.balancer_sim.fleet import CameraSpec, Fault, Fleet, SimConfig, WorkerSpec
from bench.balancer_sim.results import Tally
from contracts.broker import Priority

CONFIG = SimConfig(cameras=20, workers=2, duration_s=90.0, seed=7, corrupt_share=0.0,
                   faults=False)
FREEZE_AT_S = 30.0
FREEZES_S = (4.0, 6.0)  # one thaws before the other is judged down, as in the soak run


def alarm_fleet(cameras: int = 20, capacity_per_s: float = 13.0) -> Fleet:
    specs = tuple(
        CameraSpec(f"cam{i:02d}", "eu", "motion", Priority.NORMAL, 1.0 + 0.002 * i,
                   phase_s=i / cameras, strict=False)
        for i in range(cameras))
    workers = tuple(WorkerSpec(f"w{i}", "eu", frozenset({"motion"}), capacity_per_s, 0.0)
                    for i in range(len(FREEZES_S)))
    faults: list[Fault] = []
    for w, frozen_s in zip(workers, FREEZES_S, strict=True):
        faults += [Fault(FREEZE_AT_S, w.worker_id, "freeze"),
                   Fault(FREEZE_AT_S + frozen_s, w.worker_id, "thaw")]
    return Fleet(specs, workers, tuple(sorted(faults, key=lambda f: (f.at_s, f.worker_id))))


def run(policy: Policy, fleet: Fleet | None = None) -> Tally:
    return simulate(CONFIG, fleet or alarm_fleet(), policy)


def moves_per_camera(tally: Tally, after_s: float = FREEZE_AT_S) -> Counter[str]:
    return Counter(m.camera_id for m in tally.move_log if m.at_s >= after_s)


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    for label, config in (("hybrid", HybridConfig()),
                          ("hybrid, no dwell", HybridConfig(min_dwell_s=0.0))):
        tally = run(HybridPolicy(config))
        per_camera = moves_per_camera(tally)
        forced = sum(1 for m in tally.move_log if m.source_state != "closed")
        done = sum(tally.completed.values())
        print(f"{label:<18} moves {tally.moves:>4} (forced {forced:>3}), most for one camera "
              f"{max(per_camera.values(), default=0):>3}, completed {done} of "
              f"{sum(tally.generated.values())}, downs {tally.downs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
