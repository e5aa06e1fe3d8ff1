"""The ultralytics detector: YOLO .pt checkpoints, model yamls and .onnx exports through
ultralytics' own pre- and post-processing, on torch (CUDA or CPU) or ONNX Runtime.

The alternative to OnnxDetector, for models or GPUs where torch is the better runtime, and the
reference its boxes are checked against. It needs the `ultralytics` extra (and torch), which
is imported only when a detector is built, so importing camcount never needs torch.

Blocking (tens of ms per frame on a CPU): call it from a worker thread. ultralytics' models
are not thread-safe (one predictor, state set per call), so calls on one instance take turns.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from workers.detection import Detection, Image, check_thresholds, class_ids
from workers.yolo_decode import COCO80, PAD_VALUE

log = logging.getLogger(__name__)

INSTALL_HINT = "install the ultralytics extra: pip install -e '.[ultralytics]'"
MODEL_SUFFIXES = frozenset({".pt", ".yaml", ".yml", ".onnx"})
STRIDE = 32


def import_ultralytics() -> ModuleType:
    """The ultralytics package, made offline first.

    These machines reach no model hub, and ultralytics pip-installs what it misses at run time
    (it would install plain onnxruntime over onnxruntime-gpu, the same module). It reads both
    switches once, at import; "True" rather than "1" because older 8.3 releases compared the
    offline switch with "true".
    """
    os.environ["YOLO_OFFLINE"] = "True"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    already_imported = "ultralytics" in sys.modules
    # Its import also sets process-wide state for its own training loops: OpenCV down to one
    # thread (the worker's JPEG decode and resize use more) and numpy's print options.
    cv2_threads, printoptions = cv2.getNumThreads(), np.get_printoptions()
    try:
        import ultralytics
        import ultralytics.utils
    except ImportError as exc:
        # exc names what is missing: ultralytics itself, or torch or another of its dependencies.
        raise ImportError(f"cannot import ultralytics ({exc}); {INSTALL_HINT}") from exc
    finally:
        cv2.setNumThreads(cv2_threads)
        np.set_printoptions(**printoptions)
    if already_imported:
        # Imported by someone else before the switches were set: turn them off where they live.
        from ultralytics.utils import checks

        for module in (sys.modules["ultralytics.utils"], checks):
            for switch in ("AUTOINSTALL", "ONLINE"):
                if hasattr(module, switch):
                    setattr(module, switch, False)
    return ultralytics


class UltralyticsDetector:
    """Detector for one ultralytics-loadable model; see the module docstring for threading.

    Boxes come from ultralytics' own letterbox, NMS and scaling, with the same thresholds and
    class filter semantics as OnnxDetector. `input_size` is the inference size, except for an
    .onnx file whose height and width are fixed: that runs at its own size.
    """

    name = "ultralytics"

    def __init__(
        self,
        model_path: Path,
        *,
        use_gpu: bool = False,
        gpu_device: int = 0,
        confidence: float = 0.3,
        iou_threshold: float = 0.5,
        classes: Collection[str] | None = None,
        input_size: int = 640,
    ) -> None:
        check_thresholds(confidence, iou_threshold)
        if input_size < STRIDE or input_size % STRIDE:
            raise ValueError(f"input_size must be a positive multiple of {STRIDE}, got "
                             f"{input_size}")
        if gpu_device < 0:
            raise ValueError(f"gpu_device must be >= 0, got {gpu_device}")
        self.model_path = Path(model_path)
        suffix = self.model_path.suffix.lower()
        if suffix not in MODEL_SUFFIXES:
            raise ValueError(f"expected a .pt, .yaml or .onnx model, got {self.model_path}")
        # A yaml may name one of ultralytics' bundled configs ("yolov8n.yaml"), not a file.
        if suffix in {".pt", ".onnx"} and not self.model_path.is_file():
            raise FileNotFoundError(f"model file {self.model_path} not found")
        self.confidence = confidence
        self.iou_threshold = iou_threshold

        ultralytics = import_ultralytics()
        import torch

        # ultralytics' imgsz: one side, or (height, width).
        self._imgsz: int | tuple[int, int] = input_size
        if suffix == ".onnx":
            self._imgsz = _onnx_input_size(self.model_path) or input_size
        self._device = "cpu"
        if use_gpu and torch.cuda.is_available():
            if gpu_device >= torch.cuda.device_count():
                raise ValueError(f"gpu_device {gpu_device}, but torch sees "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
            self._device = f"cuda:{gpu_device}"
        elif use_gpu:
            log.warning("GPU requested for %s but torch sees no CUDA device; running on the CPU",
                        self.model_path.name)
        self._model: Any = ultralytics.YOLO(str(self.model_path), task="detect")
        self._names = class_names_of(self._model.names)
        self._class_ids = class_ids(self._names, classes)
        # ultralytics' default "rect" letterbox pads only to the stride, which a torch model takes
        # at any size; an ONNX export with a fixed height and width (the project's exports, with
        # a dynamic batch only) rejects it, so those get the full square, as in OnnxDetector.
        self._rect = suffix != ".onnx"
        self._lock = threading.Lock()
        log.info("loaded %s with ultralytics %s on %s, input %s, %d classes",
                 self.model_path.name, ultralytics.__version__, self._device, self._imgsz,
                 len(self._names))

    @property
    def device(self) -> str:
        """The torch device inference runs on ("cpu" or "cuda:N")."""
        return self._device

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input, as OnnxDetector gives it."""
        if isinstance(self._imgsz, int):
            return self._imgsz, self._imgsz
        return self._imgsz[1], self._imgsz[0]

    def warm_up(self) -> None:
        # The first call builds the predictor and, on a GPU, CUDA's kernels and buffers.
        width, height = self.input_size
        self.detect([np.full((height, width, 3), PAD_VALUE, np.uint8)])

    def detect(self, frames: Sequence[Image]) -> list[list[Detection]]:
        if not frames:
            return []
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or not frame.size:
                raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame.shape} "
                                 f"{frame.dtype}")
        with self._lock:
            results = self._model.predict(
                list(frames), conf=self.confidence, iou=self.iou_threshold,
                classes=self._class_ids, imgsz=self._imgsz, rect=self._rect,
                device=self._device, verbose=False,
            )
        return [self._to_detections(result) for result in results]

    def _to_detections(self, result: Any) -> list[Detection]:
        boxes = result.boxes
        xyxyn = np.clip(boxes.xyxyn.cpu().numpy(), 0.0, 1.0)
        scores = boxes.conf.cpu().numpy()
        ids = boxes.cls.cpu().numpy().astype(np.intp)
        return [
            Detection(float(x1), float(y1), float(x2), float(y2), float(score), self._names[i])
            for (x1, y1, x2, y2), score, i in zip(xyxyn, scores, ids, strict=True)
        ]


