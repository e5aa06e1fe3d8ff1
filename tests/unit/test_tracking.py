from __future__ import annotations

import base64
import pickle

import pytest
from trackers import ByteTrackTracker

from workers.detection import Detection
from workers.tracking import Tracker, TrackerConfig, _ByteTrack


def box(cx: float, h: float = 0.2, score: float = 0.9, cy: float = 0.5) -> Detection:
    return Detection(cx - 0.04, cy - h / 2, cx + 0.04, cy + h / 2, score, "person")


def relative(d: Detection) -> tuple[float, float, float, float]:
    return d.x1, d.y1, d.x2, d.y2


def test_tentative_frames_come_with_the_confirmation() -> None:
    tracker, first, second = Tracker(), box(0.30), box(0.31)
    assert tracker.update([first], 0.0) == []  # tentative: not reported yet
    (confirmed,) = tracker.update([second], 0.04)
    assert [t for t, _ in confirmed.earlier] == [0.0]
    assert confirmed.earlier[0][1] == pytest.approx(relative(first))
    assert confirmed.box == pytest.approx(relative(second))
    (later,) = tracker.update([box(0.32)], 0.08)
    assert later.track_id == confirmed.track_id and later.earlier == ()


def test_tentative_frames_survive_a_checkpoint() -> None:
    tracker = Tracker()
    tracker.update([box(0.30)], 0.0)
    tracker = Tracker.from_dict(tracker.to_dict())
    (confirmed,) = tracker.update([box(0.31)], 0.04)
    assert [t for t, _ in confirmed.earlier] == [0.0]


def test_a_blip_is_never_reported_and_leaves_nothing_behind() -> None:
    tracker = Tracker()
    assert tracker.update([box(0.30)], 0.0) == []
    assert tracker.update([], 0.04) == []
    assert tracker.update([box(0.80)], 0.08) == []  # a new tentative track, not the blip's
    (track,) = tracker.update([box(0.81)], 0.12)
    assert [t for t, _ in track.earlier] == [0.08]


def walk(tracker: Tracker, frames: int) -> int:
    """A confirmed track standing at x = 0.5, h = 0.2; returns its id."""
    ids = {t.track_id for i in range(frames) for t in tracker.update([box(0.5)], i * 0.04)}
    (track_id,) = ids
    return track_id


def test_low_score_box_continues_a_tracked_track_but_does_not_revive_a_lost_one() -> None:
    tracker = Tracker()
    track_id = walk(tracker, 5)
    (kept,) = tracker.update([box(0.5, score=0.35)], 0.2)  # below high_confidence
    assert kept.track_id == track_id
    for i in range(3):
        tracker.update([], 0.24 + 0.04 * i)
    assert tracker.update([box(0.5, score=0.35)], 0.4) == []


@pytest.mark.parametrize(("height", "refound"), [(0.21, True), (0.3, False), (0.14, False)])
def test_lost_track_is_found_again_only_on_a_box_of_its_height(height: float,
                                                               refound: bool) -> None:
    """A passer-by at another depth walking through where a person vanished does not take
    over their track."""
    tracker = Tracker()
    track_id = walk(tracker, 5)
    for i in range(3):
        tracker.update([], 0.2 + 0.04 * i)
    seen = tracker.update([box(0.5, h=height)], 0.32)
    assert [t.track_id for t in seen] == ([track_id] if refound else [])


def test_checkpoint_of_the_plain_library_tracker_resumes_with_our_rules() -> None:
    config = TrackerConfig()
    plain = ByteTrackTracker(minimum_consecutive_frames=config.minimum_consecutive_frames)
    data = {"classes": [], "bytetrack": base64.b64encode(pickle.dumps(plain)).decode()}
    tracker = Tracker.from_dict(data, config)
    assert type(tracker._impl) is _ByteTrack
    tracker.update([box(0.3)], 0.0)
    assert len(tracker.update([box(0.31)], 0.04)) == 1
