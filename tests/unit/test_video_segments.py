"""Segment planning, the ownership rule and progress: table-tested, and the whole split (plan,
overlap, ownership, the zone merge) checked against the single stream on the real tracking,
counting and zone cores."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.geometry import LineGeometry, Point
from videos.ownership import Window, owns
from videos.progress import job_progress, own_frames_done
from videos.segments import Segment, batch_count, kept_frames, plan_segments, sample_stride
from videos.zone_merge import ZoneMark, ZoneTotals, merge_zones
from workers.camera_state import CameraState, advance
from workers.counting import CountingLine
from workers.detection import Detection
from workers.zones import CountingZone


@pytest.mark.parametrize(("frames", "fps", "segment_s", "overlap_s", "expected"), [
    (0, 25, 1, 1, []),
    (10, 25, 1, 0.2, [Segment(0, 0, 0, 10)]),  # shorter than a segment: one
    (71, 25, 1, 0.8, [Segment(0, 0, 0, 25), Segment(1, 5, 25, 50), Segment(2, 30, 50, 71)]),
    # a tail under half a segment joins the last one
    (60, 25, 1, 0, [Segment(0, 0, 0, 25), Segment(1, 25, 25, 60)]),
    # a tail of half a segment or more is a segment of its own
    (63, 25, 1, 0, [Segment(0, 0, 0, 25), Segment(1, 25, 25, 50), Segment(2, 50, 50, 63)]),
    # the overlap reaches back past the start: clipped at frame 0
    (50, 25, 1, 3, [Segment(0, 0, 0, 25), Segment(1, 0, 25, 50)]),
    (100, 10, 2.5, 1.01, [Segment(0, 0, 0, 25), Segment(1, 14, 25, 50),
                          Segment(2, 39, 50, 75), Segment(3, 64, 75, 100)]),
])
def test_plan(frames: int, fps: float, segment_s: float, overlap_s: float,
              expected: list[Segment]) -> None:
    assert plan_segments(frames, fps, segment_s, overlap_s) == expected


@given(st.integers(1, 5000), st.sampled_from([10.0, 25.0, 29.97, 30.0]),
       st.floats(0.1, 100), st.floats(0, 10))
def test_own_windows_tile_the_video(frames: int, fps: float, segment_s: float,
                                    overlap_s: float) -> None:
    plan = plan_segments(frames, fps, segment_s, overlap_s)
    assert plan[0].own_from == 0 and plan[-1].own_to == frames
    for a, b in itertools.pairwise(plan):
        assert a.own_to == b.own_from and a.own_from < a.own_to
    for s in plan:
        assert 0 <= s.first_frame <= s.own_from
        assert s.own_from - s.first_frame <= round(overlap_s * fps) + 1


@pytest.mark.parametrize(("fps", "target", "stride"), [
    (25, None, 1), (25, 30, 1), (25, 25, 1), (25, 12.5, 2), (30, 5, 6), (25, 10, 2)])
def test_stride(fps: float, target: float | None, stride: int) -> None:
    assert sample_stride(fps, target) == stride


def test_kept_frames_follow_the_global_index() -> None:
    segment = Segment(1, 5, 25, 50)
    assert list(kept_frames(segment, 3))[:3] == [6, 9, 12]
    assert batch_count(segment, 1, 5) == 9 and batch_count(segment, 3, 5) == 3


FPS, BASE = 25.0, 1_000_000.0
W = Window.of(25, 50, 71, BASE, FPS)


@pytest.mark.parametrize(("window", "frame", "owned"), [
    (W, 24, False), (W, 25, True), (W, 49, True), (W, 50, False),
    (Window.of(0, 25, 71, BASE, FPS), -3, True),  # the first owns everything before it
    (Window.of(50, 71, 71, BASE, FPS), 500, True),  # the last everything after it
    (Window.of(50, 71, 71, BASE, FPS), 49, False),
])
def test_ownership(window: Window, frame: int, owned: bool) -> None:
    # Stored timestamps are microseconds: a little rounding must not move a frame's owner.
    for jitter in (-1e-6, 0.0, 1e-6):
        assert owns(window, BASE + frame / FPS + jitter) is owned


def test_progress_counts_own_frames_behind_the_last_applied_batch() -> None:
    segment = Segment(1, 5, 25, 50)  # 20 frames of overlap, 25 of its own: 9 batches of 5
    assert own_frames_done(segment, 1, 5, 0) == 0
    assert own_frames_done(segment, 1, 5, 4) == 0  # frames 5..24: still the overlap
    assert own_frames_done(segment, 1, 5, 5) == 5
    assert own_frames_done(segment, 1, 5, 9) == 25
    assert own_frames_done(segment, 2, 5, 3) == 10  # kept 6, 8, .. 34: up to frame 34
    plan = plan_segments(71, FPS, 1, 0.8)
    batches = [batch_count(s, 1, 5) for s in plan]
    assert job_progress(plan, batches, [0, 0, 0], 1, 5, 71).line() == \
        "segments 0/3, frames 0/71"
    assert job_progress(plan, batches, batches, 1, 5, 71).frames_done == 71
    half = job_progress(plan, batches, [batches[0], 5, 0], 1, 5, 71)
    assert (half.segments_done, half.frames_done) == (1, 25 + 5)


# --- the whole split against the single stream, on the real tracker and counter ---

LINE = CountingLine(1, 1, LineGeometry(a=Point(x=0.5, y=0.0), b=Point(x=0.5, y=1.0)))


def _walkers(specs: list[tuple[int, int, float, bool]], frames: int) -> list[list[Detection]]:
    """Per frame, one box per walker on screen: (first frame, length, lane y, rightwards)."""
    out: list[list[Detection]] = [[] for _ in range(frames)]
    for start, length, y, rightwards in specs:
        for step in range(length):
            frame = start + step
            if frame >= frames:
                break
            x = 0.1 + 0.8 * step / max(length - 1, 1)
            cx = x if rightwards else 1 - x
            out[frame].append(Detection(cx - 0.03, y - 0.08, cx + 0.03, y + 0.08, 0.9, "person"))
    return out


def _crossings(frames: list[list[Detection]], first: int, to: int) -> list[tuple[float, str]]:
    times = [BASE + i / FPS for i in range(first, to)]
    _, effects = advance(CameraState(), frames[first:to], [LINE], frame_times=times)
    return [(times[c.frame_index], c.direction) for c in effects.crossings]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 230), st.integers(20, 60),
                          st.sampled_from([0.2, 0.45, 0.7]), st.booleans()),
                min_size=1, max_size=6))
def test_segments_with_enough_overlap_count_like_the_single_stream(
        walkers: list[tuple[int, int, float, bool]]) -> None:
    """Walkers in three lanes (so none hides another) crossing at any moment, boundaries
    included: with an overlap above confirmation + settling + hand-over, the merged count
    equals one stream's, crossing for crossing."""
    frames = _walkers(walkers, 250)
    single = Counter(d for _, d in _crossings(frames, 0, 250))
    merged: Counter[str] = Counter()
    for s in plan_segments(250, FPS, 2.0, 3.0):
        window = Window.of(s.own_from, s.own_to, 250, BASE, FPS)
        merged.update(d for t, d in _crossings(frames, s.first_frame, s.own_to)
                      if owns(window, t))
    assert merged == single


