"""Which detector a camera's frames go through, per worker settings and the camera's model.

Motion detection keeps a background model per camera, so each camera has its own instance,
primed from the camera's stored background when this worker starts on it (workers/backgrounds.py). A
model-based detector is stateless across frames and shared: the worker's default model
(MODEL_PATH) serves cameras that name none; a camera naming a model gets it from MODEL_DIR
through a small LRU of loaded models (MODEL_CACHE_SIZE).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from contracts.messages import MessageError
from workers.detection import Detection, Detector, Image
from workers.detector_cache import DetectorCache
from workers.motion import MotionDetector
from workers.settings import WorkerSettings

SUFFIXES = {"onnx": (".onnx",), "ultralytics": (".pt", ".onnx")}


class Detectors:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._per_camera: dict[str, MotionDetector] = {}
        self._shared: Detector | None = None
        self._models: DetectorCache[str, Detector] = DetectorCache(settings.model_cache_size)

    def load(self) -> None:
        """Load and warm up the default model (blocking: call from a thread at start-up)."""
        if self.settings.detector != "motion":
            assert self.settings.model_path is not None  # checked by the settings
            self._shared = self._load(self.settings.model_path)

    @property
    def order_free(self) -> bool:
        """Whether a batch's detections are independent of the batches before it, so batches
        may be detected ahead of their turn. Motion keeps a background model: it may not."""
        return self.settings.detector != "motion"

    def detect(self, camera_id: str, model: str | None,
               frames: Sequence[Image]) -> list[list[Detection]]:
        """Blocking (a model may have to load): call from a thread."""
        return self.for_camera(camera_id, model).detect(frames)

    def for_camera(self, camera_id: str, model: str | None = None) -> Detector:
        if self.settings.detector == "motion":
            found = self._per_camera.get(camera_id)
            if found is None:
                found = self._per_camera[camera_id] = MotionDetector()
            return found
        if model is None:
            assert self._shared is not None, "load() first"
            return self._shared
        path = self._model_file(model)
        return self._models.get(model, lambda: self._load(path))

    def needs_background(self, camera_id: str) -> bool:
        """Whether this worker is about to start a camera's motion model (prime() it first)."""
        return self.settings.detector == "motion" and camera_id not in self._per_camera

    def prime(self, camera_id: str, background: Image | None) -> None:
        """Start the camera's motion model from a background learnt elsewhere (None: from
        its first frame)."""
        detector = self._per_camera[camera_id] = MotionDetector()
        if background is not None:
            detector.prime(background)

    def frames_seen(self, camera_id: str) -> int:
        """Frames the camera's motion model has seen (0: none, or no motion model)."""
        found = self._per_camera.get(camera_id)
        return 0 if found is None else found.frames_seen

    def background(self, camera_id: str) -> Image | None:
        """The camera's learnt background (computed: ask only when one is due)."""
        found = self._per_camera.get(camera_id)
        return None if found is None else found.background()

    def served_models(self) -> tuple[str, ...]:
        """Model names cameras may ask for: MODEL_DIR's models (read each time, so a model
        dropped in is advertised with the next heartbeat)."""
        directory = self.settings.model_dir
        if self.settings.detector == "motion" or directory is None or not directory.is_dir():
            return ()
        suffixes = SUFFIXES[self.settings.detector]
        return tuple(sorted({p.stem for p in directory.iterdir()
                             if p.suffix in suffixes and p.is_file()}))

    @property
    def max_batch(self) -> int | None:
        """Frames per run of the default model; None for motion or before load()."""
        found = getattr(self._shared, "max_batch", None)
        return found if isinstance(found, int) else None

    def forget(self, camera_id: str) -> None:
        self._per_camera.pop(camera_id, None)

    def _model_file(self, model: str) -> Path:
        directory = self.settings.model_dir
        if directory is None:
            raise MessageError(f"camera asks for model {model!r} but this worker has no "
                               "MODEL_DIR")
        for suffix in SUFFIXES[self.settings.detector]:
            candidate = directory / f"{model}{suffix}"
            if candidate.is_file():
                return candidate
        raise MessageError(f"unknown model {model!r}: not in this worker's MODEL_DIR")

    def _load(self, path: Path) -> Detector:
        s = self.settings
        detector: Detector
        # Imported here: a motion-only worker never loads ONNX Runtime or torch.
        if s.detector == "onnx":
            from workers.onnx_detector import OnnxDetector

            detector = OnnxDetector(path, use_gpu=s.use_gpu, gpu_device=s.gpu_device,
                                    confidence=s.confidence, classes=s.class_filter,
                                    trt_cache_dir=s.trt_cache_dir, streams=s.streams,
                                    intra_op_threads=s.intra_op_threads)
        else:
            from workers.ultralytics_detector import UltralyticsDetector

            detector = UltralyticsDetector(path, use_gpu=s.use_gpu, gpu_device=s.gpu_device,
                                           confidence=s.confidence, classes=s.class_filter)
        detector.warm_up()
        return detector
