from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.geometry import LineGeometry, Point
from workers.camera_state import CameraState, advance, count_key
from workers.counting import CountingLine, LineCounter, Sighting, Size
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
    counter.observe_frame(0, [[Sighting(1, "motion", (0.2, 0.5), (0.08, 0.2), 0.0)]], [VERTICAL])
    counter.forget(set(), 0.5)
    assert LineCounter.from_dict(counter.to_dict()).to_dict() == counter.to_dict()


def test_crossing_between_a_tracks_first_and_second_frame_counts() -> None:
    """Its first frame is tentative (the tracker confirms on the second), and still evidence:
    right of the line on frames 0 and 1, left from frame 2 on, is one settled crossing."""
    frames = [[box(x, 0.5)] for x in (0.52, 0.51, 0.49, 0.48, 0.47, 0.46)]
    assert run(frames).totals == {count_key(7, "out", "motion"): 1}


# Hand-over, on the counter alone: frames of (track id, anchor x) at 25 fps.
SIZE = (0.08, 0.2)


def count(frames: list[list[tuple[int, float]]], sizes: dict[int, Size] | None = None,
          classes: dict[int, str] | None = None) -> list[tuple[int, str]]:
    counter, found = LineCounter(), list[tuple[int, str]]()
    for i, frame in enumerate(frames):
        at_s = i / 25
        sightings = [[Sighting(tid, (classes or {}).get(tid, "person"), (x, 0.5),
                               (sizes or {}).get(tid, SIZE), at_s)] for tid, x in frame]
        found += [(c.track_id, c.direction) for c in counter.observe_frame(i, sightings,
                                                                           [VERTICAL])]
        counter.forget({tid for tid, _ in frame}, at_s)
        counter = LineCounter.from_dict(counter.to_dict())  # failover at every frame
    return found


def steps(tid: int, x0: float, x1: float, n: int) -> list[list[tuple[int, float]]]:
    return [[(tid, x0 + (x1 - x0) * i / (n - 1))] for i in range(n)]


HIDDEN: list[list[tuple[int, float]]] = [[] for _ in range(20)]  # 0.8 s behind someone


def test_crossing_while_hidden_counts_once_for_the_track_that_comes_back() -> None:
    frames = steps(1, 0.70, 0.56, 8) + HIDDEN + steps(2, 0.44, 0.30, 8)
    assert count(frames) == [(2, "out")]


def test_no_hand_over_from_a_track_walking_away_from_the_line() -> None:
    """Track 1 crossed in and walked on; someone appearing on the side it left is not it."""
    frames = steps(1, 0.30, 0.56, 14) + HIDDEN + steps(2, 0.44, 0.30, 8)
    assert count(frames) == [(1, "in")]


@pytest.mark.parametrize(
    ("sizes", "classes", "hidden"),
    [({1: (0.12, 0.3)}, None, HIDDEN),  # 1.5 times as tall: someone else
     (None, {1: "bicycle"}, HIDDEN),
     (None, None, [[] for _ in range(60)])],  # 2.4 s: too long to be sure
)
def test_no_hand_over_to_another_size_class_or_after_too_long(
    sizes: dict[int, Size] | None, classes: dict[int, str] | None,
    hidden: list[list[tuple[int, float]]],
) -> None:
    frames = steps(1, 0.70, 0.56, 8) + hidden + steps(2, 0.44, 0.30, 8)
    assert count(frames, sizes, classes) == []


def test_the_state_moves_so_the_old_track_coming_back_cannot_count_again() -> None:
    frames = steps(1, 0.70, 0.56, 8) + HIDDEN + steps(2, 0.44, 0.40, 4)
    frames += [[(2, 0.40 - 0.01 * i), (1, 0.45 - 0.01 * i)] for i in range(8)]
    assert count(frames) == [(2, "out")]


def test_track_reborn_next_to_the_line_continues_its_side() -> None:
    """Track 1 crossed in and stopped just past the line; track 2 takes over at the same spot.
    Its first box, on the old side, is jitter: no second count. When it then walks back out,
    that is the person's second crossing, and counts, though walking away from the line was
    all track 1 ever did on this side."""
    crossed = [*steps(1, 0.30, 0.52, 12), [(1, 0.53)], [(1, 0.53)], *HIDDEN[:5]]
    assert count([*crossed, [(2, 0.495)], *steps(2, 0.52, 0.60, 6)]) == [(1, "in")]
    assert count([*crossed, [(2, 0.495)], *steps(2, 0.48, 0.40, 5)]) == [(1, "in"), (2, "out")]


@settings(max_examples=80, deadline=None)
@given(st.booleans(), st.lists(st.tuples(st.integers(2, 12), st.integers(0, 8)), min_size=1,
                               max_size=12))
def test_one_crossing_cut_into_any_fragments_counts_once(
    left_to_right: bool, cuts: list[tuple[int, int]]
) -> None:
    """A person walks across (0.2 to 0.8, a tenth of their width a frame); the tracker loses
    them every few frames for up to 8 frames and gives each piece a new id."""
    xs = [0.2 + 0.01 * i for i in range(61)]
    xs = xs if left_to_right else xs[::-1]
    frames: list[list[tuple[int, float]]] = []
    i, tid = 0, 1
    for length, gap in [*cuts, (61, 0)]:
        frames += [[(tid, x)] for x in xs[i : i + length]] + [[] for _ in range(gap)]
        i, tid = i + length + gap, tid + 1
        if i >= len(xs):
            break
    directions = [d for _, d in count(frames, dict.fromkeys(range(1, tid + 1), (0.1, 0.25)))]
    assert directions == ["in" if left_to_right else "out"]
