"""The model-free detector: background subtraction (MOG2), morphology, contours.

Its background model is state of the camera, like the tracker's: a worker that takes a camera
over and starts from an empty model takes its first frame as background, objects included, and
for the next frames sees a moving object as two strips (its leading edge and the background it
uncovers), which are counted twice or not at all. So the learnt background travels too
(workers/backgrounds.py) and primes the new worker's model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from workers.detection import Detection, Image


@dataclass(frozen=True)
class MotionConfig:
    history: int = 300
    var_threshold: float = 32.0
    min_area_frac: float = 0.002  # ignore blobs smaller than this fraction of the frame
    work_width: int = 320  # detection runs on a downscaled copy: motion needs no detail


class MotionDetector:
    name = "motion"

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=self.config.history,
            varThreshold=self.config.var_threshold,
            detectShadows=False,
        )
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._primer: Image | None = None
        self.frames_seen = 0  # since this model started (primed or not)

    def prime(self, background: Image) -> None:
        """Start from a background learnt elsewhere (at this detector's working size), instead
        of from the first frame. Used on the first frame, if its working size matches."""
        self._primer = background

    def background(self) -> Image | None:
        """The background learnt so far, at the working size; None before any frame."""
        if self.frames_seen == 0:
            return None
        return self._subtractor.getBackgroundImage().astype(np.uint8, copy=False)

    def warm_up(self) -> None:
        # MOG2 needs no model; nothing to load.
        return None

    def detect(self, frames: Sequence[Image]) -> list[list[Detection]]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: Image) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = min(1.0, self.config.work_width / width)
        small = (
            cv2.resize(frame, (round(width * scale), round(height * scale)),
                       interpolation=cv2.INTER_AREA)
            if scale < 1.0
            else frame
        )
        if self._primer is not None:
            if self._primer.shape == small.shape:
                # learningRate 1: the model is re-initialised from this image alone, and the
                # first real frames then refine it as they would a model a frame old.
                self._subtractor.apply(self._primer, learningRate=1.0)
            self._primer = None
        mask = self._subtractor.apply(small)
        self.frames_seen += 1
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        sh, sw = mask.shape[:2]
        min_area = self.config.min_area_frac * sw * sh
        found: list[Detection] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < min_area:
                continue
            found.append(
                Detection(x / sw, y / sh, (x + w) / sw, (y + h) / sh, 1.0, "motion")
            )
        return found
