"""What the active balancer records about the fleet: events and verdicts from the fleet's
changes, when refreshes, sweeps and prunes happen, and that a standby records nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from balancer.breaker import BreakerConfig
from balancer.fleet import Changes, Fleet
from balancer.liveness import Liveness, LivenessConfig
from balancer.worker_state import (
    SWEEP_REFRESHES,
    Record,
    Recorder,
    Verdict,
    WorkerEvent,
    event_body,
    merge,
    record_of,
    refresh_of,
    wall,
)
from contracts.messages import WorkerHeartbeat
from contracts.tables import WORKER_EVENT_KINDS

CONFIG = BreakerConfig(min_volume=4, window=8, cool_down_s=5.0, probes=2)
WALL_OFFSET = 1_700_000_000.0  # wall = mono + this, in these tests


def beat(worker_id: str = "w1", boot_id: str = "b1", **kw: Any) -> WorkerHeartbeat:
    fields: dict[str, Any] = {"worker_id": worker_id, "boot_id": boot_id,
                              "queue": f"frames.worker.{worker_id}", "sent_at": 1.0,
                              "heartbeat_interval_s": 0.5}
    return WorkerHeartbeat(**(fields | kw))


def fleet() -> Fleet:
    return Fleet(Liveness(LivenessConfig(mode="phi", acceptable_pause_s=1.0)), CONFIG)


class Clock:
    def __init__(self) -> None:
        self.mono = 0.0

    def __call__(self) -> tuple[float, float]:
        return self.mono, self.mono + WALL_OFFSET


class Setup:
    def __init__(self, active: bool = True, queue_size: int = 100) -> None:
        self.fleet = fleet()
        self.clock = Clock()
        self.active = active
        self.queue: asyncio.Queue[Record] = asyncio.Queue(queue_size)
        self.recorder = Recorder(self.fleet, self.queue, lambda: self.active, refresh_s=1.0,
                                 retention_s=3600.0, prune_s=10.0, clock=self.clock)
        self.fleet.listener = self.recorder.on_changes

    def beat(self, at_mono: float, **kw: Any) -> None:
        self.clock.mono = at_mono
        self.fleet.observe(beat(**kw), at_mono)

    def drain(self) -> list[Record]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


def test_wall_places_a_monotonic_instant_on_the_wall_clock() -> None:
    assert wall(7.5, 10.0, 1000.0) == 997.5


def test_a_new_worker_gives_an_up_event_and_its_verdict() -> None:
    s = Setup()
    s.beat(2.0)
    (record,) = s.drain()
    assert record.events == (WorkerEvent("w1", "b1", "worker.up", "heartbeat",
                                         2.0 + WALL_OFFSET),)
    (verdict,) = record.verdicts
    assert verdict.liveness == "up" and verdict.at == 2.0 + WALL_OFFSET
    assert verdict.breaker == {"state": "closed", "failure_rate": 0.0, "calls": 0,
                               "failures": 0, "opened_at": None,
                               "probes": {"admitted": 0, "succeeded": 0}}


def test_breaker_transitions_become_events_with_the_rates_and_a_wall_opened_at() -> None:
    s = Setup()
    s.beat(0.0)
    s.beat(0.5, batches_failed=4)  # min volume 4, all failed: open
    s.drain()
    for i in range(2, 11):  # beats to 5.0 without news
        s.beat(i * 0.5, batches_failed=4)
    assert s.drain() == []  # nothing changed: nothing to write
    s.clock.mono = 5.6
    s.fleet.poll(5.6)  # cool-down 5 s after opening at 0.5: half-open
    (record,) = s.drain()
    (event,) = record.events
    assert event.kind == "breaker.half_open" and event.boot_id == "b1"
    # The window that opened it, kept until it closes.
    assert event.details == {"from": "open", "failure_rate": 1.0, "calls": 4, "failures": 4}
    assert event.at == 5.6 + WALL_OFFSET
    (verdict,) = record.verdicts
    assert verdict.breaker is not None and verdict.breaker["state"] == "half_open"
    assert verdict.breaker["opened_at"] == pytest.approx(0.5 + WALL_OFFSET)


def test_open_event_carries_the_failure_rate_that_opened_it() -> None:
    s = Setup()
    s.beat(0.0)
    s.beat(0.5, batches_failed=1, batches_ok=2)  # below the minimum volume of 4
    s.beat(1.0, batches_failed=4, batches_ok=2)  # the 4th outcome, a failure, opens it
    events = [e for r in s.drain() for e in r.events]
    assert [e.kind for e in events] == ["worker.up", "breaker.open"]
    assert events[1].details == {"from": "closed", "failure_rate": 0.5, "calls": 4,
                                 "failures": 2}


def test_a_silent_worker_goes_suspect_then_down_and_down_forgets_its_breaker() -> None:
    s = Setup()
    for i in range(5):
        s.beat(i * 0.5)
    s.drain()
    kinds: list[str] = []
    verdicts: list[Verdict] = []
    t = 2.0
    while "worker.down" not in kinds:
        t += 0.05
        s.clock.mono = t
        s.fleet.poll(t)
        for r in s.drain():
            kinds += [e.kind for e in r.events]
            verdicts += r.verdicts
    assert kinds == ["worker.suspect", "worker.down"]
    assert [(v.liveness, v.breaker is None) for v in verdicts] == [("suspect", False),
                                                                   ("down", True)]


def test_a_draining_worker_is_down_at_once() -> None:
    s = Setup()
    s.beat(0.0)
    s.drain()
    s.beat(0.5, stopping=True)
    (record,) = s.drain()
    assert [(e.kind, e.reason) for e in record.events] == [("worker.down", "draining")]
    assert record.verdicts == (Verdict("w1", "down", None, 0.5 + WALL_OFFSET),)


def test_a_standby_records_nothing() -> None:
    s = Setup(active=False)
    s.beat(0.0)
    s.beat(0.5, batches_failed=10)
    s.recorder.tick()
    assert s.drain() == []


def test_refresh_at_activation_then_every_refresh_s_and_sweep_after_the_grace() -> None:
    s = Setup(active=False)
    s.beat(0.0)
    s.beat(0.3, worker_id="w2")
    s.active = True
    s.clock.mono = 0.4
    s.recorder.tick()
    (first,) = s.drain()
    assert [v.worker_id for v in first.verdicts] == ["w1", "w2"]
    assert first.sweep_before is None  # not yet: a live worker may not have been heard
    assert first.prune_before == pytest.approx(0.4 + WALL_OFFSET - 3600)
    s.clock.mono = 1.3
    s.recorder.tick()
    assert s.drain() == []  # within refresh_s
    sweeps = []
    for step in range(1, 8):
        s.clock.mono = 0.4 + step * 0.5
        s.beat(s.clock.mono)
        s.beat(s.clock.mono, worker_id="w2")
        s.recorder.tick()
        sweeps += [r.sweep_before for r in s.drain() if r.verdicts and not r.events]
    assert len(sweeps) == 3  # at 1.4, 2.4, 3.4
    assert sweeps[:2] == [None, None]
    assert sweeps[2] == pytest.approx(3.4 + WALL_OFFSET - SWEEP_REFRESHES * 1.0)
    s.active = False
    s.recorder.tick()
    s.active = True
    s.recorder.tick()
    (again,) = s.drain()
    assert again.sweep_before is None and again.prune_before is None  # pruned 10 s apart


def test_a_full_queue_drops_and_counts_rather_than_block() -> None:
    s = Setup(queue_size=1)
    s.beat(0.0)
    assert not s.recorder.offer(refresh_of({}, 0.0, 0.0, sweep_before=1.0))
    assert s.queue.qsize() == 1
    assert s.recorder.offer(Record())  # nothing to write is never queued


def test_merge_keeps_events_in_order_and_the_last_verdict_per_worker() -> None:
    e1 = WorkerEvent("w1", "b", "worker.up", "heartbeat", 1.0)
    e2 = WorkerEvent("w1", "b", "worker.down", "silence", 2.0)
    v1, v2 = Verdict("w1", "up", {}, 1.0), Verdict("w1", "down", None, 2.0)
    v3 = Verdict("w2", "up", {}, 1.5)
    got = merge([Record((e1,), (v1, v3), prune_before=5.0), Record((e2,), (v2,), 9.0, 4.0)])
    assert got == Record((e1, e2), (v3, v2), 9.0, 5.0)


def test_record_of_without_judgement_is_down() -> None:
    changes = Changes()
    assert record_of(changes, {}, 0.0, 0.0) == Record()


def test_event_kinds_are_the_tables_and_the_message_is_json() -> None:
    kinds = {f"breaker.{s}" for s in ("open", "half_open", "closed")}
    kinds |= {"worker.up", "worker.suspect", "worker.down"}
    assert kinds == set(WORKER_EVENT_KINDS)
    body = json.loads(event_body(7, WorkerEvent("w1", "b", "breaker.open", "", 3.5,
                                                {"from": "closed"}), "b1"))
    assert body == {"schema_version": 1, "id": 7, "worker_id": "w1", "boot_id": "b",
                    "kind": "breaker.open", "reason": "", "at": 3.5,
                    "details": {"from": "closed"}, "judged_by": "b1"}