def test_without_overlap_a_crossing_at_a_boundary_is_lost() -> None:
    """Why the overlap exists: a segment starting cold meets a walker as a tentative track and
    misses a crossing just after its start (this walker crosses around frame 52)."""
    frames = _walkers([(30, 40, 0.45, True)], 100)
    assert len(_crossings(frames, 0, 100)) == 1
    merged = 0
    for s in plan_segments(100, FPS, 2.0, 0.0):
        window = Window.of(s.own_from, s.own_to, 100, BASE, FPS)
        merged += sum(1 for t, _ in _crossings(frames, s.first_frame, s.own_to)
                      if owns(window, t))
    assert merged == 0


# --- zones: the same split, merged by videos/zone_merge.py ---

ZONE = CountingZone(7, 1, (Point(x=0.4, y=0.0), Point(x=0.6, y=0.0), Point(x=0.6, y=1.0),
                           Point(x=0.4, y=1.0)))


def _zone_marks(frames: list[list[Detection]], first: int, to: int) -> list[ZoneMark]:
    times = [BASE + i / FPS for i in range(first, to)]
    _, effects = advance(CameraState(), frames[first:to], [], [ZONE], frame_times=times)
    return [ZoneMark(times[e.frame_index], "middle", e.object_class,
                     "enter" if e.kind == "enter" else "exit",
                     e.dwell_s if e.kind == "exit" else None)
            for e in effects.zone_events]


def _zones_merged(frames: list[list[Detection]], segment_s: float,
                  overlap_s: float) -> tuple[ZoneTotals, ZoneTotals]:
    """(single stream, segmented) totals of the one zone and class."""
    total = len(frames)
    single = merge_zones([(Window.of(0, total, total, BASE, FPS),
                           _zone_marks(frames, 0, total))])
    merged = merge_zones((Window.of(s.own_from, s.own_to, total, BASE, FPS),
                          _zone_marks(frames, s.first_frame, s.own_to))
                         for s in plan_segments(total, FPS, segment_s, overlap_s))
    key = ("middle", "person")
    return single.get(key, ZoneTotals()), merged.get(key, ZoneTotals())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 230), st.integers(20, 60),
                          st.sampled_from([0.2, 0.45, 0.7]), st.booleans()),
                min_size=1, max_size=6))
def test_segments_with_enough_overlap_measure_zones_like_the_single_stream(
        walkers: list[tuple[int, int, float, bool]]) -> None:
    """Walkers through a zone at any moment, boundaries included: entries, exits, peak
    occupancy and dwell merged from segments equal one stream's (no walk outlasts the
    overlap, so no dwell is cut short)."""
    single, merged = _zones_merged(_walkers(walkers, 250), 2.0, 3.0)
    assert (merged.entries, merged.exits, merged.peak_occupancy, merged.dwell_count) == (
        single.entries, single.exits, single.peak_occupancy, single.dwell_count)
    assert merged.dwell_total_s == pytest.approx(single.dwell_total_s)


def test_an_object_lingering_across_a_boundary_counts_once_with_a_shorter_dwell() -> None:
    """In from frame ~30 to ~130, across the boundaries at 50 and 100: one entry, one exit,
    peak 1; the last segment (tracking from frame 75) measures the dwell from there."""
    frames: list[list[Detection]] = []
    for f in range(160):
        x = 0.1 + 0.4 * min(f / 40, 1.0) + 0.4 * max(0, f - 120) / 40
        frames.append([Detection(x - 0.03, 0.37, x + 0.03, 0.53, 0.9, "person")])
    plan = plan_segments(160, FPS, 2.0, 1.0)
    assert [s.first_frame for s in plan] == [0, 25, 75]
    single, merged = _zones_merged(frames, 2.0, 1.0)
    assert (single.entries, single.exits, single.peak_occupancy) == (1, 1, 1)
    assert (merged.entries, merged.exits, merged.peak_occupancy, merged.dwell_count) == (
        1, 1, 1, 1)
    entered_s = _zone_marks(frames, 0, 160)[0].at - BASE
    assert merged.dwell_total_s == pytest.approx(single.dwell_total_s - (75 / FPS - entered_s),
                                                 abs=1.5 / FPS)
