from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.policy import (
    BatchRequest,
    Decision,
    Delay,
    HybridConfig,
    HybridPolicy,
    LeastLoadedPolicy,
    Route,
    Shed,
    WorkerView,
    make_policy,
)
from contracts.broker import Priority

LOW, NORMAL, HIGH, CRITICAL = Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL


def view(wid: str, region: str = "eu", caps: tuple[str, ...] = ("motion",), util: float = 0.0,
         **kw: object) -> WorkerView:
    """Capacity 10 batches/s; `util`: the share of it held by normal cameras."""
    base = WorkerView(wid, region, frozenset(caps), capacity_per_s=10.0,
                      held_per_s=(0.0, 10.0 * util, 0.0, 0.0))
    return replace(base, **kw)  # type: ignore[arg-type]


def pool(*views: WorkerView) -> dict[str, WorkerView]:
    return {v.worker_id: v for v in views}


def req(current: str | None = None, priority: Priority = NORMAL, region: str = "eu",
        cap: str = "motion", time_left_s: float = 10.0, strict: bool = False) -> BatchRequest:
    return BatchRequest("c1", cap, region, priority, time_left_s, current, strict)


POOL = pool(view("a"), view("b", util=0.2), view("us1", region="us"),
            view("g", caps=("motion", "onnx"), util=0.9))


@pytest.mark.parametrize(
    ("request_", "workers", "expected"),
    [
        # affinity while the holder is healthy, even if another is emptier
        (req("b"), POOL, Route("b", "affinity")),
        # a suspect keeps its cameras ...
        (req("b"), pool(view("a"), view("b", liveness="suspect")), Route("b", "affinity")),
        # ... but is never given a new one
        (req(), pool(view("a", liveness="suspect"), view("b", util=0.9)),
         Route("b", "placed")),
        # holder gone (down) or open: moved to the best other, no budget needed
        (req("dead"), POOL, Route("a", "moved")),
        (req("b"), pool(view("a"), view("b", breaker="open")), Route("a", "moved")),
        # new camera: least loaded in its region
        (req(), POOL, Route("a", "placed")),
        (req(), pool(view("a", backlog=30), view("b")), Route("b", "placed")),
        # capability
        (req(cap="onnx"), POOL, Route("g", "placed")),
        (req(cap="yolo"), POOL, Delay(0.25, "no_worker")),
        # region: same region first, then another with a penalty, unless strict
        (req(region="us"), POOL, Route("us1", "placed")),
        (req(region="ap"), POOL, Route("a", "placed")),
        (req(region="ap", strict=True), POOL, Delay(0.25, "no_worker")),
        (req(region="us"), pool(view("a"), view("us1", region="us", backlog=40)),
         Route("a", "placed")),
        # half-open: probes take low and normal batches, never high or critical
        (req(priority=LOW), pool(view("a"), view("h", breaker="half_open", probe_slots=1)),
         Route("h", "probe")),
        (req(priority=CRITICAL), pool(view("a", backlog=5),
                                      view("h", breaker="half_open", probe_slots=1)),
         Route("a", "placed")),
        (req(priority=LOW), pool(view("a"), view("h", breaker="half_open", probe_slots=0)),
         Route("a", "placed")),
        # no worker at all: delayed, whatever the priority (the deadline makes it a gap)
        (req(priority=CRITICAL), {}, Delay(0.25, "no_worker")),
    ],
)
def test_hybrid_routing(request_: BatchRequest, workers: dict[str, WorkerView],
                        expected: Decision) -> None:
    assert HybridPolicy().decide(request_, workers, now_mono=0.0) == expected


# capacity 10/s: a backlog of 30 is 3.1 s to result; time left 10 s, so normal is admitted
# up to 4 s (0.4 of it), low up to 2 s (0.2)
@pytest.mark.parametrize(
    ("priority", "backlog", "expected"),
    [
        (CRITICAL, 1000, Route("a", "affinity")),  # never shed
        (HIGH, 1000, Route("a", "affinity")),  # never shed
        (NORMAL, 30, Route("a", "affinity")),  # 3.1 s
        (NORMAL, 40, Shed("shed")),  # 4.1 s
        (LOW, 15, Route("a", "affinity")),  # 1.6 s
        (LOW, 25, Delay(0.25, "overload")),  # over its own limit, within normal's
        (LOW, 40, Shed("shed")),
    ],
)
def test_admission_by_priority(priority: Priority, backlog: int, expected: Decision) -> None:
    config = HybridConfig(moves_per_interval=0)  # no escape by moving
    workers = pool(view("a", backlog=backlog), view("b"))
    assert HybridPolicy(config).decide(req("a", priority), workers, 0.0) == expected


def test_overloaded_holder_moves_within_the_budget_only() -> None:
    policy = HybridPolicy(HybridConfig(moves_per_interval=1, move_interval_s=5.0))
    workers = pool(view("a", backlog=20), view("b"))
    assert policy.decide(req("a"), workers, 0.0) == Route("b", "moved")
    assert policy.decide(req("a"), workers, 1.0) == Route("a", "affinity")  # budget spent
    assert policy.decide(req("a"), workers, 5.0) == Route("b", "moved")


def test_a_joining_worker_takes_cameras_gradually() -> None:
    # Rebalancing may spend half of the 4 moves per interval.
    policy = HybridPolicy(HybridConfig(moves_per_interval=4, move_interval_s=1.0))
    busy = {f"w{i}": view(f"w{i}", util=0.8, backlog=2) for i in range(5)}
    workers = {**busy, "new": view("new")}
    moved = [policy.decide(req(f"w{i % 5}"), workers, 0.0) for i in range(10)]
    assert moved.count(Route("new", "moved")) == 2
    assert all(d == Route(f"w{i % 5}", "affinity") for i, d in enumerate(moved)
               if d != Route("new", "moved"))


