"""YOLO pre- and post-processing: letterbox geometry, raw-head decoding, class-aware NMS.

Pure numpy (plus cv2.resize): no session, no I/O, so every step is tested on hand-built
tensors. Two output layouts are understood:
- YOLOv8/YOLO11 (ultralytics): (B, 4+nc, N), boxes already decoded to cx, cy, w, h in input
  pixels, class scores already sigmoided, no objectness.
- YOLOX raw head: (B, N, 5+nc), box offsets on a stride 8/16/32 grid, objectness and class
  probabilities already sigmoided (the export keeps `decode_in_inference` off, so only the
  box decoding is left to us).
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from workers.detection import Detection, Image

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]

PAD_VALUE = 114  # both families pad with grey 114 (YOLOv8 sees it as 114/255 after scaling)
YOLOX_STRIDES = (8, 16, 32)
MAX_CANDIDATES = 30_000  # above this, keep only the best before NMS (ultralytics' max_nms)
MAX_DETECTIONS = 300  # per frame, after NMS

COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip


class ModelFamily(enum.StrEnum):
    YOLOV8 = "yolov8"
    YOLOX = "yolox"

    @property
    def centred(self) -> bool:
        # ultralytics' LetterBox centres the image; YOLOX's own `preproc` pastes it at the
        # top-left corner and pads only right and bottom. Each model was trained that way.
        return self is ModelFamily.YOLOV8


def detect_family(output_shape: Sequence[int | str | None]) -> ModelFamily:
    """Tell the layout from the output's shape: the class axis is the short, static one."""
    if len(output_shape) != 3:
        raise ValueError(f"expected a (batch, a, b) detection output, got shape {output_shape}")
    a, b = output_shape[1], output_shape[2]
    if isinstance(a, int) and isinstance(b, int):
        channels_first = a < b
    elif isinstance(a, int) or isinstance(b, int):
        # The anchor count is the axis that varies with a dynamic input size.
        channels_first = isinstance(a, int)
    else:
        raise ValueError(f"cannot tell the class axis of output shape {output_shape}")
    return ModelFamily.YOLOV8 if channels_first else ModelFamily.YOLOX


def class_count(family: ModelFamily, output_shape: Sequence[int | str | None]) -> int:
    dim = output_shape[1] if family is ModelFamily.YOLOV8 else output_shape[2]
    if not isinstance(dim, int):
        raise ValueError(f"class axis of output shape {output_shape} is not static")
    return dim - (4 if family is ModelFamily.YOLOV8 else 5)


