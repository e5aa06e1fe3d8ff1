"""The balancer's fleet view (breakers fed from heartbeat counters, WorkerViews for the
policy) and the camera holdings behind `held_per_s`."""

from __future__ import annotations

from typing import Any

import pytest

from balancer.breaker import BreakerConfig
from balancer.fleet import Fleet
from balancer.holdings import Holdings, Rates
from balancer.liveness import Liveness, LivenessConfig
from balancer.policy import BatchRequest, HybridPolicy, Route
from contracts.broker import Priority
from contracts.messages import WorkerHeartbeat

CONFIG = BreakerConfig(min_volume=4, window=8, slow_s=1.0, cool_down_s=5.0, probes=2)


def beat(worker_id: str = "w1", boot_id: str = "b1", **kw: Any) -> WorkerHeartbeat:
    fields: dict[str, Any] = {"worker_id": worker_id, "boot_id": boot_id,
                              "queue": f"frames.worker.{worker_id}", "sent_at": 1.0,
                              "heartbeat_interval_s": 0.5, "capacity_per_s": 10.0}
    return WorkerHeartbeat(**(fields | kw))


def no_load(_: str) -> Rates:
    return (0.0, 0.0, 0.0, 0.0)


def fleet() -> Fleet:
    return Fleet(Liveness(LivenessConfig(mode="phi", acceptable_pause_s=1.0)), CONFIG, 7.0)


def test_the_first_beat_is_a_baseline_and_deltas_feed_the_breaker() -> None:
    f = fleet()
    f.observe(beat(batches_failed=1000), 0.0)  # hours of history before we started
    assert f.breaker_states(0.0) == {"w1": "closed"}
    f.observe(beat(batches_failed=1003), 0.5)
    assert f.breaker_states(0.5) == {"w1": "closed"}  # 3 < min_volume
    changes = f.observe(beat(batches_failed=1003, batches_timed_out=1), 1.0)
    assert f.breaker_states(1.0) == {"w1": "open"}  # a timeout counts as a failure
    assert [(c.worker_id, c.from_state, c.to_state) for c in changes.breakers] == [
        ("w1", "closed", "open")]


def test_slow_successes_open_the_breaker_and_data_errors_do_not() -> None:
    f = fleet()
    f.observe(beat(), 0.0)
    f.observe(beat(batches_data_errors=50), 0.5)
    assert f.breaker_states(0.5) == {"w1": "closed"}
    f.observe(beat(batches_ok=4, processing_ema_s=3.0), 1.0)  # crawling: 3 s > slow_s
    assert f.breaker_states(1.0) == {"w1": "open"}


def test_open_then_half_open_by_the_clock_then_probes_close_it() -> None:
    f = fleet()
    f.observe(beat(), 0.0)
    f.observe(beat(batches_failed=4), 0.5)
    seen = []
    for tenth in range(6, 61):  # keep beating through the cool-down, no new outcomes
        t = tenth / 10
        seen += f.poll(t).breakers
        if tenth % 5 == 0:
            seen += f.observe(beat(batches_failed=4), t).breakers
    assert f.breaker_states(t) == {"w1": "half_open"}
    # Announced once, by the clock, at the end of the 5 s cool-down.
    assert [(c.to_state, round(c.at_mono, 1)) for c in seen] == [("half_open", 5.5)]
    views = f.views(t, no_load)
    assert views["w1"].breaker == "half_open" and views["w1"].probe_slots == 2
    f.routed("w1", t, probe=True)
    assert f.views(t, no_load)["w1"].probe_slots == 1
    f.observe(beat(batches_failed=4, batches_ok=2, processing_ema_s=0.1), t + 0.5)
    assert f.breaker_states(t + 0.5) == {"w1": "closed"}


def test_a_new_incarnation_counts_from_zero() -> None:
    f = fleet()
    f.observe(beat(batches_ok=100), 0.0)
    f.observe(beat(boot_id="b2", batches_failed=4), 0.5)  # restarted: 4 fresh failures
    assert f.breaker_states(0.5) == {"w1": "open"}


