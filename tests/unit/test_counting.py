from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.geometry import LineGeometry, Point
from workers.camera_state import CameraState, advance, count_key
from workers.counting import CountingLine, LineCounter
from workers.detection import Detection
from workers.tracking import Tracker, TrackerConfig

VERTICAL = CountingLine(7, 1, LineGeometry(a=Point(x=0.5, y=0.0), b=Point(x=0.5, y=1.0)))


def box(cx: float, cy: float, w: float = 0.08, h: float = 0.2) -> Detection:
    return Detection(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 1.0, "motion")


def sweep(x0: float, x1: float, steps: int, y: float = 0.5) -> list[list[Detection]]:
    return [[box(x0 + (x1 - x0) * i / (steps - 1), y)] for i in range(steps)]


def run(frames: list[list[Detection]], lines: list[CountingLine] | None = None) -> CameraState:
    state = CameraState()
    state, _ = advance(state, frames, lines or [VERTICAL])
    return state


def test_left_to_right_is_in_and_right_to_left_is_out() -> None:
    assert run(sweep(0.1, 0.9, 20)).totals == {count_key(7, "in", "motion"): 1}
    assert run(sweep(0.9, 0.1, 20)).totals == {count_key(7, "out", "motion"): 1}


def test_flicker_on_the_line_does_not_count() -> None:
    xs = [0.3, 0.35, 0.4, 0.45, 0.49, 0.51, 0.49, 0.51, 0.49, 0.45, 0.4]
    assert run([[box(x, 0.5)] for x in xs]).totals == {}


def test_unconfirmed_track_never_counts() -> None:
    # A blip seen twice (below min_hits) on both sides of the line, then gone.
    frames = [[box(0.45, 0.5)], [box(0.55, 0.5)], [], [], [], [], [], [], []]
    assert run(frames).totals == {}


def test_passing_beside_the_segment_does_not_count() -> None:
    short = CountingLine(1, 1, LineGeometry(a=Point(x=0.5, y=0.0), b=Point(x=0.5, y=0.3)))
    assert run(sweep(0.1, 0.9, 20, y=0.8), [short]).totals == {}


def test_two_objects_in_different_bands_both_count() -> None:
    frames = [
        [box(0.1 + 0.04 * i, 0.25), box(0.9 - 0.04 * i, 0.75)] for i in range(21)
    ]
    assert run(frames).totals == {
        count_key(7, "in", "motion"): 1, count_key(7, "out", "motion"): 1,
    }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        # IoU-based tracking needs consecutive boxes to overlap: at least 15 steps per sweep.
        st.tuples(st.booleans(), st.floats(0.15, 0.85), st.integers(15, 30)),
        min_size=1, max_size=6,
    ),
    st.integers(1, 9),
)
def test_sequential_objects_count_exactly_once_each(
    objects: list[tuple[bool, float, int]], batch: int
) -> None:
    """Objects cross one after another (never together): counts equal the truth for any
    batching, and a checkpoint/restore between every batch (failover) changes nothing."""
    frames: list[list[Detection]] = []
    truth = {"in": 0, "out": 0}
    for left_to_right, y, steps in objects:
        xs = [0.05 + 0.9 * i / (steps - 1) for i in range(steps)]
        frames += [[box(x, y, w=0.12)] for x in (xs if left_to_right else xs[::-1])]
        frames += [[] for _ in range(TrackerConfig().lost_track_buffer + 2)]  # gone: track ends
        truth["in" if left_to_right else "out"] += 1
    state = CameraState()
    for i in range(0, len(frames), batch):
        state, _ = advance(state, frames[i : i + batch], [VERTICAL])
        state = CameraState.from_checkpoint(state.to_checkpoint(), state.totals, TrackerConfig())
    expected = {count_key(7, d, "motion"): n for d, n in truth.items() if n}
    assert state.totals == expected


def test_advance_does_not_mutate_its_input() -> None:
    before = CameraState()
    frames = sweep(0.1, 0.9, 20)
    snapshot = before.to_checkpoint()
    advance(before, frames, [VERTICAL])
    assert before.to_checkpoint() == snapshot and before.totals == {}


def test_tracker_and_counter_round_trip() -> None:
    tracker = Tracker()
    for frame in sweep(0.1, 0.4, 5):
        tracker.update(frame)
    assert Tracker.from_dict(tracker.to_dict()).to_dict() == tracker.to_dict()
    counter = LineCounter()
    counter.observe(0, 1, "motion", (0.2, 0.5), [VERTICAL])
    assert LineCounter.from_dict(counter.to_dict()).to_dict() == counter.to_dict()