def parse_class_names(metadata: Mapping[str, str], num_classes: int) -> tuple[str, ...]:
    """Class names from ultralytics' `names` metadata ("{0: 'person', ...}"); COCO-80 if absent.

    literal_eval, not eval: the string comes from a model file, which is untrusted input.
    """
    raw = metadata.get("names")
    if raw is None:
        if num_classes != len(COCO80):
            raise ValueError(f"model has {num_classes} classes and no `names` metadata")
        return COCO80
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"unreadable `names` metadata: {raw[:80]!r}") from exc
    if isinstance(parsed, list | tuple):
        parsed = dict(enumerate(parsed))
    if not isinstance(parsed, dict) or not all(
        isinstance(k, int) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise ValueError(f"`names` metadata is not a {{index: name}} mapping: {raw[:80]!r}")
    if sorted(parsed) != list(range(num_classes)):
        raise ValueError(f"`names` metadata does not name classes 0..{num_classes - 1}")
    return tuple(parsed[i] for i in range(num_classes))


@dataclass(frozen=True)
class Letterbox:
    """Where a source frame lands in the model input: scaled to (new_w, new_h) at (left, top)."""

    src_w: int
    src_h: int
    new_w: int
    new_h: int
    left: int
    top: int

    @property
    def scale_x(self) -> float:
        # The real per-axis scale after rounding the resized size, not the nominal ratio.
        return self.new_w / self.src_w

    @property
    def scale_y(self) -> float:
        return self.new_h / self.src_h

    def to_input(self, boxes: FloatArray) -> FloatArray:
        """Source-pixel xyxy boxes to model-input pixels."""
        scale = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        offset = np.array([self.left, self.top] * 2, np.float32)
        return (boxes * scale + offset).astype(np.float32)

    def to_source(self, boxes: FloatArray) -> FloatArray:
        """Model-input-pixel xyxy boxes back to source pixels."""
        scale = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        offset = np.array([self.left, self.top] * 2, np.float32)
        return ((boxes - offset) / scale).astype(np.float32)


def letterbox(src_w: int, src_h: int, input_w: int, input_h: int, *, centred: bool) -> Letterbox:
    ratio = min(input_w / src_w, input_h / src_h)
    if centred:  # ultralytics: round the size, split the padding, bias odd pixels right/down
        new_w, new_h = min(input_w, round(src_w * ratio)), min(input_h, round(src_h * ratio))
        left = round((input_w - new_w) / 2 - 0.1)
        top = round((input_h - new_h) / 2 - 0.1)
        return Letterbox(src_w, src_h, new_w, new_h, left, top)
    # YOLOX: truncate the size (int(), as its preproc does), image at the top-left corner
    new_w, new_h = max(1, int(src_w * ratio)), max(1, int(src_h * ratio))
    return Letterbox(src_w, src_h, new_w, new_h, 0, 0)


def fill_input(
    frame: Image, box: Letterbox, out: npt.NDArray[np.floating], *, rgb: bool, scale: float
) -> None:
    """Write one BGR frame, letterboxed, into `out` (3, H, W) as float, channels swapped to RGB
    when the model wants it and multiplied by `scale` (1/255 for YOLOv8, 1 for YOLOX)."""
    _, input_h, input_w = out.shape
    canvas = np.full((input_h, input_w, 3), PAD_VALUE, np.uint8)
    resized = (
        frame
        if (box.new_w, box.new_h) == (box.src_w, box.src_h)
        else cv2.resize(frame, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
    )
    canvas[box.top : box.top + box.new_h, box.left : box.left + box.new_w] = resized
    chw = canvas.transpose(2, 0, 1)
    if rgb:
        chw = chw[::-1]
    if scale == 1.0:
        out[...] = chw
    else:  # a typed scalar keeps the multiply in the output's precision, not float64
        np.multiply(chw, out.dtype.type(scale), out=out, casting="unsafe")


@dataclass(frozen=True)
class Candidates:
    """Boxes above the confidence threshold, before NMS: xyxy in input pixels."""

    boxes: FloatArray  # (K, 4)
    scores: FloatArray  # (K,)
    classes: IntArray  # (K,) model class indices

    @staticmethod
    def empty() -> Candidates:
        return Candidates(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp)
        )


def _xywh_to_xyxy(xy: FloatArray, wh: FloatArray) -> FloatArray:
    half = wh / 2
    return np.concatenate([xy - half, xy + half], axis=1).astype(np.float32)


def _best_class(
    scores: FloatArray, allowed: IntArray | None, confidence: float
) -> tuple[IntArray, FloatArray, IntArray]:
    """scores (K, nc) -> (rows above threshold, their best score, their best allowed class)."""
    if allowed is not None:
        scores = scores[:, allowed]
    best = scores.argmax(axis=1)
    best_score = np.take_along_axis(scores, best[:, None], axis=1)[:, 0]
    rows = np.flatnonzero(best_score > confidence)
    classes = best[rows] if allowed is None else allowed[best[rows]]
    return rows, best_score[rows].astype(np.float32), classes.astype(np.intp)


def yolov8_candidates(
    pred: FloatArray, confidence: float, allowed: IntArray | None = None
) -> Candidates:
    """One image's (4+nc, N) ultralytics output -> candidates."""
    class_scores = pred[4:]
    # Cheap pre-filter on the column max before transposing the survivors only.
    cols = np.flatnonzero(class_scores.max(axis=0) > confidence)
    if cols.size == 0:
        return Candidates.empty()
    rows, scores, classes = _best_class(class_scores[:, cols].T, allowed, confidence)
    sel = pred[:4, cols[rows]].T
    return Candidates(_xywh_to_xyxy(sel[:, :2], sel[:, 2:4]), scores, classes)


def yolox_grid(
    input_h: int, input_w: int, strides: Sequence[int] = YOLOX_STRIDES
) -> tuple[FloatArray, FloatArray]:
    """Per-anchor (gx, gy) cell and stride, in the head's order: stride by stride, row-major."""
    grids, steps = [], []
    for stride in strides:
        gh, gw = input_h // stride, input_w // stride
        gx, gy = np.meshgrid(np.arange(gw), np.arange(gh))
        grids.append(np.stack([gx, gy], axis=-1).reshape(-1, 2))
        steps.append(np.full((gh * gw, 1), stride))
    return (
        np.concatenate(grids).astype(np.float32),
        np.concatenate(steps).astype(np.float32),
    )


def yolox_candidates(
    pred: FloatArray,
    grid: FloatArray,
    strides: FloatArray,
    confidence: float,
    allowed: IntArray | None = None,
) -> Candidates:
    """One image's (N, 5+nc) raw YOLOX head -> candidates."""
    if pred.shape[0] != grid.shape[0]:
        raise ValueError(f"head has {pred.shape[0]} anchors, grid has {grid.shape[0]}")
    # score = objectness * class <= objectness: anchors below the threshold cannot survive.
    idx = np.flatnonzero(pred[:, 4] > confidence)
    if idx.size == 0:
        return Candidates.empty()
    sub = pred[idx]
    rows, scores, classes = _best_class(sub[:, 4:5] * sub[:, 5:], allowed, confidence)
    sub, idx = sub[rows], idx[rows]
    xy = (sub[:, :2] + grid[idx]) * strides[idx]
    wh = np.exp(sub[:, 2:4]) * strides[idx]
    return Candidates(_xywh_to_xyxy(xy, wh), scores, classes)


def nms(
    candidates: Candidates, iou_threshold: float, max_detections: int = MAX_DETECTIONS
) -> IntArray:
    """Greedy class-aware NMS; returns kept indices, best score first.

    Boxes of different classes are shifted apart so one pass never lets them suppress each
    other (the torchvision batched_nms trick).
    """
    scores = candidates.scores
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    if order.size == 0:
        return order.astype(np.intp)
    boxes = candidates.boxes[order].astype(np.float64)
    shift = (float(np.abs(boxes).max()) + 1.0) * 2
    boxes = boxes + (candidates.classes[order] * shift)[:, None]
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    alive = np.arange(order.size)
    kept: list[int] = []
    while alive.size and len(kept) < max_detections:
        i, rest = alive[0], alive[1:]
        kept.append(int(i))
        w = (np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]))
        h = (np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]))
        inter = w.clip(0) * h.clip(0)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        alive = rest[iou <= iou_threshold]
    return order[np.asarray(kept, np.intp)]


def to_detections(
    candidates: Candidates, keep: IntArray, box: Letterbox, names: Sequence[str]
) -> list[Detection]:
    """Kept input-pixel boxes -> relative (0..1) source coordinates, clipped to the frame.

    A box that lies wholly in the padding collapses to zero size on clipping and is dropped.
    """
    src = box.to_source(candidates.boxes[keep])
    rel = (src / np.array([box.src_w, box.src_h] * 2, np.float32)).clip(0.0, 1.0)
    ok = (rel[:, 2] > rel[:, 0]) & (rel[:, 3] > rel[:, 1])
    coords = rel[ok].tolist()
    scores = candidates.scores[keep][ok].tolist()
    classes = candidates.classes[keep][ok].tolist()
    return [
        Detection(x1, y1, x2, y2, score, names[cls])
        for (x1, y1, x2, y2), score, cls in zip(coords, scores, classes, strict=True)
    ]
