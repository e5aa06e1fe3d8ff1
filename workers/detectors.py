"""Which detector a camera's frames go through, per worker settings.

Motion detection keeps a background model per camera, so each camera has its own instance;
a model-based detector is stateless across frames and shared by every camera of the worker.
"""

from __future__ import annotations

from workers.detection import Detector
from workers.motion import MotionDetector
from workers.settings import WorkerSettings


class Detectors:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._per_camera: dict[str, Detector] = {}
        self._shared: Detector | None = None

    def load(self) -> None:
        """Load and warm up the shared model (blocking: call from a thread at start-up)."""
        s = self.settings
        if s.detector == "motion":
            return
        assert s.model_path is not None  # checked by the settings
        detector: Detector
        # Imported here: a motion-only worker never loads ONNX Runtime or torch.
        if s.detector == "onnx":
            from workers.onnx_detector import OnnxDetector

            detector = OnnxDetector(s.model_path, use_gpu=s.use_gpu, gpu_device=s.gpu_device,
                                    confidence=s.confidence, classes=s.class_filter,
                                    trt_cache_dir=s.trt_cache_dir)
        else:
            from workers.ultralytics_detector import UltralyticsDetector

            detector = UltralyticsDetector(s.model_path, use_gpu=s.use_gpu,
                                           gpu_device=s.gpu_device, confidence=s.confidence,
                                           classes=s.class_filter)
        detector.warm_up()
        self._shared = detector

    def for_camera(self, camera_id: str) -> Detector:
        if self._shared is not None:
            return self._shared
        found = self._per_camera.get(camera_id)
        if found is None:
            found = self._per_camera[camera_id] = MotionDetector()
        return found

    def forget(self, camera_id: str) -> None:
        self._per_camera.pop(camera_id, None)
