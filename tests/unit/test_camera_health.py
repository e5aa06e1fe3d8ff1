"""The camera health state machine: statuses, reasons, since-when, and the gaps it opens."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.health import CameraHealth, Effect, GapClosed, GapOpened, HealthPolicy, StatusChange


def statuses(effects: list[Effect]) -> list[str]:
    return [e.status for e in effects if isinstance(e, StatusChange)]


class Clock:
    """Wall and monotonic time together; frames arrive every 0.2 s with moving pictures."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.pts = 0.0
        self.picture = 0

    def frame(self, health: CameraHealth, *, same: bool = False, stuck: bool = False,
              dt: float = 0.2) -> list[Effect]:
        self.t += dt
        if not stuck:
            self.pts += dt
        if not same:
            self.picture += 1
        return health.on_frame(self.t, self.t, self.t, self.pts, bytes([self.picture % 256]))


def test_connect_then_frames_is_live_without_a_gap_on_first_start() -> None:
    health, clock = CameraHealth(HealthPolicy()), Clock()
    assert statuses(health.on_connecting(clock.t, "opening")) == ["connecting"]
    health.on_session_open(clock.t)
    effects = clock.frame(health)
    assert statuses(effects) == ["live"]
    assert not [e for e in effects if isinstance(e, GapOpened | GapClosed)]
    assert clock.frame(health) == []  # nothing new to say


def test_a_stall_opens_a_gap_at_the_last_frame_and_the_next_frame_closes_it() -> None:
    health, clock = CameraHealth(HealthPolicy(stall_s=5)), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    last = clock.t
    assert health.on_tick(clock.t + 4.9, clock.t + 4.9) == []
    effects = health.on_tick(clock.t + 5.0, clock.t + 5.0)
    assert statuses(effects) == ["stalled"]
    assert GapOpened(last, "stalled: no frame for 5 s") in effects
    assert health.since == clock.t + 5.0
    clock.t += 7
    effects = clock.frame(health)
    assert statuses(effects) == ["live"]
    assert GapClosed(clock.t) in effects


def test_the_watchdog_says_nothing_before_the_first_frame() -> None:
    # Before a session delivers, the source's own connect timeouts speak (unreachable ...).
    health = CameraHealth(HealthPolicy(stall_s=1))
    health.on_connecting(0, "opening")
    assert health.on_tick(100, 100) == []


def test_connect_failures_map_to_operator_statuses() -> None:
    for reason, status in [("auth_failed", "auth_failed"), ("not_found", "unreachable"),
                           ("refused", "unreachable"), ("timeout", "unreachable"),
                           ("unsupported_codec", "unreachable")]:
        health = CameraHealth(HealthPolicy())
        health.on_connecting(0, "opening")
        effects = health.on_failure(1, reason, f"{reason}: details")  # type: ignore[arg-type]
        assert statuses(effects) == [status], reason
        assert health.reason == f"{reason}: details"


def test_retrying_keeps_the_failure_status_and_its_since() -> None:
    health = CameraHealth(HealthPolicy())
    health.on_connecting(0, "opening")
    health.on_failure(1, "refused", "refused")
    assert health.on_connecting(2, "opening") == []
    health.on_failure(3, "refused", "refused")
    assert (health.status, health.since) == ("unreachable", 1)


def test_a_stream_that_drops_mid_way_reconnects_and_counts_the_outage() -> None:
    health, clock = CameraHealth(HealthPolicy()), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    last = clock.t
    effects = health.on_failure(clock.t + 0.5, "connection_lost", "lost", mid_stream=True)
    assert statuses(effects) == ["connecting"]
    assert any(isinstance(e, GapOpened) and e.started_at == last for e in effects)
    health.on_session_open(clock.t + 1)
    clock.t += 1
    assert GapClosed(clock.t + 0.2) in clock.frame(health)


