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
        if self.settings.detector == "onnx":
            # Imported here: a motion-only worker never loads ONNX Runtime.
            from workers.onnx_detector import OnnxDetector

            assert self.settings.model_path is not None  # checked by the settings
            detector = OnnxDetector(
                self.settings.model_path, use_gpu=self.settings.use_gpu,
                gpu_device=self.settings.gpu_device, confidence=self.settings.confidence,
                classes=self.settings.class_filter,
            )
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