def test_views_estimate_backlog_and_fall_back_to_the_default_capacity() -> None:
    f = fleet()
    f.observe(beat(queue_depth=6, in_flight=2, processing_ema_s=0.2), 0.0)
    f.observe(beat("w2", capacity_per_s=0.0), 0.0)
    f.routed("w1", 0.0)
    f.routed("w1", 0.0)
    views = f.views(0.3, lambda w: (0.0, 1.5, 0.0, 0.0) if w == "w1" else no_load(w))
    # 6 + 2 + 2 routed - 10/s x 0.3 s drained
    assert views["w1"].backlog == 7
    assert views["w1"].latency_ema_s == 0.2 and views["w1"].held_per_s[1] == 1.5
    assert views["w2"].capacity_per_s == 7.0
    f.observe(beat(queue_depth=1), 0.5)  # a beat resets what was routed since
    assert f.views(0.5, no_load)["w1"].backlog == 1


def test_down_workers_leave_the_views_and_lose_their_breaker() -> None:
    f = fleet()
    for i in range(10):
        f.observe(beat(), i * 0.5)
    f.observe(beat(batches_failed=4), 5.0)
    changes = f.poll(30.0)
    assert [e.kind for e in changes.liveness] == ["worker.down"]
    assert f.views(30.0, no_load) == {} and f.breaker_states(30.0) == {}
    f.observe(beat(), 31.0)  # it comes back: a fresh breaker
    assert f.breaker_states(31.0) == {"w1": "closed"}


def test_a_stopping_worker_is_down_at_once() -> None:
    f = fleet()
    f.observe(beat(), 0.0)
    changes = f.observe(beat(stopping=True), 0.5)
    assert [(e.kind, e.reason) for e in changes.liveness] == [("worker.down", "draining")]
    assert f.views(0.5, no_load) == {}


def test_jitter_within_the_pause_keeps_the_worker_up_in_views() -> None:
    f = fleet()
    t = 0.0
    for i in range(40):
        t += 0.5 + (0.9 if i % 3 == 0 else 0.0)  # some beats late by most of the 1 s pause
        f.observe(beat(), t)
        for dt in (0.2, 0.6, 1.0, 1.39):
            assert f.views(t + dt, no_load)["w1"].liveness == "up"
    assert not f.poll(t + 1.39).liveness


def test_snapshot_lists_liveness_and_breaker() -> None:
    f = fleet()
    f.observe(beat(queue_depth=3), 0.0)
    (snap,) = f.snapshot(0.1)
    assert snap["worker_id"] == "w1" and snap["liveness"] == "up"
    assert snap["breaker"]["state"] == "closed" and snap["queue_depth"] == 3


def test_holdings_learn_rates_from_capture_times_and_follow_moves() -> None:
    h = Holdings(initial_rate_per_s=1.0, alpha=1.0)
    h.load({"c1": "w1"})
    assert h.observe("c1", Priority.NORMAL, 1, 0, 100.0) == 1.0
    assert h.held("w1") == (0.0, 1.0, 0.0, 0.0)
    assert h.observe("c1", Priority.NORMAL, 1, 2, 101.0) == pytest.approx(2.0)  # 0.5 s/batch
    assert h.observe("c1", Priority.NORMAL, 1, 1, 100.5) == pytest.approx(2.0)  # old: no change
    h.place("c1", "w2")
    assert h.held("w1") == (0.0, 0.0, 0.0, 0.0)
    assert h.held("w2") == pytest.approx((0.0, 2.0, 0.0, 0.0))
    h.observe("c1", Priority.HIGH, 1, 3, 101.5)
    assert h.held("w2") == pytest.approx((0.0, 0.0, 2.0, 0.0))
    assert h.holder("c1") == "w2" and h.cameras_of("w2") == ["c1"]
    h.load({})
    assert h.held("w2") == (0.0, 0.0, 0.0, 0.0)


def test_fleet_views_drive_the_hybrid_policy_away_from_an_open_breaker() -> None:
    f = fleet()
    for wid in ("w1", "w2"):
        f.observe(beat(wid), 0.0)
    f.observe(beat("w1", batches_failed=4), 0.5)
    f.observe(beat("w2"), 0.5)
    request = BatchRequest("c1", "motion", "local", Priority.NORMAL, 10.0, current="w1")
    decision = HybridPolicy().decide(request, f.views(0.5, no_load), 0.5)
    assert decision == Route("w2", "moved")