def test_identical_pictures_freeze_after_frozen_s_and_a_reconnect_stays_frozen() -> None:
    health, clock = CameraHealth(HealthPolicy(frozen_s=3)), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    changes: list[str] = []
    for _ in range(20):  # 4 s of the same picture
        changes += statuses(clock.frame(health, same=True))
    assert changes == ["frozen"]
    assert "picture has not changed" in health.reason
    # The pipeline reconnects; the same still picture comes back: still frozen, no flapping.
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    assert statuses(clock.frame(health, same=True)) == []
    assert health.status == "frozen"
    effects = clock.frame(health)  # it moves again
    assert statuses(effects) == ["live"]
    assert any(isinstance(e, GapClosed) for e in effects)


def test_a_frozen_gap_starts_at_the_last_moving_frame_not_frozen_s_later() -> None:
    """The frames of the benefit of the doubt showed the still picture already: counting saw
    nothing in them, so the report must show them inside the gap, not as a false zero."""
    health, clock = CameraHealth(HealthPolicy(frozen_s=3)), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    moved_at = clock.t
    effects: list[Effect] = []
    for _ in range(20):
        effects += clock.frame(health, same=True)
    assert GapOpened(moved_at, "frozen: the picture has not changed for 3 s") in effects


def test_stopped_timestamps_freeze_too() -> None:
    health, clock = CameraHealth(HealthPolicy(frozen_s=1)), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    changes: list[str] = []
    for _ in range(10):
        changes += statuses(clock.frame(health, stuck=True))
    assert changes == ["frozen"]
    assert "timestamps stopped" in health.reason


def test_a_node_taking_over_records_the_span_nobody_watched() -> None:
    health, clock = CameraHealth(HealthPolicy(), last_frame_at=900.0), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    effects = clock.frame(health)
    assert GapOpened(900.0, "no frames: ingest not reading") in effects
    assert GapClosed(clock.t) in effects


def test_backpressure_is_a_covered_status_with_its_own_reason() -> None:
    health, clock = CameraHealth(HealthPolicy()), Clock()
    health.on_connecting(clock.t, "opening")
    health.on_session_open(clock.t)
    clock.frame(health)
    effects = health.on_backpressure(clock.t, "dropping frames: broker blocked")
    assert statuses(effects) == ["backpressure"]
    assert not any(isinstance(e, GapOpened) for e in effects)  # dropped spans are their own gaps
    assert statuses(health.on_backpressure_cleared(clock.t + 1)) == ["live"]


events = st.lists(st.sampled_from(
    ["frame", "same", "stuck", "tick", "long_tick", "connect", "open", "fail_mid", "fail_auth",
     "fail_refused", "pressure", "cleared"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(events)
def test_gaps_are_balanced_and_since_only_moves_with_the_status(sequence: list[str]) -> None:
    health, clock = CameraHealth(HealthPolicy(stall_s=2, frozen_s=1)), Clock()
    open_gap = False
    last_status, last_since = None, None
    for event in sequence:
        if event in ("frame", "same", "stuck"):
            effects = clock.frame(health, same=event == "same", stuck=event == "stuck")
        elif event in ("tick", "long_tick"):
            clock.t += 0.5 if event == "tick" else 3
            effects = health.on_tick(clock.t, clock.t)
        elif event == "connect":
            effects = health.on_connecting(clock.t, "opening")
        elif event == "open":
            health.on_session_open(clock.t)
            effects = []
        elif event.startswith("fail"):
            reason = {"fail_mid": "connection_lost", "fail_auth": "auth_failed",
                      "fail_refused": "refused"}[event]
            effects = health.on_failure(clock.t, reason, reason,  # type: ignore[arg-type]
                                        mid_stream=event == "fail_mid")
        elif event == "pressure":
            effects = health.on_backpressure(clock.t, "dropping")
        else:
            effects = health.on_backpressure_cleared(clock.t)
        for effect in effects:
            if isinstance(effect, GapOpened):
                assert not open_gap, "two gaps open at once"
                open_gap = True
            elif isinstance(effect, GapClosed):
                assert open_gap, "a gap closed that was never opened"
                open_gap = False
            else:
                assert effect.status != effect.previous or effect.previous is None or \
                    effect.since == last_since
        if health.status == last_status:
            assert health.since == last_since or last_since is None
        last_status, last_since = health.status, health.since
        assert open_gap == health.gap_open
        if health.status == "live":
            assert not open_gap