def class_names_of(names: Any) -> tuple[str, ...]:
    """A model's class names in index order, from ultralytics' {index: name}.

    A model built from a yaml (random weights, for throughput tests) names its classes '0',
    '1', ...: with 80 of them those are COCO's, named so, so that class filters such as
    "person" work on it and on its ONNX export (model_export does the same) alike.
    """
    mapping = dict(enumerate(names)) if isinstance(names, list | tuple) else dict(names)
    if sorted(mapping) != list(range(len(mapping))):
        raise ValueError(f"model class names are not indexed 0..n-1: {mapping}")
    ordered = tuple(str(mapping[i]) for i in range(len(mapping)))
    if ordered == tuple(str(i) for i in range(len(COCO80))):
        return COCO80
    return ordered




def _onnx_input_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an ultralytics ONNX export's image input where both are fixed.

    Other ONNX models (YOLOX, say) load but come out as garbage: ultralytics decodes any output
    as its own head, so those are refused here and left to OnnxDetector.
    """
    import onnx

    # Only the graph's header is needed; external weights (large models) stay on disk.
    model = onnx.load(str(path), load_external_data=False)
    keys = {prop.key for prop in model.metadata_props}
    if not {"names", "stride"} <= keys:
        raise ValueError(f"{path} is not an ultralytics export (no names/stride metadata); "
                         "serve it with the onnx detector")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"expected a (B, 3, H, W) image input in {path}, got {len(dims)} dims")
    height, width = dims[2].dim_value, dims[3].dim_value
    return (height, width) if height > 0 and width > 0 else None
