"""Camera leases between ingest nodes: the fence a pipeline checks, and the fair-share planner.

Pure. Several ingest nodes share the cameras through leases in PostgreSQL (lease_store.py).
Every node runs the same planner over the same view of the database (live nodes, unexpired
leases, enabled cameras) and takes only its own part of the plan, so nodes agree on who takes
what without talking to each other; the database's conditional acquire settles the races that
differing views (read at slightly different times) still leave.

The local deadline is what keeps two nodes from reading a camera at once: a renewal is timed
from the moment it was *sent*, so the database's expiry (set by a statement that ran later) is
never earlier in real time than the holder's own deadline plus the margin. The old holder stops
first; nobody can acquire before the database says the lease expired.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class Fence(Protocol):
    """What a pipeline holds while it may read a camera and publish its batches."""

    camera_id: str
    node_id: str
    token: int

    def held(self) -> bool:
        """False once the local deadline passed without renewal, or after release or loss."""
        ...


class LeaseLost(Exception):
    """The node no longer holds the camera's lease (expired, taken over or released)."""

    def __init__(self, camera_id: str, token: int) -> None:
        super().__init__(f"camera {camera_id}: lease (token {token}) is no longer held")
        self.camera_id, self.token = camera_id, token


Ending = Literal["released", "lost", "lapsed"]


def validity_margin_s(ttl_s: float) -> float:
    """How long before the database's expiry a holder treats its lease as gone: room for the
    watchdog's tick and the RTSP TEARDOWN, and for the two clocks running at slightly
    different rates."""
    return min(1.0, ttl_s / 4)


@dataclass(eq=False)
class LocalLease:
    """One camera's lease as its holder sees it; satisfies `Fence`."""

    camera_id: str
    node_id: str
    token: int
    valid_until_mono: float
    clock: Callable[[], float] = time.monotonic
    ended: Ending | None = None

    def held(self) -> bool:
        return self.ended is None and self.clock() < self.valid_until_mono

    def renewed(self, sent_at_mono: float, validity_s: float) -> None:
        # A renewal that comes back after the deadline does not revive the lease: whoever saw
        # held() turn False has already stopped reading; the planner takes it again, with a
        # new token, if it still wants it.
        if self.held():
            self.valid_until_mono = max(self.valid_until_mono, sent_at_mono + validity_s)
        elif self.ended is None:
            self.ended = "lapsed"

    def end(self, why: Ending) -> None:
        if self.ended is None:
            self.ended = why


@dataclass(frozen=True)
class NodeInfo:
    id: str
    capacity: int
    draining: bool = False


@dataclass(frozen=True)
class View:
    """What a node read from the database in one round."""

    cameras: frozenset[str]  # enabled
    nodes: tuple[NodeInfo, ...]  # live (unexpired rows)
    leases: Mapping[str, str]  # camera id -> node id, unexpired leases only


@dataclass(frozen=True)
class Plan:
    target: int
    acquire: tuple[str, ...]
    release: tuple[str, ...]
    # Reported by one node only (the reporter), empty elsewhere: see `plan_round`.
    unassigned: tuple[str, ...] = ()
    reporter: bool = False


def rank(camera_id: str) -> bytes:
    """A stable pseudo-random order of cameras. Python's hash() is salted per process, so two
    nodes would disagree; blake2b is the same everywhere."""
    return hashlib.blake2b(camera_id.encode(), digest_size=8).digest()


def fair_targets(n_cameras: int, nodes: Sequence[NodeInfo]) -> dict[str, int]:
    """How many cameras each node should hold: as even as possible (water-filling), never above
    a node's capacity, summing to min(cameras, total capacity). A draining node gets 0. The
    remainder of an uneven split goes to the lowest node ids, so every node computes the same."""
    targets = {n.id: 0 for n in nodes}
    active = sorted((n for n in nodes if not n.draining), key=lambda n: (n.capacity, n.id))
    remaining = min(n_cameras, sum(max(0, n.capacity) for n in active))
    for i, node in enumerate(active):
        share = remaining // (len(active) - i)
        if max(0, node.capacity) <= share:
            targets[node.id] = max(0, node.capacity)
            remaining -= targets[node.id]
            continue
        # This node and all after it have room for more than an even split: split evenly.
        rest = sorted(n.id for n in active[i:])
        extra = remaining - share * len(rest)
        for j, node_id in enumerate(rest):
            targets[node_id] = share + (1 if j < extra else 0)
        break
    return targets


def plan_round(
    me: str, view: View, held: Collection[str], leaving: Collection[str] = (),
    max_releases: int = 1,
) -> Plan:
    """This node's part of the plan for one round.

    `held`: cameras whose lease this node holds and keeps running (they count toward its
    target); `leaving`: cameras it is still stopping (not free, not counted). A lease the
    database still shows as this node's but that the node no longer holds locally (it lapsed)
    is free for this node to take again.
    """
    alive = {n.id for n in view.nodes}
    if me not in alive:
        # Our own row is not visible (not yet written, or expired): we are not in the plan the
        # others compute, so taking cameras now would collide with them.
        return Plan(0, (), ())
    cameras = view.cameras
    holdings: dict[str, set[str]] = {n: set() for n in alive}
    occupied: set[str] = set(leaving) | set(held)
    for camera_id, node_id in view.leases.items():
        if node_id == me:
            continue
        occupied.add(camera_id)
        if node_id in holdings and camera_id in cameras:
            holdings[node_id].add(camera_id)
    holdings[me] = set(held) & cameras
    targets = fair_targets(len(cameras), view.nodes)
    free = sorted(cameras - occupied, key=rank)
    acquire: dict[str, tuple[str, ...]] = {}
    release: dict[str, tuple[str, ...]] = {}
    for node_id in sorted(alive):
        have, target = holdings[node_id], targets[node_id]
        if len(have) > target:
            # A few per round: a node that just joined is not yet in everybody's view, and
            # cameras moving in small steps keep a wrong view from moving many at once.
            surplus = min(max(1, max_releases), len(have) - target)
            release[node_id] = tuple(sorted(have, key=rank, reverse=True)[:surplus])
        elif len(have) < target:
            take = target - len(have)
            acquire[node_id], free = tuple(free[:take]), free[take:]
    reporter = me == min(alive)
    return Plan(
        target=targets[me],
        acquire=acquire.get(me, ()),
        release=release.get(me, ()),
        # Free cameras left after every node's room is filled: nobody can take them now.
        unassigned=tuple(sorted(free)) if reporter else (),
        reporter=reporter,
    )


def unassigned_reason(nodes: Sequence[NodeInfo], n_cameras: int) -> str:
    active = [n for n in nodes if not n.draining]
    capacity = sum(max(0, n.capacity) for n in active)
    draining = len(nodes) - len(active)
    suffix = f", {draining} draining" if draining else ""
    return (f"all {len(active)} ingest nodes are at capacity (total {capacity}{suffix}); "
            f"{n_cameras} cameras enabled, {max(0, n_cameras - capacity)} left without a node: "
            "add an ingest node or raise INGEST_CAPACITY")


def next_round_in_s(poll_s: float, foreign_expiries_s: Collection[float],
                    slack_s: float = 0.05) -> float:
    """When the planner should look again: after its poll interval, or just after the earliest
    lease of another node expires (a dead node's cameras are then free: failover takes the
    lease time, not the lease time plus a poll)."""
    soonest = min(foreign_expiries_s, default=math.inf) + slack_s
    return max(slack_s, min(poll_s, soonest))
