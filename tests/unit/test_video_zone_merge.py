"""Merging zone events across a video job's segments (videos/zone_merge.py): table-tested, and
a single stream's visits tiled into overlapping segments give back its totals."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videos.ownership import Window
from videos.segments import plan_segments
from videos.zone_merge import ZoneMark, ZoneTotals, merge_zones

FPS, BASE = 25.0, 1_000_000.0


def at(frame: int) -> float:
    return BASE + frame / FPS


def enter(frame: int, zone: str = "door", cls: str = "person") -> ZoneMark:
    return ZoneMark(at(frame), zone, cls, "enter")


def leave(frame: int, dwell_s: float, zone: str = "door", cls: str = "person") -> ZoneMark:
    return ZoneMark(at(frame), zone, cls, "exit", dwell_s)


# Two segments over 100 frames: the second owns 50.., its tracker starts at 30.
FIRST, SECOND = Window.of(0, 50, 100, BASE, FPS), Window.of(50, 100, 100, BASE, FPS)


def test_an_event_in_the_overlap_counts_once_for_the_segment_that_owns_it() -> None:
    # Both segments report the visit (40..45, inside the overlap 30..50); the first owns it.
    merged = merge_zones([(FIRST, [enter(40), leave(45, 0.2)]),
                          (SECOND, [enter(40), leave(45, 0.2)])])
    assert merged == {("door", "person"): ZoneTotals(1, 1, 1, 0.2, 1)}


def test_an_object_inside_across_a_boundary() -> None:
    # Enters at 20, leaves at 70. The second segment first sees it at 30 (its overlap's start)
    # and reports that as an entry: before its window, so not counted; its exit is counted,
    # with the dwell it saw (the documented limitation: 40 frames, not 50).
    merged = merge_zones([(FIRST, [enter(20)]),
                          (SECOND, [enter(30), leave(70, 40 / FPS)])])
    assert merged == {("door", "person"): ZoneTotals(1, 1, 1, 40 / FPS, 1)}


def test_occupancy_at_an_owned_event_counts_who_came_in_during_the_overlap() -> None:
    merged = merge_zones([(SECOND, [enter(31), enter(35), enter(60), leave(62, 1.2)])])
    assert merged == {("door", "person"): ZoneTotals(1, 1, 3, 1.2, 1)}


def test_the_occupancy_at_a_boundary_is_the_earlier_segments_to_measure() -> None:
    # Two came in before the boundary and stay. The second segment's tracker, cold in its
    # overlap, took one of them for two (a phantom at 33): it owns no event, so it measures
    # nothing; the first, with the longer history, measured 2.
    merged = merge_zones([(FIRST, [enter(31), enter(35)]),
                          (SECOND, [enter(31), enter(33), enter(35)])])
    assert merged == {("door", "person"): ZoneTotals(2, 0, 2, 0.0, 0)}
    assert merge_zones([(SECOND, [enter(31), enter(35)])]) == {}


def test_one_frame_is_read_once_all_its_events_are_applied() -> None:
    # One leaves as another comes in on the same frame: never two inside (as live, where
    # occupancy is read once per frame).
    merged = merge_zones([(FIRST, [enter(1), leave(10, 0.36), enter(10)])])
    assert merged[("door", "person")].peak_occupancy == 1


def test_zones_and_classes_are_kept_apart_and_late_events_ignored() -> None:
    merged = merge_zones([
        (FIRST, [enter(1), enter(2, cls="car"), enter(3, zone="exit"), enter(55)]),
        (SECOND, []),
    ])
    assert merged == {("door", "person"): ZoneTotals(1, 0, 1, 0.0, 0),
                      ("door", "car"): ZoneTotals(1, 0, 1, 0.0, 0),
                      ("exit", "person"): ZoneTotals(1, 0, 1, 0.0, 0)}
    assert merge_zones([]) == {} and merge_zones([(SECOND, [])]) == {}


@pytest.mark.parametrize("frame", [49, 50])
def test_the_owner_of_an_event_at_the_boundary(frame: int) -> None:
    merged = merge_zones([(FIRST, [enter(frame)]), (SECOND, [])])
    assert merged.get(("door", "person"), ZoneTotals()).entries == (frame < 50)


# --- a single stream's visits, tiled into segments ---

Visit = tuple[str, int, int | None]  # (class, entered at frame, left at frame or still inside)


def single_stream(visits: list[Visit], frames: int) -> dict[str, ZoneTotals]:
    """What one stream reports per class, computed frame by frame (not by replay)."""
    out: dict[str, ZoneTotals] = {}
    for cls, start, end in visits:
        t = out.setdefault(cls, ZoneTotals())
        t.entries += 1
        if end is not None:
            t.exits += 1
            t.dwell_total_s += (end - start) / FPS
            t.dwell_count += 1
    for f in range(frames):
        inside = Counter(c for c, s, e in visits if s <= f and (e is None or f < e))
        for cls, n in inside.items():
            out[cls].peak_occupancy = max(out[cls].peak_occupancy, n)
    return out


def seen_by_segment(visits: list[Visit], first: int, to: int) -> list[ZoneMark]:
    """A segment sees each visit only within the frames it processes, [first, to): an object
    already inside at `first` is a new sighting there, its dwell counted from then."""
    marks = []
    for cls, start, end in visits:
        if start >= to or (end is not None and end <= first):
            continue
        seen_from = max(start, first)
        marks.append(enter(seen_from, cls=cls))
        if end is not None and end < to:
            marks.append(leave(end, (end - seen_from) / FPS, cls=cls))
    return marks


@settings(max_examples=200, deadline=None)
@given(
    st.integers(40, 400),
    st.lists(st.tuples(st.sampled_from(["person", "car"]), st.integers(0, 399),
                       st.one_of(st.none(), st.integers(1, 120))), max_size=12),
    st.floats(0.4, 4.0), st.floats(0.04, 2.0),
)
def test_tiled_segments_give_the_single_stream_totals(
        frames: int, raw: list[tuple[str, int, int | None]], segment_s: float,
        overlap_s: float) -> None:
    visits: list[Visit] = [(cls, start, None if length is None or start + length >= frames
                            else start + length)
                           for cls, start, length in raw if start < frames]
    plan = plan_segments(frames, FPS, segment_s, overlap_s)
    merged = merge_zones(
        (Window.of(s.own_from, s.own_to, frames, BASE, FPS),
         seen_by_segment(visits, s.first_frame, s.own_to)) for s in plan)
    single = single_stream(visits, frames)
    assert {k[1] for k in merged} == set(single) and {k[0] for k in merged} <= {"door"}
    for cls, want in single.items():
        got = merged[("door", cls)]
        assert (got.entries, got.exits, got.peak_occupancy, got.dwell_count) == (
            want.entries, want.exits, want.peak_occupancy, want.dwell_count)
        # Dwell across a boundary is measured from the later segment's overlap: never longer.
        assert got.dwell_total_s <= want.dwell_total_s + 1e-9
        crossing = [v for v in visits if v[0] == cls and v[2] is not None and any(
            v[1] < s.first_frame and s.own_from <= v[2] < s.own_to for s in plan)]
        if not crossing:
            assert got.dwell_total_s == pytest.approx(want.dwell_total_s)
