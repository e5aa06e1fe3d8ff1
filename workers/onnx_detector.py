"""The ONNX Runtime detector: YOLOv8/YOLO11 and YOLOX exports on TensorRT, CUDA or the CPU.

Blocking (inference takes tens of ms on a CPU): call it from a worker thread, never from the
event loop. `detect` keeps no per-call state on the instance and ONNX Runtime sessions may be
run from several threads at once, so one instance can serve several cameras (DetectorCache).

Inference streams: a batch's model runs are spread over `streams` threads, each session.run
using `intra_op_threads` cores (by default the cores divided among the streams). On a CPU, a
small model's intra-op parallelism scales poorly: measured here (2 cores, yolov8n int8), one
run on both cores made 21.9 frames/s, one core 23.6, and two one-core runs side by side 47 --
so two streams of one thread each double throughput, and halve a batch's latency too. This is
what OpenVINO calls throughput mode. On a GPU, two streams overlap one run's pre- and
post-processing on the CPU with the next run on the device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from workers.detection import Detection, Image, check_thresholds, class_ids
from workers.providers import choose_providers, lacks_gpu
from workers.yolo_decode import (
    PAD_VALUE,
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

log = logging.getLogger(__name__)

_INPUT_DTYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


class OnnxDetector:
    """Detector for one ONNX model file; see the module docstring for threading.

    Batches follow the model: where its batch dimension is dynamic, up to `max_batch` frames go
    in one `session.run`; where it is fixed (both shared models: 1), exactly that many, the
    last run padded. `input_size` applies only where the model's height/width are dynamic.
    Beware dynamically quantised int8 models with a dynamic batch: DynamicQuantizeLinear picks
    one activation scale per tensor, i.e. across the whole batch, so a frame's detections then
    depend on its batch mates (measured on a batch-dynamic copy of yolov8n_int8).
    """

    name = "onnx"

    def __init__(
        self,
        model_path: Path,
        *,
        use_gpu: bool = False,
        gpu_device: int = 0,
        confidence: float = 0.3,
        iou_threshold: float = 0.5,
        classes: Collection[str] | None = None,
        max_batch: int = 8,
        streams: int = 1,
        intra_op_threads: int | None = None,
        input_size: int = 640,
        trt_cache_dir: Path | None = None,
    ) -> None:
        check_thresholds(confidence, iou_threshold)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        if intra_op_threads is None and streams > 1:
            intra_op_threads = max(1, (os.cpu_count() or 1) // streams)
        self.model_path = Path(model_path)
        self.confidence = confidence
        self.iou_threshold = iou_threshold

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        requested = choose_providers(
            ort.get_available_providers(), use_gpu=use_gpu, gpu_device=gpu_device,
            trt_cache_dir=trt_cache_dir,
        )
        self._session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=requested
        )
        self._providers: list[str] = list(self._session.get_providers())
        self.streams = streams
        self._pool = (ThreadPoolExecutor(streams, thread_name_prefix="onnx-stream")
                      if streams > 1 else None)

        model_input = self._session.get_inputs()[0]
        model_output = self._session.get_outputs()[0]
        self._input_name: str = model_input.name
        self._output_name: str = model_output.name
        shape = model_input.shape
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ValueError(f"expected a (B, 3, H, W) image input, got {shape}")
        dtype = _INPUT_DTYPES.get(model_input.type)
        if dtype is None:
            raise ValueError(f"unsupported input type {model_input.type}")
        self._dtype = dtype
        batch, height, width = shape[0], shape[2], shape[3]
        # A static batch dimension (both shared models export 1) must be filled exactly.
        self._fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        self._chunk = self._fixed_batch or max_batch
        self._input_h = height if isinstance(height, int) else input_size
        self._input_w = width if isinstance(width, int) else input_size

        self._family = detect_family(model_output.shape)
        metadata = self._session.get_modelmeta().custom_metadata_map
        self._names = parse_class_names(metadata, class_count(self._family, model_output.shape))
        ids = class_ids(self._names, classes)
        self._allowed = None if ids is None else np.array(ids, np.intp)
        if self._family is ModelFamily.YOLOX:
            self._grid, self._strides = yolox_grid(self._input_h, self._input_w)

        log.info(
            "loaded %s: %s, input %dx%d, batch %s, providers %s, %d stream(s) of %s thread(s)",
            self.model_path.name, self._family, self._input_w, self._input_h,
            self._fixed_batch or f"dynamic (up to {max_batch})", self._providers, streams,
            intra_op_threads or "default",
        )
        if use_gpu and lacks_gpu(self._providers):
            log.warning("GPU requested for %s but no GPU provider loaded; running on %s",
                        self.model_path.name, self._providers)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses, best first."""
        return list(self._providers)

    @property
    def family(self) -> ModelFamily:
        return self._family

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return self._input_w, self._input_h

    @property
    def max_batch(self) -> int:
        """Frames per session.run: the model's static batch, or max_batch where dynamic."""
        return self._chunk

    @property
    def fixed_batch(self) -> int | None:
        """The model's static batch size, or None where the batch dimension is dynamic."""
        return self._fixed_batch

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    def warm_up(self) -> None:
        # A full-size batch per stream: ORT (and CUDA/TensorRT more so) sizes its buffers on
        # first use, per thread.
        dummy = np.full((self._input_h, self._input_w, 3), PAD_VALUE, np.uint8)
        self.detect([dummy] * self._chunk * self.streams)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def detect(self, frames: Sequence[Image]) -> list[list[Detection]]:
        chunks = [frames[start : start + self._chunk]
                  for start in range(0, len(frames), self._chunk)]
        if self._pool is None or len(chunks) < 2:
            per_chunk = [self._detect_chunk(chunk) for chunk in chunks]
        else:
            # The pool is shared by every caller: at most `streams` runs at once, whichever
            # batches or cameras they belong to.
            per_chunk = list(self._pool.map(self._detect_chunk, chunks))
        return [found for chunk in per_chunk for found in chunk]

    def _detect_chunk(self, frames: Sequence[Image]) -> list[list[Detection]]:
        rows = self._fixed_batch or len(frames)
        batch = np.zeros((rows, 3, self._input_h, self._input_w), self._dtype)
        boxes: list[Letterbox] = []
        yolov8 = self._family is ModelFamily.YOLOV8
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or not frame.size:
                raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {frame.shape} "
                                 f"{frame.dtype}")
            height, width = frame.shape[:2]
            box = letterbox(width, height, self._input_w, self._input_h, centred=yolov8)
            fill_input(frame, box, batch[i], rgb=yolov8, scale=1 / 255 if yolov8 else 1.0)
            boxes.append(box)
        output: npt.NDArray[np.float32] = self._session.run(
            [self._output_name], {self._input_name: batch}
        )[0]
        return [self._decode(output[i], box) for i, box in enumerate(boxes)]

    def _decode(self, pred: npt.NDArray[np.float32], box: Letterbox) -> list[Detection]:
        pred = pred.astype(np.float32, copy=False)
        candidates: Candidates
        if self._family is ModelFamily.YOLOV8:
            candidates = yolov8_candidates(pred, self.confidence, self._allowed)
        else:
            candidates = yolox_candidates(
                pred, self._grid, self._strides, self.confidence, self._allowed
            )
        keep = nms(candidates, self.iou_threshold)
        return to_detections(candidates, keep, box, self._names)
