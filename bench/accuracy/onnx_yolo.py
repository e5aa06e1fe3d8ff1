"""A minimal YOLOv8 ONNX loop of the benchmark's own: video frames, letterbox, ONNX Runtime,
decode of the 1x84x8400 head, NMS; and the bare-session timing that serves as the ceiling.

Written apart from workers/ on purpose: the trackers+supervision peer must not ride on the
pipeline's own detector code. Imports only numpy, OpenCV, PyAV and ONNX Runtime, which both the
project's .venv (onnxruntime-gpu, opencv-python-headless) and .venv-peers (onnxruntime,
opencv-python) have, so the peers script and the bench import the same module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

FloatArray = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]

PAD_VALUE = 114  # the grey ultralytics pads with
PERSON = 0  # COCO class index


def read_frames(path: Path) -> Iterator[Image]:
    """Every frame of a video file as BGR uint8, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


def clip_info(path: Path) -> tuple[int, int, float]:
    """Width, height and frame rate of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return stream.codec_context.width, stream.codec_context.height, float(rate or 25)


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the square model input: scale, then pad left/top."""

    scale: float
    pad_x: int
    pad_y: int

    def to_frame(self, xyxy: FloatArray) -> FloatArray:
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def letterbox(frame: Image, size: int) -> tuple[FloatArray, Letterbox]:
    """A BGR frame -> 1x3xSxS float32 RGB in 0..1, aspect kept, padded with grey."""
    height, width = frame.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    resized = frame if (new_w, new_h) == (width, height) else cv2.resize(
        frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR
    )
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    chw = canvas[:, :, ::-1].transpose(2, 0, 1)  # BGR -> RGB, HWC -> CHW
    tensor = np.ascontiguousarray(chw, dtype=np.float32)[None] / np.float32(255.0)
    return tensor.astype(np.float32, copy=False), Letterbox(scale, pad_x, pad_y)


def nms(xyxy: FloatArray, scores: FloatArray, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy NMS of one class; kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(xyxy[i, 0], xyxy[rest, 0])
        y1 = np.maximum(xyxy[i, 1], xyxy[rest, 1])
        x2 = np.minimum(xyxy[i, 2], xyxy[rest, 2])
        y2 = np.minimum(xyxy[i, 3], xyxy[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.intp)


def decode_persons(
    output: FloatArray, box: Letterbox, frame_wh: tuple[int, int], *, confidence: float,
    iou_threshold: float,
) -> tuple[FloatArray, FloatArray]:
    """The YOLOv8 head (1x84xN: cx, cy, w, h, 80 class scores) -> person boxes in frame
    pixels (xyxy, clipped) and their scores, after NMS."""
    head = output[0]
    scores = head[4 + PERSON]
    chosen = scores >= confidence
    cx, cy, w, h = (head[k][chosen] for k in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    xyxy = box.to_frame(xyxy)
    width, height = frame_wh
    np.clip(xyxy[:, [0, 2]], 0, width, out=xyxy[:, [0, 2]])
    np.clip(xyxy[:, [1, 3]], 0, height, out=xyxy[:, [1, 3]])
    kept = scores[chosen].astype(np.float32)
    keep = nms(xyxy, kept, iou_threshold)
    return xyxy[keep], kept[keep]


def cpu_session(model: Path) -> ort.InferenceSession:
    """ONNX Runtime on the CPU with its default threading (one thread per physical core):
    what every contestant here gets unless it chooses otherwise."""
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def input_size(session: ort.InferenceSession) -> int:
    shape: Sequence[Any] = session.get_inputs()[0].shape
    size = shape[2]
    if not isinstance(size, int) or shape[3] != size:
        raise ValueError(f"expected a static square model input, got {shape}")
    return size


@dataclass(frozen=True)
class BareTiming:
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def bare_loop(model: Path, clip: Path, *, warm_up: int = 3) -> BareTiming:
    """The ceiling: one session.run per frame of the clip, letterboxed tensors prepared up
    front, only the runs timed (no decode, no JPEG, no NMS, no tracking, no I/O)."""
    session = cpu_session(model)
    size = input_size(session)
    name = session.get_inputs()[0].name
    tensors = [letterbox(frame, size)[0] for frame in read_frames(clip)]
    if not tensors:
        raise ValueError(f"{clip} has no frames")
    for tensor in tensors[:warm_up]:
        session.run(None, {name: tensor})
    started = time.perf_counter()
    for tensor in tensors:
        session.run(None, {name: tensor})
    return BareTiming(len(tensors), time.perf_counter() - started)


def bare_streams_loop(model: Path, clip: Path, streams: int, *, warm_up: int = 3) -> BareTiming:
    """The ceiling for the worker's own threading: `streams` threads each running
    session.run on its share of the clip's frames, with the cores divided among them (as the
    worker's INFERENCE_STREAMS does), only the runs timed."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, (os.cpu_count() or 1) // streams)
    session = ort.InferenceSession(str(model), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    size = input_size(session)
    name = session.get_inputs()[0].name
    tensors = [letterbox(frame, size)[0] for frame in read_frames(clip)]
    if not tensors:
        raise ValueError(f"{clip} has no frames")
    shares = [tensors[i::streams] for i in range(streams)]

    def run(share: list[FloatArray]) -> None:
        for tensor in share:
            session.run(None, {name: tensor})

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(run, [share[:warm_up] for share in shares]))
        started = time.perf_counter()
        list(pool.map(run, shares))
        return BareTiming(len(tensors), time.perf_counter() - started)
