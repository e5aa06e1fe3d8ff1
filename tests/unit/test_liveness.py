from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.liveness import Liveness, LivenessConfig, LivenessEvent, phi
from contracts.messages import WorkerHeartbeat


def beat(worker_id: str = "w1", boot_id: str = "b1", stopping: bool = False) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker_id=worker_id, boot_id=boot_id, queue=f"q.{worker_id}",
                           sent_at=1.0, stopping=stopping)


def kinds(events: list[LivenessEvent]) -> list[tuple[str, str, float, str]]:
    return [(e.kind, e.worker_id, e.at_mono, e.reason) for e in events]


def steady(live: Liveness, until_s: float, interval_s: float = 1.0) -> None:
    t = 0.0
    while t <= until_s + 1e-9:
        live.observe(beat(), t)
        t += interval_s


def test_phi_is_log10_2_at_the_mean_and_grows_with_silence() -> None:
    assert phi(4.0, 4.0, 0.1) == pytest.approx(math.log10(2))
    values = [phi(s, 4.0, 0.1) for s in (0.0, 3.9, 4.0, 4.2, 4.5, 10.0, 1e6)]
    assert values == sorted(values)
    assert math.isfinite(values[-1])  # no overflow, no log(0)


@pytest.mark.parametrize(
    ("silence_s", "state"),
    [(0.5, "up"), (3.9, "up"), (4.2, "up"), (4.4, "suspect"), (4.6, "down"), (60.0, "down")],
)
def test_phi_states_after_steady_one_second_beats(silence_s: float, state: str) -> None:
    # History: 1 s intervals, std floored at 0.1 s, mean raised by the 3 s pause.
    live = Liveness(LivenessConfig(mode="phi"))
    steady(live, 10.0)
    assert live.state("w1", 10.0 + silence_s) == state


def test_expiry_transitions_are_emitted_once_with_worker_and_time() -> None:
    live = Liveness(LivenessConfig(mode="expiry", suspect_after_s=2, timeout_s=5))
    assert kinds(live.observe(beat(), 0.0)) == [("worker.up", "w1", 0.0, "heartbeat")]
    assert live.poll(1.0) == []
    assert kinds(live.poll(2.5)) == [("worker.suspect", "w1", 2.5, "silence")]
    assert live.poll(3.0) == []
    assert set(live.live(3.0)) == {"w1"}  # a suspect keeps its cameras ...
    assert live.suspects(3.0) == {"w1"}  # ... but is known to be one
    assert kinds(live.poll(5.5)) == [("worker.down", "w1", 5.5, "silence")]
    assert live.poll(9.0) == []
    assert live.live(9.0) == {}
    assert live.state("w1", 9.0) == "down"


def test_a_heartbeat_heals_a_suspect_and_a_dead_worker_comes_back_as_up() -> None:
    live = Liveness(LivenessConfig(mode="expiry", suspect_after_s=2, timeout_s=5))
    live.observe(beat(), 0.0)
    live.poll(3.0)
    assert kinds(live.observe(beat(), 3.5)) == [("worker.up", "w1", 3.5, "heartbeat")]
    assert live.observe(beat(), 4.0) == []  # up to up is no transition
    live.poll(20.0)
    assert kinds(live.observe(beat(), 21.0)) == [("worker.up", "w1", 21.0, "heartbeat")]


def test_stopping_worker_is_down_at_once_as_draining() -> None:
    live = Liveness()
    live.observe(beat(), 0.0)
    events = live.observe(beat(stopping=True), 0.5)
    assert kinds(events) == [("worker.down", "w1", 0.5, "draining")]
    assert live.live(0.5) == {}
    assert live.poll(100.0) == []
    assert live.observe(beat("other", stopping=True), 1.0) == []  # unknown: nothing to say


def test_new_boot_resets_history() -> None:
    config = LivenessConfig(mode="phi", acceptable_pause_s=0.0, first_interval_s=1.0)
    live = Liveness(config)
    for i in range(20):
        live.observe(beat(), i * 0.1)  # the old incarnation beat every 100 ms
    assert live.state("w1", 1.9 + 0.8) == "down"
    events = live.observe(beat(boot_id="b2"), 2.0)
    assert kinds(events) == [("worker.up", "w1", 2.0, "restarted")]
    assert events[0].boot_id == "b2"
    # The new incarnation is judged on the bootstrap (1 s expected), not on 100 ms.
    assert live.state("w1", 2.8) == "up"


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="suspect_after_s"):
        LivenessConfig(suspect_after_s=6, timeout_s=5)
    with pytest.raises(ValueError, match="phi_suspect"):
        LivenessConfig(phi_suspect=9, phi_dead=8)


def assert_never_flaps(live: Liveness, arrivals: list[float]) -> None:
    events = live.observe(beat(), arrivals[0])
    for t in arrivals[1:]:
        # The worst moment is just before a beat lands: the longest silence.
        assert live.state("w1", t) == "up", (t, live.phi("w1", t))
        events += live.poll(t)
        events += live.observe(beat(), t)
    assert [e.kind for e in events] == ["worker.up"]


@settings(max_examples=200, deadline=None)
@given(
    interval_s=st.floats(0.1, 5.0),
    pause_s=st.floats(0.0, 5.0),
    delays=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=150),
    mode=st.sampled_from(["phi", "expiry"]),
)
def test_jitter_within_the_acceptable_pause_never_flaps(
    interval_s: float, pause_s: float, delays: list[float], mode: str
) -> None:
    """Beat k is sent at k*interval and delayed by up to pause/2 (so two beats can be up to
    interval + pause apart): the detector stays up."""
    config = LivenessConfig(
        mode="phi" if mode == "phi" else "expiry", acceptable_pause_s=pause_s,
        first_interval_s=interval_s, window=50,
        suspect_after_s=interval_s + pause_s + 1e-6, timeout_s=interval_s + pause_s + 1.0)
    arrivals = sorted(k * interval_s + d * pause_s / 2 for k, d in enumerate(delays))
    assert_never_flaps(Liveness(config), arrivals)


@settings(max_examples=200, deadline=None)
@given(
    interval_s=st.floats(0.1, 5.0),
    pause_s=st.floats(0.0, 5.0),
    stretches=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=150),
)
def test_intervals_stretched_within_the_pause_never_flap(
    interval_s: float, pause_s: float, stretches: list[float]
) -> None:
    """Each interval anywhere in [interval, interval + pause], e.g. GC pauses: stays up."""
    config = LivenessConfig(acceptable_pause_s=pause_s, first_interval_s=interval_s, window=50)
    arrivals = [0.0]
    for s in stretches:
        arrivals.append(arrivals[-1] + interval_s + s * pause_s)
    assert_never_flaps(Liveness(config), arrivals)


def test_a_beat_that_names_its_interval_sets_the_bootstrap() -> None:
    # Before any interval is measured, phi assumes the worker's own announced interval (0.2 s)
    # rather than the configured 1 s guess: a fast-beating worker is judged on its own pace.
    live = Liveness(LivenessConfig(mode="phi", acceptable_pause_s=0.5, first_interval_s=1.0))
    fast = beat().model_copy(update={"heartbeat_interval_s": 0.2})
    live.observe(fast, 0.0)
    slow = Liveness(LivenessConfig(mode="phi", acceptable_pause_s=0.5, first_interval_s=1.0))
    slow.observe(beat(), 0.0)
    assert live.state("w1", 1.5) == "down"
    assert slow.state("w1", 1.5) == "up"
