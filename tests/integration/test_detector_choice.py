"""Cameras naming their own model: resolved by name inside the worker's MODEL_DIR, loaded once
and shared through the LRU; the default model serves cameras that name none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.messages import MessageError
from workers.detectors import Detectors
from workers.motion import MotionDetector
from workers.onnx_detector import OnnxDetector
from workers.settings import WorkerSettings
from workers.yolo_decode import ModelFamily


def test_cameras_get_their_model_by_name_or_the_default(shared_data: Path) -> None:
    models = shared_data / "models"
    detectors = Detectors(WorkerSettings(
        detector="onnx", model_path=models / "yolov8n_int8.onnx", model_dir=models,
        model_cache_size=1,
    ))
    detectors.load()
    default = detectors.for_camera("a")
    assert isinstance(default, OnnxDetector) and default.family is ModelFamily.YOLOV8
    yolox = detectors.for_camera("b", "yolox_nano")
    assert isinstance(yolox, OnnxDetector) and yolox.family is ModelFamily.YOLOX
    assert detectors.for_camera("c", "yolox_nano") is yolox  # loaded once, shared
    assert {"yolov8n_int8", "yolox_nano"} <= set(detectors.served_models())  # advertised
    assert detectors.max_batch == 1  # both shared models have a static batch of one
    frame = np.zeros((360, 640, 3), np.uint8)
    assert detectors.detect("b", "yolox_nano", [frame, frame]) == [[], []]
    with pytest.raises(MessageError, match="unknown model 'nope'"):
        detectors.for_camera("d", "nope")


def test_motion_workers_keep_one_detector_per_camera_and_ignore_models() -> None:
    detectors = Detectors(WorkerSettings())
    detectors.load()
    a = detectors.for_camera("a", "yolox_nano")
    assert isinstance(a, MotionDetector)
    assert detectors.for_camera("a") is a and detectors.for_camera("b") is not a


def test_a_camera_model_without_model_dir_is_a_clear_error(shared_data: Path) -> None:
    detectors = Detectors(WorkerSettings(detector="onnx",
                                         model_path=shared_data / "models/yolov8n_int8.onnx"))
    detectors.load()
    with pytest.raises(MessageError, match="no MODEL_DIR"):
        detectors.for_camera("a", "yolox_nano")


def test_concurrency_settings(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Model detectors may detect ahead of their turn, motion may not; streams default to the
    cores (up to 4) on a CPU and 2 on a GPU; jobs cannot exceed the prefetch."""
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert WorkerSettings().streams == 4 and WorkerSettings(use_gpu=True).streams == 2
    assert WorkerSettings(inference_streams=3).streams == 3
    assert not Detectors(WorkerSettings()).order_free
    onnx = Detectors(WorkerSettings(detector="onnx", inference_streams=2, intra_op_threads=1,
                                    model_path=shared_data / "models/yolov8n_int8.onnx"))
    assert onnx.order_free
    onnx.load()
    loaded = onnx.for_camera("a")
    assert isinstance(loaded, OnnxDetector) and loaded.streams == 2
    with pytest.raises(ValueError, match="MAX_CONCURRENT_JOBS cannot exceed PREFETCH_COUNT"):
        WorkerSettings(max_concurrent_jobs=5, prefetch_count=4)