def test_rebalancing_leaves_moves_for_cameras_that_suffer() -> None:
    policy = HybridPolicy(HybridConfig(moves_per_interval=2, move_interval_s=1.0))
    workers = pool(view("a", util=0.8), view("b", util=0.8, backlog=20), view("new"))
    assert policy.decide(req("a"), workers, 0.0) == Route("new", "moved")  # imbalanced
    assert policy.decide(req("a"), workers, 0.0) == Route("a", "affinity")  # half is spent
    assert policy.decide(req("b"), workers, 0.0) == Route("new", "moved")  # over: 2.1 s
    assert policy.decide(req("b"), workers, 0.0) == Route("b", "affinity")  # all spent


def test_higher_priority_load_counts_against_a_lower_priority_batch() -> None:
    # Same backlog, but on "busy" high-priority cameras take 8 of the 10 batches/s, and
    # their batches will overtake a normal one in the priority queue.
    busy = view("busy", backlog=10, held_per_s=(0.0, 0.0, 8.0, 0.0))
    assert busy.expected_s(HIGH) == pytest.approx(1.1)
    assert busy.expected_s(NORMAL) == pytest.approx(10 / 2 + 0.1)
    workers = pool(busy, view("calm", backlog=10))
    assert HybridPolicy().decide(req(priority=NORMAL), workers, 0.0) == Route("calm", "placed")


def test_no_move_for_a_small_imbalance_or_a_marginal_gain() -> None:
    policy = HybridPolicy()
    workers = pool(view("a", util=0.25), view("b", util=0.0))
    assert policy.decide(req("a"), workers, 0.0) == Route("a", "affinity")


def test_a_healthy_camera_moves_to_a_half_open_worker_as_a_probe() -> None:
    workers = pool(view("a"), view("h", breaker="half_open", probe_slots=2))
    assert HybridPolicy().decide(req("a", LOW), workers, 0.0) == Route("h", "probe")
    assert HybridPolicy().decide(req("a", HIGH), workers, 0.0) == Route("a", "affinity")


def test_round_robin_cycles_over_live_capable_workers() -> None:
    policy = make_policy("round_robin")
    workers = pool(view("a"), view("b", liveness="suspect"), view("c"), view("d", caps=()))
    got = [policy.decide(req(), workers, 0.0) for _ in range(4)]
    assert [d.worker_id for d in got if isinstance(d, Route)] == ["a", "c", "a", "c"]


def test_least_loaded_takes_the_fewest_outstanding_regardless_of_capacity() -> None:
    workers = pool(view("a", backlog=3), view("b", backlog=2, capacity_per_s=0.5))
    assert LeastLoadedPolicy().decide(req(), workers, 0.0) == Route("b", "placed")


def test_make_policy_rejects_an_unknown_name() -> None:
    assert make_policy("hybrid").name == "hybrid"
    with pytest.raises(ValueError, match="round_robin"):
        make_policy("random")  # type: ignore[arg-type]


_VIEW = st.builds(
    lambda i, backlog, cap, held, live, brk, slots, region: view(
        f"w{i}", region=region, backlog=backlog, capacity_per_s=cap, held_per_s=held,
        liveness=live, breaker=brk, probe_slots=slots),
    st.integers(0, 30), st.integers(0, 10_000), st.floats(0.01, 100),
    st.tuples(*[st.floats(0, 50)] * 4),
    st.sampled_from(["up", "suspect"]), st.sampled_from(["closed", "open", "half_open"]),
    st.integers(0, 3), st.sampled_from(["eu", "us"]),
)


@settings(max_examples=300, deadline=None)
@given(workers=st.lists(_VIEW, max_size=8), priority=st.sampled_from(list(Priority)),
       current=st.one_of(st.none(), st.integers(0, 30)), time_left_s=st.floats(0.01, 60),
       region=st.sampled_from(["eu", "us"]), strict=st.booleans())
def test_hybrid_invariants(workers: list[WorkerView], priority: Priority, current: int | None,
                           time_left_s: float, region: str, strict: bool) -> None:
    by_id = {w.worker_id: w for w in workers}
    request = req(None if current is None else f"w{current}", priority, region,
                  time_left_s=time_left_s, strict=strict)
    decision = HybridPolicy().decide(request, by_id, 0.0)
    if priority >= HIGH:
        assert not isinstance(decision, Shed)  # high and critical are never shed
    if isinstance(decision, Route):
        chosen = by_id[decision.worker_id]
        assert chosen.breaker != "open"
        assert not strict or chosen.region == region
        if chosen.breaker == "half_open":
            assert priority <= NORMAL and chosen.probe_slots > 0
        if decision.worker_id != request.current:
            assert chosen.liveness == "up"  # suspects get no new cameras


@pytest.mark.parametrize("policy", ["hybrid", "round_robin", "least_loaded"])
def test_a_camera_naming_a_model_goes_only_to_workers_that_serve_it(policy: str) -> None:
    workers = pool(view("plain"), view("yolo", util=0.9, models=frozenset({"yolox_nano"})))
    named = replace(req(), model="yolox_nano")
    decide = make_policy(policy).decide  # type: ignore[arg-type]
    assert decide(named, workers, 0.0) == Route("yolo", "placed")
    assert decide(replace(req(), model="other"), workers, 0.0) == Delay(0.25, "no_worker")
    # a camera naming none is served by any worker of its capability
    assert isinstance(decide(req(), workers, 0.0), Route)
