"""The ground-truth crossing evaluator of bench/accuracy: hand-made tracks, then the two real
TUD sequences against the counts their README states."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.accuracy.truth import (
    DirectionCounts,
    GtBox,
    PixelLine,
    count_directions,
    parse_mot_gt,
    true_crossings,
)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
VERTICAL = PixelLine((100.0, 0.0), (100.0, 200.0))  # top to bottom: left-to-right is "in"


def walk(track_id: int, feet: list[tuple[float, float]], first_frame: int = 1) -> list[GtBox]:
    """Boxes 20x40 whose foot points are `feet`, one annotated frame each."""
    return [
        GtBox(first_frame + i, track_id, x - 10, y - 40, 20, 40) for i, (x, y) in enumerate(feet)
    ]


def counts(boxes: list[GtBox], line: PixelLine = VERTICAL) -> DirectionCounts:
    return count_directions(true_crossings(boxes, line))


def test_foot_point_is_bottom_centre() -> None:
    assert GtBox(1, 1, 10, 20, 30, 40).foot == (25, 60)


@pytest.mark.parametrize(
    ("feet", "expected"),
    [
        ([(80, 100), (90, 100), (110, 100)], DirectionCounts(in_=1)),
        ([(120, 100), (105, 100), (95, 100)], DirectionCounts(out=1)),
        ([(80, 100), (120, 100), (80, 100), (120, 100)], DirectionCounts(in_=2, out=1)),
        ([(80, 100), (95, 100), (99, 100)], DirectionCounts()),  # approaches, never crosses
        ([(80, 100), (100, 100), (120, 100)], DirectionCounts(in_=1)),  # via a point on it
        ([(80, 100), (100, 100), (80, 100)], DirectionCounts()),  # touches and turns back
        ([(80, 250), (120, 250)], DirectionCounts()),  # passes below the segment's end
        ([(80, -10), (120, 10)], DirectionCounts(in_=1)),  # meets the segment near its end
        ([(80, 190), (120, 210)], DirectionCounts(in_=1)),  # meets it at (100, 200) exactly
    ],
)
def test_crossings_of_one_track(
    feet: list[tuple[float, float]], expected: DirectionCounts
) -> None:
    assert counts(walk(1, feet)) == expected


def test_direction_follows_line_orientation() -> None:
    # The same walk across the same line drawn bottom to top is the opposite direction.
    reversed_line = PixelLine(VERTICAL.b, VERTICAL.a)
    feet = [(80.0, 100.0), (120.0, 100.0)]
    assert counts(walk(1, feet)) == DirectionCounts(in_=1)
    assert counts(walk(1, feet), reversed_line) == DirectionCounts(out=1)
    # A horizontal line drawn left to right: moving down (y grows) is "out".
    horizontal = PixelLine((0.0, 100.0), (200.0, 100.0))
    assert counts(walk(1, [(50.0, 80.0), (50.0, 120.0)]), horizontal) == DirectionCounts(out=1)


def test_tracks_are_independent_and_gaps_join_consecutive_annotations() -> None:
    boxes = walk(1, [(80, 100), (120, 100)]) + walk(2, [(130, 50), (70, 50)], first_frame=5)
    # Track 3 is annotated on frames 1 and 9 only: still one move from left to right.
    boxes += [GtBox(1, 3, 50, 60, 20, 40), GtBox(9, 3, 150, 60, 20, 40)]
    found = true_crossings(boxes, VERTICAL)
    assert [(c.track_id, c.frame, c.direction) for c in found] == [
        (1, 2, "in"), (2, 6, "out"), (3, 9, "in"),
    ]


def test_rows_are_taken_in_frame_order_whatever_the_file_order() -> None:
    boxes = list(reversed(walk(1, [(80, 100), (120, 100)])))
    assert counts(boxes) == DirectionCounts(in_=1)


def test_parse_drops_rows_not_to_consider_and_rejects_garbage() -> None:
    text = "1,1,70,60,20,40,1,-1,-1,-1\n\n2,1,110,60,20,40,0,-1,-1,-1\n3,1,110,60,20,40,1,1,2,0\n"
    boxes = parse_mot_gt(text)
    assert [b.frame for b in boxes] == [1, 3]
    assert boxes[0].foot == (80, 100)
    with pytest.raises(ValueError, match="gt line 1"):
        parse_mot_gt("1,1,70\n")
    with pytest.raises(ValueError, match="gt line 2"):
        parse_mot_gt("1,1,70,60,20,40,1\n1,x,70,60,20,40,1\n")


def test_line_parsing_and_relative_coordinates() -> None:
    line = PixelLine.parse("480, 0, 480,480")
    assert line == PixelLine((480, 0), (480, 480))
    assert line.relative(640, 480) == ((0.75, 0.0), (0.75, 1.0))
    with pytest.raises(ValueError, match="x1,y1,x2,y2"):
        PixelLine.parse("1,2,3")
    with pytest.raises(ValueError, match="must differ"):
        PixelLine.parse("1,2,1,2")


@pytest.mark.parametrize(
    ("folder", "x", "expected"),
    [
        # ../shared/data/README.md: 6 events, 4 right-to-left and 2 left-to-right.
        ("tud_stadtmitte", 480, DirectionCounts(in_=2, out=4)),
        # 5 events, 1 right-to-left and 4 left-to-right.
        ("tud_campus", 320, DirectionCounts(in_=4, out=1)),
    ],
)
def test_real_ground_truth_gives_the_documented_counts(
    folder: str, x: float, expected: DirectionCounts
) -> None:
    gt = SHARED_DATA / "pedestrians" / folder / "gt" / "gt.txt"
    if not gt.is_file():
        pytest.skip(f"ground truth not present at {gt} (see ../shared/data/README.md)")
    boxes = parse_mot_gt(gt.read_text())
    assert counts(boxes, PixelLine((x, 0.0), (x, 480.0))) == expected


@pytest.mark.parametrize(
    "line",
    [
        PixelLine((100.0, 0.0), (100.0, 200.0)),
        PixelLine((100.0, 200.0), (100.0, 0.0)),
        PixelLine((0.0, 100.0), (200.0, 100.0)),
        PixelLine((200.0, 100.0), (0.0, 100.0)),
        PixelLine((90.0, 0.0), (110.0, 200.0)),  # steep: ObjectCounter treats it as vertical
        PixelLine((0.0, 90.0), (200.0, 110.0)),  # shallow: treated as horizontal
    ],
)
def test_objectcounter_direction_mapping_agrees_with_the_evaluator(line: PixelLine) -> None:
    """ObjectCounter's IN is "moved right" across a steep line and "moved down" across a
    shallow one, whatever the line's a->b; peers.py maps it onto our in/out by orientation."""
    from bench.accuracy.peers import objectcounter_in_is_ours

    steep = abs(line.a[0] - line.b[0]) < abs(line.a[1] - line.b[1])
    start, end = ((60.0, 100.0), (140.0, 100.0)) if steep else ((100.0, 60.0), (100.0, 140.0))
    ours = counts(walk(1, [start, end]), line)  # the peer's IN motion: right, or down
    assert ours.total == 1
    assert (ours.in_ == 1) is objectcounter_in_is_ours(line)
