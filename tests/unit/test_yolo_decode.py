"""YOLO decoding, NMS and letterbox geometry on hand-built tensors and synthetic frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.detection import Detection
from workers.yolo_decode import (
    COCO80,
    Candidates,
    Letterbox,
    ModelFamily,
    class_count,
    detect_family,
    fill_input,
    letterbox,
    nms,
    parse_class_names,
    to_detections,
    yolov8_candidates,
    yolox_candidates,
    yolox_grid,
)

PERSON, CAR = 0, 2

# Source 1280x720 into a 640 input: scale 0.5, image 640x360 centred, 140 px of padding above.
SRC_W, SRC_H = 1280, 720
V8_BOX = letterbox(SRC_W, SRC_H, 640, 640, centred=True)

# (source-pixel xyxy, class, score)
V8_ANCHORS = [
    ((200.0, 100.0, 400.0, 500.0), PERSON, 0.9),  # kept: best person
    ((220.0, 120.0, 420.0, 520.0), PERSON, 0.8),  # IoU 0.75 with the first: suppressed
    ((210.0, 110.0, 410.0, 510.0), CAR, 0.7),  # overlaps the person, other class: kept
    ((800.0, 200.0, 1000.0, 600.0), PERSON, 0.6),  # far away: kept
    ((900.0, 300.0, 1100.0, 700.0), CAR, 0.2),  # below the threshold
]


def yolov8_tensor(anchors: list[tuple[tuple[float, float, float, float], int, float]],
                  n: int = 32) -> np.ndarray:
    pred = np.zeros((1, 84, n), np.float32)
    for k, (src, cls, score) in enumerate(anchors):
        x1, y1, x2, y2 = V8_BOX.to_input(np.array([src], np.float32))[0]
        pred[0, :4, k] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        pred[0, 4 + cls, k] = score
    return pred


def decode_v8(pred: np.ndarray, confidence: float = 0.3,
              allowed: list[int] | None = None) -> list[Detection]:
    cands = yolov8_candidates(
        pred[0], confidence, None if allowed is None else np.array(allowed, np.intp)
    )
    return to_detections(cands, nms(cands, 0.5), V8_BOX, COCO80)


def rel(src: tuple[float, float, float, float]) -> list[float]:
    return [src[0] / SRC_W, src[1] / SRC_H, src[2] / SRC_W, src[3] / SRC_H]


def test_yolov8_keeps_the_right_boxes_in_relative_source_coordinates() -> None:
    found = decode_v8(yolov8_tensor(V8_ANCHORS))
    assert [(d.object_class, round(d.score, 3)) for d in found] == [
        ("person", 0.9), ("car", 0.7), ("person", 0.6)
    ]
    for det, (src, _, _) in zip(found, [V8_ANCHORS[0], V8_ANCHORS[2], V8_ANCHORS[3]],
                                strict=True):
        assert [det.x1, det.y1, det.x2, det.y2] == pytest.approx(rel(src), abs=1e-5)


def test_class_filter_and_confidence_threshold() -> None:
    pred = yolov8_tensor(V8_ANCHORS)
    assert [d.object_class for d in decode_v8(pred, allowed=[CAR])] == ["car"]
    assert [d.score for d in decode_v8(pred, confidence=0.75)] == [pytest.approx(0.9)]
    assert len(decode_v8(pred, confidence=0.1)) == 4  # the 0.2 car joins, far from the rest


def test_class_filter_takes_the_best_allowed_class_of_an_anchor() -> None:
    # Class scores are independent sigmoids: an anchor may be 0.9 person and 0.5 car. Asking
    # for cars only must still see the car, not drop the anchor because person won overall.
    pred = yolov8_tensor([((200.0, 100.0, 400.0, 500.0), PERSON, 0.9)])
    pred[0, 4 + CAR, 0] = 0.5
    (det,) = decode_v8(pred, allowed=[CAR])
    assert det.object_class == "car"
    assert det.score == pytest.approx(0.5)


def test_boxes_are_clipped_to_the_frame_and_padding_only_boxes_dropped() -> None:
    pred = np.zeros((1, 84, 4), np.float32)
    pred[0, :4, 0] = [320, 150, 100, 40]  # input y 130..170: straddles the top edge (140)
    pred[0, :4, 1] = [320, 60, 100, 40]  # input y 40..80: wholly in the padding
    pred[0, 4 + PERSON, :2] = 0.9
    found = decode_v8(pred)
    assert len(found) == 1
    assert found[0].y1 == 0.0
    assert found[0].y2 == pytest.approx((170 - 140) / 0.5 / SRC_H)


def test_yolox_grid_decode_of_one_hot_cell() -> None:
    grid, strides = yolox_grid(416, 416)
    assert grid.shape == (52 * 52 + 26 * 26 + 13 * 13, 2) == (3549, 2)
    pred = np.zeros((3549, 85), np.float32)
    hot = 52 * 52 + 3 * 26 + 5  # stride 16, cell gx=5, gy=3 (row-major within a stride)
    pred[hot, :4] = [0.5, 0.25, math.log(4), math.log(6)]
    pred[hot, 4], pred[hot, 5 + CAR] = 0.9, 0.8
    decoy = 100  # confident objectness, weak class: 0.9 * 0.2 = 0.18 < 0.3
    pred[decoy, 4], pred[decoy, 5 + PERSON] = 0.9, 0.2
    cands = yolox_candidates(pred, grid, strides, 0.3)
    # xy = (o + grid) * stride = (88, 52); wh = exp(o) * stride = (64, 96)
    assert cands.boxes.tolist() == [[56.0, 4.0, 120.0, 100.0]]
    assert cands.classes.tolist() == [CAR]
    assert cands.scores.tolist() == [pytest.approx(0.72)]
    # 640x480 into 416, top-left: scale 0.65, image 416x312 at (0, 0).
    box = letterbox(640, 480, 416, 416, centred=False)
    assert (box.new_w, box.new_h, box.left, box.top) == (416, 312, 0, 0)
    (det,) = to_detections(cands, nms(cands, 0.5), box, COCO80)
    expected = [56 / 0.65 / 640, 4 / 0.65 / 480, 120 / 0.65 / 640, 100 / 0.65 / 480]
    assert [det.x1, det.y1, det.x2, det.y2] == pytest.approx(expected, abs=1e-5)
    assert det.object_class == "car"


def test_yolox_head_must_match_the_grid() -> None:
    grid, strides = yolox_grid(416, 416)
    with pytest.raises(ValueError, match="anchors"):
        yolox_candidates(np.zeros((8400, 85), np.float32), grid, strides, 0.3)


def test_nms_is_class_aware_and_capped() -> None:
    same = np.array([[10, 10, 50, 50]] * 3, np.float32)
    cands = Candidates(same, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1]))
    assert nms(cands, 0.5).tolist() == [0, 2]
    assert nms(cands, 0.5, max_detections=1).tolist() == [0]
    assert nms(Candidates.empty(), 0.5).tolist() == []


@pytest.mark.parametrize(
    ("shape", "family", "classes"),
    [
        ((1, 84, 8400), ModelFamily.YOLOV8, 80),
        (("batch", 84, "anchors"), ModelFamily.YOLOV8, 80),
        ((1, 3549, 85), ModelFamily.YOLOX, 80),
        (("batch", "anchors", 85), ModelFamily.YOLOX, 80),
        ((1, 5, 8400), ModelFamily.YOLOV8, 1),
    ],
)
def test_family_from_output_shape(
    shape: tuple[int | str, ...], family: ModelFamily, classes: int
) -> None:
    assert detect_family(shape) is family
    assert class_count(family, shape) == classes


def test_family_needs_a_three_axis_output() -> None:
    with pytest.raises(ValueError):
        detect_family((1, 8400))
    with pytest.raises(ValueError):
        detect_family(("b", "x", "y"))


def test_class_names_from_metadata() -> None:
    names = parse_class_names({"names": "{0: 'person', 1: 'bicycle', 2: 'car'}"}, 3)
    assert names == ("person", "bicycle", "car")
    assert parse_class_names({"names": "['a', 'b']"}, 2) == ("a", "b")
    assert parse_class_names({}, 80) == COCO80
    assert len(COCO80) == 80
    assert (COCO80[0], COCO80[2], COCO80[5], COCO80[7]) == ("person", "car", "bus", "truck")


@pytest.mark.parametrize(
    "raw",
    [
        "__import__('os').system('true')",  # code, not a literal: literal_eval refuses it
        "{0: 'person'",
        "{'a': 'person'}",
        "{0: 'person', 2: 'car'}",  # a gap
    ],
)
def test_bad_class_names_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_class_names({"names": raw}, 2)


def test_missing_names_on_a_non_coco_model_are_refused() -> None:
    with pytest.raises(ValueError, match="no `names`"):
        parse_class_names({}, 3)


def test_channel_order_scale_and_padding_per_family() -> None:
    frame = np.empty((300, 400, 3), np.uint8)
    frame[...] = (10, 20, 30)  # B, G, R
    v8 = np.zeros((3, 640, 640), np.float32)
    box = letterbox(400, 300, 640, 640, centred=True)  # 640x480 at top 80
    fill_input(frame, box, v8, rgb=True, scale=1 / 255)
    assert v8[:, 320, 320] == pytest.approx([30 / 255, 20 / 255, 10 / 255])
    assert v8[:, 40, 320] == pytest.approx([114 / 255] * 3)
    assert v8[:, 600, 320] == pytest.approx([114 / 255] * 3)
    yx = np.zeros((3, 416, 416), np.float32)
    box = letterbox(400, 300, 416, 416, centred=False)  # 416x312 at the top-left
    fill_input(frame, box, yx, rgb=False, scale=1.0)
    assert yx[:, 5, 5].tolist() == [10, 20, 30]
    assert yx[:, 311, 200].tolist() == [10, 20, 30]
    assert yx[:, 312, 200].tolist() == [114, 114, 114]


sizes = st.tuples(st.integers(32, 1920), st.integers(32, 1080))
inputs = st.sampled_from([(320, 320), (416, 416), (640, 640), (640, 384)])


@settings(max_examples=60, deadline=None)
@given(src=sizes, model=inputs, centred=st.booleans(), data=st.data())
def test_letterbox_round_trip_on_pixels(
    src: tuple[int, int], model: tuple[int, int], centred: bool, data: st.DataObject
) -> None:
    """A white box drawn on a frame is found in the model input where `to_input` says, and
    `to_source` maps it back: identity within 1 model-input pixel (1/scale source pixels)."""
    (src_w, src_h), (input_w, input_h) = src, model
    box = letterbox(src_w, src_h, input_w, input_h, centred=centred)
    assert box.left >= 0 and box.left + box.new_w <= input_w
    assert box.top >= 0 and box.top + box.new_h <= input_h
    # Big enough to keep a full-intensity core after downscaling.
    min_w = min(src_w, math.ceil(4 / box.scale_x))
    min_h = min(src_h, math.ceil(4 / box.scale_y))
    w = data.draw(st.integers(min_w, src_w), label="w")
    h = data.draw(st.integers(min_h, src_h), label="h")
    x1 = data.draw(st.integers(0, src_w - w), label="x1")
    y1 = data.draw(st.integers(0, src_h - h), label="y1")
    frame = np.zeros((src_h, src_w, 3), np.uint8)
    frame[y1 : y1 + h, x1 : x1 + w] = 255
    tensor = np.zeros((3, input_h, input_w), np.float32)
    fill_input(frame, box, tensor, rgb=False, scale=1.0)

    bright = tensor[0] > 127.5  # half-way between black and white; the 114 pad stays out
    ys, xs = np.nonzero(bright)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    truth = np.array([[x1, y1, x1 + w, y1 + h]], np.float32)
    assert np.abs(found - box.to_input(truth)).max() <= 1.0 + 1e-3
    back = box.to_source(found)
    tolerance = np.array([1 / box.scale_x, 1 / box.scale_y] * 2) + 1e-3
    assert (np.abs(back - truth) <= tolerance).all()


@settings(max_examples=200, deadline=None)
@given(src=sizes, model=inputs, centred=st.booleans(),
       corners=st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_letterbox_round_trip_on_coordinates(
    src: tuple[int, int], model: tuple[int, int], centred: bool, corners: list[float]
) -> None:
    (src_w, src_h), (input_w, input_h) = src, model
    box = letterbox(src_w, src_h, input_w, input_h, centred=centred)
    xa, ya, xb, yb = corners
    truth = np.array([[min(xa, xb) * src_w, min(ya, yb) * src_h,
                       max(xa, xb) * src_w, max(ya, yb) * src_h]], np.float32)
    assert np.abs(box.to_source(box.to_input(truth)) - truth).max() < 0.01


def test_letterbox_layouts() -> None:
    # ultralytics centres and rounds; YOLOX pastes at the top-left and truncates.
    assert letterbox(640, 480, 640, 640, centred=True) == Letterbox(640, 480, 640, 480, 0, 80)
    assert letterbox(1280, 721, 640, 640, centred=True).new_h == 360  # round(360.5) -> 360
    assert letterbox(640, 481, 416, 416, centred=False) == Letterbox(640, 481, 416, 312, 0, 0)
