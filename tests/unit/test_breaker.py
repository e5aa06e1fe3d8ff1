from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.breaker import Breaker, BreakerConfig, Outcome

OK, FAIL, TIMEOUT, DATA = Outcome.SUCCESS, Outcome.FAILURE, Outcome.TIMEOUT, Outcome.DATA_ERROR
CONFIG = BreakerConfig(failure_rate=0.5, min_volume=4, window=6, slow_s=1.0, cool_down_s=10,
                       probes=2)


def feed(breaker: Breaker, outcomes: list[tuple[Outcome, float]], start: float = 0.0) -> float:
    t = start
    for outcome, duration in outcomes:
        t += 0.1
        breaker.record(outcome, duration, t)
    return t


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ([(FAIL, 0.1)] * 3, "closed"),  # under the minimum volume
        ([(FAIL, 0.1)] * 4, "open"),
        ([(OK, 0.1), (FAIL, 0.1), (OK, 0.1), (FAIL, 0.1)], "open"),  # 50 % is the threshold
        ([(OK, 0.1), (FAIL, 0.1), (OK, 0.1), (OK, 0.1)], "closed"),
        ([(TIMEOUT, 0.1)] * 4, "open"),  # timeouts are failures
        ([(OK, 1.5)] * 4, "open"),  # so are slow batches that succeeded
        ([(DATA, 0.1)] * 10, "closed"),  # bad input is not the worker's fault ...
        ([(DATA, 0.1)] * 3 + [(FAIL, 0.1)], "closed"),  # ... nor counts toward the volume
        ([(FAIL, 0.1)] + [(OK, 0.1)] * 5 + [(FAIL, 0.1)] * 3, "open"),  # 3 of the last 6
        ([(FAIL, 0.1)] + [(OK, 0.1)] * 6 + [(FAIL, 0.1)] * 2, "closed"),  # 2 of the last 6
    ],
)
def test_closed_to_open(outcomes: list[tuple[Outcome, float]], state: str) -> None:
    breaker = Breaker(CONFIG)
    t = feed(breaker, outcomes)
    assert breaker.state(t) == state


def test_open_half_open_probes_then_closed() -> None:
    breaker = Breaker(CONFIG)
    t = feed(breaker, [(FAIL, 0.1)] * 4)  # opens at 0.4
    assert breaker.snapshot(t).opened_at_mono == pytest.approx(0.4)
    assert not breaker.allow(t + 9.9)
    assert breaker.state(t + 10) == "half_open"
    assert breaker.probe_slots(t + 10) == 2
    assert breaker.allow(t + 10) and breaker.allow(t + 10)
    assert not breaker.allow(t + 10)  # at most `probes` at a time
    breaker.record(OK, 0.1, t + 10.1)
    assert breaker.state(t + 10.1) == "half_open"
    breaker.record(OK, 0.1, t + 10.2)
    snap = breaker.snapshot(t + 10.2)
    assert (snap.state, snap.calls, snap.failures, snap.opened_at_mono) == ("closed", 0, 0, None)


@pytest.mark.parametrize("verdict", [(FAIL, 0.1), (TIMEOUT, 0.1), (OK, 5.0)])
def test_a_failed_probe_reopens(verdict: tuple[Outcome, float]) -> None:
    breaker = Breaker(CONFIG)
    t = feed(breaker, [(FAIL, 0.1)] * 4) + 10
    assert breaker.allow(t)
    breaker.record(verdict[0], verdict[1], t + 0.5)
    assert breaker.state(t + 0.5) == "open"
    assert breaker.snapshot(t + 0.5).opened_at_mono == t + 0.5
    assert not breaker.allow(t + 10.4)


def test_data_error_on_a_probe_decides_nothing() -> None:
    breaker = Breaker(CONFIG)
    t = feed(breaker, [(FAIL, 0.1)] * 4) + 10
    assert breaker.allow(t)
    breaker.record(DATA, 0.1, t + 0.1)
    assert breaker.state(t + 0.1) == "half_open"


def test_an_unanswered_probe_times_out_and_reopens() -> None:
    breaker = Breaker(BreakerConfig(min_volume=1, window=1, cool_down_s=5, probe_timeout_s=2))
    breaker.record(FAIL, 0.1, 0.0)
    assert breaker.allow(5.0)
    assert breaker.state(6.9) == "half_open"
    assert breaker.state(7.0) == "open"
    assert breaker.state(11.9) == "open"
    assert breaker.state(12.0) == "half_open"


def test_late_verdicts_while_open_decide_nothing() -> None:
    breaker = Breaker(CONFIG)
    t = feed(breaker, [(FAIL, 0.1)] * 4)
    breaker.record(OK, 0.1, t + 1)
    breaker.record(FAIL, 0.1, t + 2)
    assert breaker.snapshot(t + 2).opened_at_mono == pytest.approx(0.4)


def test_time_window_forgets_old_failures() -> None:
    breaker = Breaker(BreakerConfig(min_volume=3, window=100, window_s=10))
    for t in (0.0, 1.0):
        breaker.record(FAIL, 0.1, t)
    snap = breaker.snapshot(5.0)
    assert (snap.calls, snap.failures, snap.failure_rate) == (2, 2, 1.0)
    assert breaker.snapshot(10.5).calls == 1
    breaker.record(FAIL, 0.1, 11.5)  # 3 failures, but two of them happened too long ago
    assert breaker.state(11.5) == "closed"
    breaker.record(FAIL, 0.1, 12.0)
    assert breaker.state(12.0) == "closed"
    breaker.record(FAIL, 0.1, 12.5)
    assert breaker.state(12.5) == "open"


def test_config_rejects_an_unreachable_minimum_volume() -> None:
    with pytest.raises(ValueError, match="min_volume"):
        BreakerConfig(min_volume=30, window=20)


_OUTCOMES = st.sampled_from([OK, FAIL, TIMEOUT, DATA])
_STEP = st.tuples(
    st.floats(0.0, 4.0),  # time advance
    st.one_of(st.just("allow"), st.tuples(_OUTCOMES, st.floats(0.0, 2.0))),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_STEP, max_size=120), time_window=st.booleans())
def test_breaker_properties(steps: list[tuple[float, object]], time_window: bool) -> None:
    config = BreakerConfig(failure_rate=0.5, min_volume=5, window=8, slow_s=1.0,
                           cool_down_s=6.0, probes=2, window_s=5.0 if time_window else None)
    breaker = Breaker(config)
    now = 0.0
    probes_this_half_open = 0
    for advance, op in steps:
        now += advance
        before = breaker.snapshot(now)
        if before.state != "half_open":
            probes_this_half_open = 0
        if op == "allow":
            admitted = breaker.allow(now)
            if before.state == "open":
                assert not admitted  # open admits nothing until the cool-down is over
                assert before.opened_at_mono is not None
                assert now < before.opened_at_mono + config.cool_down_s
            if before.state == "half_open" and admitted:
                probes_this_half_open += 1
                assert probes_this_half_open <= config.probes
            continue
        assert isinstance(op, tuple)
        outcome, duration = op
        breaker.record(outcome, duration, now)
        after = breaker.snapshot(now)
        if before.state == "closed" and after.state == "open":
            assert before.calls + 1 >= config.min_volume  # never opens below the volume
            assert outcome is not DATA
        assert 0.0 <= after.failure_rate <= 1.0
        assert after.calls <= config.window
