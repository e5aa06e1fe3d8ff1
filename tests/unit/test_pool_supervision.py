"""The worker pool's pure cores: back-off, restarts, stops on purpose, start stagger, ensure,
idle reaping and GPU round robin (its edges are in test_pool_edges.py)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.pool.gpus import parse_nvidia_smi_list, pinning_env
from workers.pool.supervision import (
    BackoffPolicy,
    Draining,
    PoolFull,
    PoolState,
    Slot,
    WorkerStatus,
    choose_gpu,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def mono(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1.7e9 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


POLICY = BackoffPolicy(initial_s=1.0, max_s=10.0, multiplier=2.0, jitter_ratio=0.2,
                       reset_after_s=60.0)


def make_pool(clock: FakeClock, *, stagger_s: float = 0.0, max_workers: int = 64,
              policy: BackoffPolicy = POLICY, gpus: tuple[str, ...] = (),
              unit_random: float = 0.5) -> PoolState:
    return PoolState("p", policy, stagger_s=stagger_s, max_workers=max_workers, clock=clock,
                     gpus=gpus, unit_random=lambda: unit_random)


_pids = iter(range(100, 10**9))


def spawn_due(pool: PoolState) -> list[str]:
    """What the service does: spawn every due slot (a fresh pid each)."""
    due = pool.due_spawns()
    for slot in due:
        pool.spawned(slot.worker_id, next(_pids), 9000)
    return [s.worker_id for s in due]


def run_one(pool: PoolState, type_name: str = "motion", idle: float | None = None) -> str:
    (worker_id,) = pool.start(type_name, 1, idle)
    assert spawn_due(pool) == [worker_id]
    return worker_id


# -- back-off ------------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "unit_random", "delay_s"), [
    (1, 0.5, 1.0), (2, 0.5, 2.0), (3, 0.5, 4.0), (4, 0.5, 8.0), (5, 0.5, 10.0),
    (50, 0.5, 10.0), (10_000, 0.5, 10.0),  # capped, and no overflow
    (1, 0.0, 0.8), (1, 1.0, 1.2),  # jitter: ±20 %
    (4, 1.0, 9.6), (5, 1.0, 10.0), (5, 0.0, 8.0),  # jitter never lifts a delay over the cap
])
def test_backoff_grows_with_jitter_and_is_capped(
    failures: int, unit_random: float, delay_s: float
) -> None:
    assert POLICY.delay_s(failures, unit_random) == pytest.approx(delay_s)


@pytest.mark.parametrize(("previous", "uptime_s", "failures"), [
    (0, 0.0, 1), (3, 5.0, 4), (3, 59.9, 4), (3, 60.0, 1), (9, 3600.0, 1),
])
def test_a_stable_uptime_resets_the_crash_count(previous: int, uptime_s: float,
                                                 failures: int) -> None:
    assert POLICY.failures_after_crash(previous, uptime_s) == failures


@given(
    initial_s=st.floats(0.01, 100), cap_factor=st.floats(1, 1000),
    multiplier=st.floats(1, 10), jitter=st.floats(0, 1), unit_random=st.floats(0, 1),
    failures=st.integers(1, 500),
)
def test_backoff_never_shrinks_never_passes_the_cap(
    initial_s: float, cap_factor: float, multiplier: float, jitter: float, unit_random: float,
    failures: int,
) -> None:
    policy = BackoffPolicy(initial_s, initial_s * cap_factor, multiplier, jitter)
    now, after = policy.delay_s(failures, unit_random), policy.delay_s(failures + 1, unit_random)
    assert 0 <= now <= after <= policy.max_s


def test_a_crash_loop_backs_off_further_and_a_stable_run_resets_it() -> None:
    clock = FakeClock()
    pool = make_pool(clock)
    worker_id = run_one(pool)
    delays = []
    for _ in range(6):
        pool.exited(worker_id, 1)
        slot = pool.slots[worker_id]
        assert slot.status is WorkerStatus.BACKOFF and slot.due_mono is not None
        delays.append(slot.due_mono - clock.now)
        assert spawn_due(pool) == []  # not before its back-off ends
        clock.advance(slot.due_mono - clock.now)
        assert spawn_due(pool) == [worker_id]  # the same id: its queue and cameras stay
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert pool.slots[worker_id].restarts == 6
    clock.advance(60.0)  # up a minute: healthy
    pool.exited(worker_id, -9)
    assert pool.slots[worker_id].due_mono == pytest.approx(clock.now + 1.0)


def test_restart_limit_gives_up_as_crashed() -> None:
    clock = FakeClock()
    pool = make_pool(clock, policy=BackoffPolicy(1.0, 10.0, limit=2))
    worker_id = run_one(pool)
    for _ in range(2):
        pool.exited(worker_id, 1)
        clock.advance(10)
        assert spawn_due(pool) == [worker_id]
    pool.exited(worker_id, 1)
    assert pool.slots[worker_id].status is WorkerStatus.CRASHED
    clock.advance(1000)
    assert spawn_due(pool) == []


# -- stops on purpose ----------------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["start", "stop", "exit", "spawn", "tick", "drain"]),
                         st.integers(0, 5)), max_size=60)


@settings(max_examples=300)
@given(ops=OPS)
def test_a_worker_stopped_on_purpose_is_never_restarted(ops: list[tuple[str, int]]) -> None:
    """Whatever the interleaving of starts, stops, exits (any code), time and a drain: a slot
    stopped on purpose is never spawned again (a later start of the same id is a new slot)."""
    clock = FakeClock()
    pool = make_pool(clock, stagger_s=0.5, max_workers=8)
    stopped: list[Slot] = []
    for op, n in ops:
        slots = list(pool.slots.values())
        pick = slots[n % len(slots)] if slots else None
        if op == "start":
            with contextlib.suppress(PoolFull, Draining):
                pool.start("motion", n % 3)
        elif op == "stop" and pick is not None:
            pool.request_stop(pick.worker_id)
            stopped.append(pick)
        elif op == "exit" and pick is not None and pick.pid is not None:
            pool.exited(pick.worker_id, -9 if n % 2 else 0)
        elif op == "spawn":
            for slot in pool.due_spawns():
                assert not any(slot is s for s in stopped)
                pool.spawned(slot.worker_id, next(_pids), 9000)
        elif op == "tick":
            clock.advance(n * 3.0)
        elif op == "drain":
            pool.drain()
            stopped.extend(pool.slots.values())
        for slot in stopped:
            assert not slot.wanted
            assert slot.status is (WorkerStatus.STOPPING if slot.pid else WorkerStatus.STOPPED)
    if pool.draining:
        assert pool.due_spawns() == []


def test_a_stop_during_the_spawn_terminates_the_new_process() -> None:
    pool = make_pool(FakeClock())
    (worker_id,) = pool.start("motion", 1)
    (slot,) = pool.due_spawns()  # the service is now awaiting the spawn
    assert pool.request_stop(worker_id) is False  # no pid to signal yet
    assert pool.spawned(worker_id, 42, 9000) is False  # so the service SIGTERMs it now
    pool.exited(worker_id, 0)
    assert slot.status is WorkerStatus.STOPPED and slot.restarts == 0


def test_stop_by_type_takes_idle_workers_first() -> None:
    clock = FakeClock()
    pool = make_pool(clock)
    busy, idle, starting = run_one(pool), run_one(pool), run_one(pool)
    pending = pool.start("motion", 1)[0]
    pool.observed(busy, ok=True, processed=5, in_flight=2)
    pool.observed(idle, ok=True, processed=0, in_flight=0)
    clock.advance(5)
    pool.observed(busy, ok=True, processed=9, in_flight=1)
    pool.observed(idle, ok=True, processed=0, in_flight=0)
    assert pool.choose_to_stop("motion", 4) == [pending, starting, idle, busy]
    assert pool.choose_to_stop("motion", 2) == [pending, starting]
    assert pool.choose_to_stop("other", 2) == []


def test_drain_stops_everything_and_starts_nothing() -> None:
    clock = FakeClock()
    pool = make_pool(clock, stagger_s=1.0)
    running = run_one(pool)
    clock.advance(1)
    crashed = run_one(pool)
    pool.exited(crashed, 1)
    pending = pool.start("motion", 3)
    assert pool.drain() == [running]  # the only one with a process to SIGTERM
    assert pool.slots[crashed].status is WorkerStatus.STOPPED
    assert all(pool.slots[w].status is WorkerStatus.STOPPED for w in pending)
    clock.advance(100)
    assert pool.due_spawns() == [] and pool.next_due_mono() is None
    pool.exited(running, -9)  # even killed during the drain: not restarted
    assert pool.slots[running].status is WorkerStatus.STOPPED
    with pytest.raises(Draining):
        pool.start("motion", 1)
    with pytest.raises(Draining):
        pool.ensure("motion", 5)


# -- start, ensure, ids --------------------------------------------------------------------


def test_starts_are_staggered_and_ids_reused_lowest_first() -> None:
    clock = FakeClock()
    pool = make_pool(clock, stagger_s=2.0)
    assert pool.start("motion", 3) == ["p-motion-0", "p-motion-1", "p-motion-2"]
    assert spawn_due(pool) == ["p-motion-0"]
    clock.advance(1.9)
    assert spawn_due(pool) == []
    clock.advance(0.1)
    assert spawn_due(pool) == ["p-motion-1"]
    clock.advance(10)
    assert spawn_due(pool) == ["p-motion-2"]
    assert pool.start("motion", 1) == ["p-motion-3"]  # stagger is from the last spawn due
    pool.request_stop("p-motion-1")
    pool.exited("p-motion-1", 0)
    assert pool.start("motion", 1) == ["p-motion-1"]  # its queue's leftovers are consumed
    assert pool.slots["p-motion-1"].restarts == 0
    assert pool.start("yolo", 1) == ["p-yolo-0"]


def test_max_workers_refuses_the_whole_request() -> None:
    pool = make_pool(FakeClock(), max_workers=3)
    pool.start("motion", 2)
    with pytest.raises(PoolFull):
        pool.start("motion", 2)
    assert len(pool.wanted()) == 2
    with pytest.raises(PoolFull):
        pool.ensure("motion", 4)
    assert pool.ensure("motion", 3) == ["p-motion-2"]


@settings(max_examples=200)
@given(
    setup=st.lists(st.tuples(st.sampled_from(["motion", "yolo"]),
                             st.sampled_from(["pending", "running", "backoff", "stopping",
                                              "stopped", "crashed"])), max_size=12),
    target=st.integers(0, 15),
)
def test_ensure_never_overshoots(setup: list[tuple[str, str]], target: int) -> None:
    clock = FakeClock()
    pool = make_pool(clock, policy=BackoffPolicy(1.0, 10.0, limit=1), max_workers=64)
    for type_name, state in setup:
        (worker_id,) = pool.start(type_name, 1)
        if state == "pending":
            continue
        spawn_due(pool)
        if state in ("backoff", "crashed"):
            pool.exited(worker_id, 1)
            if state == "crashed":
                clock.advance(10)
                spawn_due(pool)
                pool.exited(worker_id, 1)
        elif state in ("stopping", "stopped"):
            pool.request_stop(worker_id)
            if state == "stopped":
                pool.exited(worker_id, 0)
    before = {t: len(pool.wanted(t)) for t in ("motion", "yolo")}
    started = pool.ensure("motion", target)
    assert len(pool.wanted("motion")) == max(before["motion"], target)
    assert len(started) == max(0, target - before["motion"])
    assert len(pool.wanted("yolo")) == before["yolo"]
    assert pool.ensure("motion", target) == []  # idempotent


# -- idle reaping --------------------------------------------------------------------------


@pytest.mark.parametrize(("idle_timeout_s", "idle_for_s", "in_flight", "poll_age_s", "reaped"), [
    (10.0, 9.9, 0, 0.0, False),
    (10.0, 10.0, 0, 0.0, True),
    (10.0, 100.0, 1, 0.0, False),  # busy: never
    (10.0, 100.0, 0, 5.0, False),  # not seen lately: not assumed idle
    (None, 1000.0, 0, 0.0, False),  # not an on-demand worker
])
def test_idle_reaping_table(idle_timeout_s: float | None, idle_for_s: float, in_flight: int,
                            poll_age_s: float, reaped: bool) -> None:
    clock = FakeClock()
    pool = make_pool(clock)
    worker_id = run_one(pool, idle=idle_timeout_s)
    pool.observed(worker_id, ok=True, processed=3, in_flight=0)  # activity now
    clock.advance(idle_for_s - poll_age_s)
    pool.observed(worker_id, ok=True, processed=3, in_flight=in_flight)
    clock.advance(poll_age_s)
    assert pool.reap_due(fresh_within_s=3.0) == ([worker_id] if reaped else [])


def test_only_running_workers_are_reaped() -> None:
    clock = FakeClock()
    pool = make_pool(clock)
    starting = run_one(pool, idle=1.0)  # never answered its /health
    stopping = run_one(pool, idle=1.0)
    pool.observed(stopping, ok=True, processed=0, in_flight=0)
    pool.request_stop(stopping)
    clock.advance(100)
    pool.observed(stopping, ok=True, processed=0, in_flight=0)
    assert pool.reap_due(fresh_within_s=3.0) == []
    assert pool.slots[starting].status is WorkerStatus.STARTING


@settings(max_examples=200)
@given(polls=st.lists(st.tuples(st.floats(0.1, 5.0), st.integers(0, 2), st.integers(0, 2)),
                      min_size=1, max_size=40),
       idle_timeout_s=st.floats(0.5, 20.0))
def test_reaping_waits_the_whole_timeout_and_spares_busy_workers(
    polls: list[tuple[float, int, int]], idle_timeout_s: float
) -> None:
    clock = FakeClock()
    pool = make_pool(clock)
    worker_id = run_one(pool, idle=idle_timeout_s)
    processed, last_activity = 0, clock.now
    for i, (gap_s, new_jobs, in_flight) in enumerate(polls):
        clock.advance(gap_s)
        processed += new_jobs
        pool.observed(worker_id, ok=True, processed=processed, in_flight=in_flight)
        if i == 0 or new_jobs or in_flight:  # the first poll finds it ready: the clock starts
            last_activity = clock.now
        reaped = pool.reap_due(fresh_within_s=10.0) == [worker_id]
        assert reaped == (in_flight == 0 and clock.now - last_activity >= idle_timeout_s)
        if reaped:
            return


# -- GPU round robin -----------------------------------------------------------------------

def test_gpus_are_found_and_shared_round_robin() -> None:
    smi = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aa)\n"
           "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bb)\n")
    assert parse_nvidia_smi_list(smi) == ["0", "1"]
    assert parse_nvidia_smi_list("") == []
    assert choose_gpu([], []) is None
    assert choose_gpu(["0", "1"], ["0"]) == "1"
    assert choose_gpu(["0", "1"], ["0", "1", "1"]) == "0"
    pool = make_pool(FakeClock(), gpus=("0", "1"))
    pool.start("motion", 3)
    pool.start("yolo", 1, gpu="1")  # an explicit GPU_DEVICE
    assert [s.gpu for s in pool.slots.values()] == ["0", "1", "0", "1"]
    assert pinning_env("1") == {"CUDA_VISIBLE_DEVICES": "1", "GPU_DEVICE": "0"}
    assert pinning_env(None) == {}
