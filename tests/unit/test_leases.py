"""The lease planner and the local fence: fair shares, agreement between nodes, convergence,
refusal beyond capacity; a lease that lapses locally stays lapsed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.leases import (
    LocalLease,
    NodeInfo,
    View,
    fair_targets,
    next_round_in_s,
    plan_round,
    rank,
    unassigned_reason,
    validity_margin_s,
)

NODE_IDS = ("n1", "n2", "n3", "n4", "n5")
nodes_st = st.lists(
    st.builds(NodeInfo, st.sampled_from(NODE_IDS), st.integers(0, 8), st.booleans()),
    min_size=1, max_size=5, unique_by=lambda n: n.id,
)


@pytest.mark.parametrize(("cameras", "capacities", "expected"), [
    (10, {"a": 10, "b": 10}, {"a": 5, "b": 5}),
    (11, {"a": 10, "b": 10}, {"a": 6, "b": 5}),  # the remainder goes to the lowest id
    (10, {"a": 3, "b": 10}, {"a": 3, "b": 7}),  # a capped node's rest goes to the others
    (10, {"a": 3, "b": 4}, {"a": 3, "b": 4}),  # not enough room: 3 cameras stay unassigned
    (0, {"a": 3}, {"a": 0}),
    (7, {"c": 5, "a": 1, "b": 5}, {"a": 1, "b": 3, "c": 3}),
])
def test_fair_targets_examples(cameras: int, capacities: dict[str, int],
                               expected: dict[str, int]) -> None:
    assert fair_targets(cameras, [NodeInfo(k, v) for k, v in capacities.items()]) == expected


@settings(max_examples=300, deadline=None)
@given(nodes=nodes_st, n_cameras=st.integers(0, 40), data=st.data())
def test_fair_targets_are_even_capped_and_order_free(
    nodes: list[NodeInfo], n_cameras: int, data: st.DataObject
) -> None:
    targets = fair_targets(n_cameras, nodes)
    active = [n for n in nodes if not n.draining]
    assert sum(targets.values()) == min(n_cameras, sum(n.capacity for n in active))
    for node in nodes:
        assert 0 <= targets[node.id] <= (0 if node.draining else node.capacity)
    for a in active:
        for b in active:
            # Uneven by more than one only where the smaller one is full.
            if targets[a.id] < targets[b.id] - 1:
                assert targets[a.id] == a.capacity
    assert fair_targets(n_cameras, data.draw(st.permutations(nodes))) == targets


def _random_view(data: st.DataObject, nodes: list[NodeInfo], n_cameras: int) -> View:
    cameras = [f"cam{i}" for i in range(n_cameras)]
    holders = st.sampled_from([None, "dead", *(n.id for n in nodes)])
    leases: dict[str, str] = {}
    for camera in cameras:
        holder = data.draw(holders)
        if holder is not None:
            leases[camera] = holder
    return View(frozenset(cameras), tuple(nodes), leases)


@settings(max_examples=300, deadline=None)
@given(nodes=nodes_st, n_cameras=st.integers(0, 30), max_releases=st.integers(1, 3),
       data=st.data())
def test_nodes_reading_one_view_never_plan_the_same_camera(
    nodes: list[NodeInfo], n_cameras: int, max_releases: int, data: st.DataObject
) -> None:
    view = _random_view(data, nodes, n_cameras)
    planned: dict[str, str] = {}
    for node in nodes:
        held = {c for c, n in view.leases.items() if n == node.id}
        plan = plan_round(node.id, view, held, max_releases=max_releases)
        assert set(plan.release) <= held and len(plan.release) <= max_releases
        for camera in plan.acquire:
            assert camera not in view.leases, "planned to take a leased camera"
            assert camera not in planned, f"{camera} planned for {planned.get(camera)} too"
            planned[camera] = node.id
        after = len(held) - len(plan.release) + len(plan.acquire)
        assert after <= max(len(held), plan.target)
        if plan.acquire:
            assert after <= node.capacity and not node.draining
        assert plan.reporter == (node.id == min(n.id for n in nodes))
        assert plan.unassigned == () or plan.reporter


def test_a_node_missing_from_the_view_plans_nothing() -> None:
    view = View(frozenset({"c1", "c2"}), (NodeInfo("a", 5),), {})
    assert plan_round("b", view, set()).acquire == ()


def test_a_lease_the_database_shows_as_ours_but_that_lapsed_locally_can_be_taken_again() -> None:
    view = View(frozenset({"c1"}), (NodeInfo("a", 5),), {"c1": "a"})
    assert plan_round("a", view, held=set()).acquire == ("c1",)
    assert plan_round("a", view, held=set(), leaving={"c1"}).acquire == ()  # still stopping


Event = tuple[str, str]
events_st = st.lists(
    st.tuples(st.sampled_from(["round", "round", "round", "join", "die"]),
              st.sampled_from(NODE_IDS)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(capacities=st.lists(st.integers(0, 8), min_size=5, max_size=5),
       n_cameras=st.integers(0, 25), max_releases=st.integers(1, 3), events=events_st)
def test_rounds_in_any_order_stay_within_capacity_and_converge_to_fair_shares(
    capacities: list[int], n_cameras: int, max_releases: int, events: list[Event]
) -> None:
    """A simulated database (a camera -> node dict with atomic conditional acquire) and nodes
    that join, die (their leases expire) and run rounds in any order; then membership holds
    still and every node runs rounds until the shares settle."""
    capacity = dict(zip(NODE_IDS, capacities, strict=True))
    cameras = frozenset(f"cam{i}" for i in range(n_cameras))
    live: set[str] = {"n1"}
    leases: dict[str, str] = {}

    def view() -> View:
        nodes = tuple(NodeInfo(n, capacity[n]) for n in sorted(live))
        return View(cameras, nodes, dict(leases))

    def run_round(node: str) -> tuple[str, ...]:
        held = {c for c, n in leases.items() if n == node}
        plan = plan_round(node, view(), held, max_releases=max_releases)
        for camera in plan.release:
            del leases[camera]
        for camera in plan.acquire:
            leases.setdefault(camera, node)  # the conditional upsert: only a free camera
        assert sum(1 for n in leases.values() if n == node) <= capacity[node]
        return plan.unassigned

    for kind, node in events:
        if kind == "join":
            live.add(node)
        elif kind == "die" and len(live) > 1:
            live.discard(node)
            leases = {c: n for c, n in leases.items() if n != node}
        elif kind == "round" and node in live:
            run_round(node)

    unassigned: tuple[str, ...] = ()
    for _ in range(n_cameras + 3):
        for node in sorted(live):
            reported = run_round(node)
            if node == min(live):
                unassigned = reported
    targets = fair_targets(n_cameras, view().nodes)
    counts = {n: sum(1 for m in leases.values() if m == n) for n in live}
    assert counts == targets
    total = sum(capacity[n] for n in live)
    assert len(leases) == min(n_cameras, total)
    assert set(unassigned) == cameras - set(leases)
    assert len(unassigned) == max(0, n_cameras - total)


def test_unassigned_reason_says_how_many_nodes_and_how_much_room() -> None:
    reason = unassigned_reason([NodeInfo("a", 3), NodeInfo("b", 4), NodeInfo("c", 9, True)], 10)
    assert reason.startswith("all 2 ingest nodes are at capacity (total 7, 1 draining)")
    assert "10 cameras enabled, 3 left without a node" in reason


def test_rank_is_stable_across_processes() -> None:
    # blake2b, not the per-process salted hash(): every node must sort cameras alike.
    assert rank("cam1").hex() == "fa1534dbed3a1924"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_is_held_until_its_local_deadline_and_renewals_run_from_when_they_were_sent(
) -> None:
    clock = FakeClock()
    validity = 6.0 - validity_margin_s(6.0)
    assert validity == 5.0
    lease = LocalLease("c1", "a", 1, clock.now + validity, clock)
    clock.now = 103.0
    lease.renewed(sent_at_mono=102.0, validity_s=validity)  # answered a second later
    assert lease.valid_until_mono == 107.0
    clock.now = 106.99
    assert lease.held()
    clock.now = 107.0
    assert not lease.held()


def test_a_renewal_answered_after_the_deadline_does_not_revive_the_lease() -> None:
    clock = FakeClock()
    lease = LocalLease("c1", "a", 1, 105.0, clock)
    clock.now = 105.5
    lease.renewed(sent_at_mono=104.9, validity_s=5.0)
    assert not lease.held() and lease.ended == "lapsed"
    clock.now = 104.0  # even a clock that went back cannot revive it
    assert not lease.held()


def test_a_released_or_lost_lease_is_not_held_and_keeps_its_first_ending() -> None:
    clock = FakeClock()
    lease = LocalLease("c1", "a", 1, 200.0, clock)
    lease.end("lost")
    lease.end("released")
    assert not lease.held() and lease.ended == "lost"
    lease.renewed(clock.now, 5.0)
    assert not lease.held()


@pytest.mark.parametrize(("poll", "expiries", "expected"), [
    (2.0, [], 2.0),
    (2.0, [0.5, 3.0], 0.55),  # a dead node's lease expires sooner than the next poll
    (2.0, [-1.0], 0.05),
    (0.5, [4.0], 0.5),
])
def test_the_planner_looks_again_just_after_the_next_foreign_expiry(
    poll: float, expiries: list[float], expected: float
) -> None:
    assert next_round_in_s(poll, expiries) == pytest.approx(expected)
