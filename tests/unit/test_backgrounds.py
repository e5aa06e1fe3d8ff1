"""The motion background that travels with a camera: its schedule, its codec, priming."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from workers import backgrounds
from workers.backgrounds import MIN_FRAMES, BackgroundSchedule
from workers.motion import MotionDetector


def _scene(value: int = 90) -> np.ndarray:
    image = np.full((180, 320, 3), value, np.uint8)
    image[40:60, :, :] = 200  # a stripe: a background with some structure
    return image


def test_a_young_model_is_not_stored() -> None:
    schedule = BackgroundSchedule(5.0)
    assert not schedule.due("c", 100.0, MIN_FRAMES - 1)
    assert schedule.due("c", 100.0, MIN_FRAMES)


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=50),
       st.floats(0.5, 60))
def test_stored_at_most_once_per_period_of_capture_time(times: list[float],
                                                       every_s: float) -> None:
    schedule, stored = BackgroundSchedule(every_s), []
    for at in sorted(times):
        if schedule.due("c", at, MIN_FRAMES):
            schedule.saved("c", at)
            stored.append(at)
    assert stored[0] == min(times)  # the first chance is taken
    assert all(b - a >= every_s for a, b in itertools.pairwise(stored))
    # and none is skipped: every time not stored lies within a period of the last one stored
    for at in sorted(times):
        last = max(s for s in stored if s <= at)
        assert at in stored or at - last < every_s


def test_a_new_stream_whose_clock_went_back_is_stored_again() -> None:
    schedule = BackgroundSchedule(5.0)
    schedule.saved("c", 1000.0)
    assert not schedule.due("c", 1002.0, MIN_FRAMES)
    assert schedule.due("c", 10.0, MIN_FRAMES)


def test_forgetting_a_camera_makes_it_due() -> None:
    schedule = BackgroundSchedule(5.0)
    schedule.saved("c", 1000.0)
    schedule.forget("c")
    assert schedule.due("c", 1001.0, MIN_FRAMES)


def test_the_codec_keeps_the_image_close_and_small() -> None:
    image = _scene()
    data = backgrounds.encode(image)
    back = backgrounds.decode(data)
    assert back is not None and back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 2
    assert len(data) < 20_000


def test_bytes_that_are_no_image_prime_nothing() -> None:
    assert backgrounds.decode(b"not a jpeg") is None


def test_a_primed_detector_sees_an_object_present_in_its_first_frame() -> None:
    """Unprimed, MOG2 takes the first frame (object included) as background and sees nothing;
    primed with the empty scene, the object in the first frame is found."""
    frame = _scene()
    frame[100:160, 150:190, :] = 20  # an object
    fresh = MotionDetector()
    fresh.detect([frame])
    assert fresh.detect([frame]) == [[]]  # the object became background
    primed = MotionDetector()
    primed.prime(_scene())
    found = primed.detect([frame])[0]
    assert len(found) == 1
    box = found[0]
    assert 0.45 < box.x1 < 0.5 and 0.57 < box.x2 < 0.62 and box.y1 > 0.5


def test_a_primer_of_another_size_is_ignored() -> None:
    primed = MotionDetector()
    primed.prime(np.zeros((90, 160, 3), np.uint8))
    frame = _scene()
    assert primed.detect([frame]) == MotionDetector().detect([frame])  # as a fresh one
    assert primed.frames_seen == 1
    background = primed.background()
    assert background is not None and background.shape == frame.shape


def test_no_background_before_the_first_frame() -> None:
    assert MotionDetector().background() is None
