from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.geometry import Point
from workers.camera_state import CameraState, advance, zone_key
from workers.detection import Detection
from workers.tracking import TrackerConfig
from workers.zones import CountingZone, ZoneCounter

RIGHT_HALF = CountingZone(3, 2, (Point(x=0.5, y=0.0), Point(x=1.0, y=0.0),
                                 Point(x=1.0, y=1.0), Point(x=0.5, y=1.0)))
GONE = TrackerConfig().lost_track_buffer + 2


def box(cx: float, cy: float = 0.5, w: float = 0.12, h: float = 0.2) -> Detection:
    return Detection(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 1.0, "person")


def test_contains_uses_the_polygon() -> None:
    assert RIGHT_HALF.contains(0.75, 0.5)
    assert not RIGHT_HALF.contains(0.25, 0.5)


def test_walk_through_counts_one_entry_one_exit_with_dwell() -> None:
    xs = [0.05 + 0.03 * i for i in range(31)]  # 0.05 .. 0.95, then it leaves the frame
    frames = [[box(x)] for x in xs] + [[] for _ in range(GONE)]
    times = [i * 0.1 for i in range(len(frames))]
    state, effects = advance(CameraState(), frames, [], [RIGHT_HALF], times)
    kinds = [(e.kind, e.zone_version) for e in effects.zone_events]
    assert kinds == [("enter", 2), ("exit", 2)]
    exit_event = effects.zone_events[1]
    # Inside from x >= 0.5 (i = 15) until the track ends after the last detection.
    assert 1.0 <= exit_event.dwell_s <= 5.0
    assert effects.peak_occupancy == {(3, 2, "person"): 1}
    assert state.occupancy() == {}


def test_standing_inside_is_current_occupancy() -> None:
    frames = [[box(0.7), box(0.85, cy=0.2)] for _ in range(6)]
    state, effects = advance(CameraState(), frames, [], [RIGHT_HALF], [0.1 * i for i in range(6)])
    assert state.occupancy() == {zone_key(3, "person"): 2}
    assert effects.peak_occupancy == {(3, 2, "person"): 2}


def test_jitter_on_the_border_makes_no_extra_events() -> None:
    xs = [0.3, 0.35, 0.4, 0.45, 0.49, 0.51, 0.49, 0.51, 0.49, 0.45, 0.4, 0.35]
    frames = [[box(x, w=0.2)] for x in xs]
    _, effects = advance(CameraState(), frames, [], [RIGHT_HALF], [0.1 * i for i in range(12)])
    assert effects.zone_events == []


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 3))
def test_checkpoint_between_batches_changes_nothing(batch: int, extra_people: int) -> None:
    xs = [0.05 + 0.03 * i for i in range(31)]
    frames = [[box(x)] + [box(0.8, cy=0.15 + 0.2 * k, w=0.05, h=0.1) for k in range(extra_people)]
              for x in xs] + [[] for _ in range(GONE)]
    times = [i * 0.1 for i in range(len(frames))]
    whole, effects = advance(CameraState(), frames, [], [RIGHT_HALF], times)
    state = CameraState()
    events = []
    for i in range(0, len(frames), batch):
        state, part = advance(state, frames[i : i + batch], [], [RIGHT_HALF], times[i : i + batch])
        events += [(e.kind, e.track_id, round(e.dwell_s, 6)) for e in part.zone_events]
        state = CameraState.from_checkpoint(state.to_checkpoint(), state.totals, TrackerConfig())
    assert events == [(e.kind, e.track_id, round(e.dwell_s, 6)) for e in effects.zone_events]
    assert state.occupancy() == whole.occupancy()


def test_zone_counter_round_trips() -> None:
    counter = ZoneCounter()
    counter.observe(0, 1.0, 7, "person", (0.8, 0.5), [RIGHT_HALF])
    assert ZoneCounter.from_dict(counter.to_dict()).to_dict() == counter.to_dict()


def test_entry_dates_from_the_tracks_first_tentative_frame() -> None:
    """The tracker confirms on the second frame; the person was inside from the first."""
    frames = [[box(0.7)] for _ in range(3)] + [[] for _ in range(GONE)]
    times = [1.0 + 0.1 * i for i in range(len(frames))]
    _, effects = advance(CameraState(), frames, [], [RIGHT_HALF], times)
    enter, leave = effects.zone_events
    assert (enter.kind, enter.frame_index, leave.kind) == ("enter", 1, "exit")
    assert leave.dwell_s == pytest.approx(times[leave.frame_index] - times[0])
