"""Multi-object tracking with ByteTrack (Roboflow's maintained `trackers` package).

The whole tracker is checkpointed with each batch, so another worker resumes it after
failover. The checkpoint is the pickled tracker object (base64 in the JSON checkpoint): it is
written and read only by camcount workers of the same version, inside the apply transaction.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from workers.detection import Detection

# ByteTrack's Kalman noise is tuned in pixels; relative boxes are scaled to a nominal
# 1000-pixel frame so tracking behaves the same at any stream resolution.
SCALE = 1000.0


@dataclass(frozen=True)
class TrackerConfig:
    lost_track_buffer: int = 30  # frames at 30 fps a lost track is kept for re-association
    frame_rate: float = 30.0
    activation_threshold: float = 0.5  # confidence to start a track
    high_confidence: float = 0.5  # first-stage association threshold
    minimum_consecutive_frames: int = 2  # confirmations before a track has an id
    minimum_iou: float = 0.1


@dataclass(frozen=True)
class TrackedBox:
    track_id: int
    object_class: str
    box: tuple[float, float, float, float]  # relative x1, y1, x2, y2


def _new(config: TrackerConfig) -> ByteTrackTracker:
    return ByteTrackTracker(
        lost_track_buffer=config.lost_track_buffer, frame_rate=config.frame_rate,
        track_activation_threshold=config.activation_threshold,
        minimum_consecutive_frames=config.minimum_consecutive_frames,
        minimum_iou_threshold=config.minimum_iou,
        high_conf_det_threshold=config.high_confidence,
    )


@dataclass
class Tracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)
    classes: list[str] = field(default_factory=list)
    _impl: ByteTrackTracker | None = None

    def __post_init__(self) -> None:
        if self._impl is None:
            self._impl = _new(self.config)

    def update(self, detections: Sequence[Detection]) -> list[TrackedBox]:
        """One frame. Returns confirmed tracks only: a track has an id once ByteTrack has
        matched it on consecutive frames, so one-frame blips never reach the counter."""
        assert self._impl is not None
        if detections:
            xyxy = np.array([[d.x1, d.y1, d.x2, d.y2] for d in detections]) * SCALE
            class_id = np.array([self._class_index(d.object_class) for d in detections])
            scores = np.array([d.score for d in detections], dtype=float)
            found = sv.Detections(xyxy=xyxy, confidence=scores, class_id=class_id)
        else:
            found = sv.Detections.empty()
        tracked = self._impl.update(found)
        if tracked.tracker_id is None or tracked.class_id is None:
            return []
        out = []
        for box, cls, tid in zip(tracked.xyxy, tracked.class_id, tracked.tracker_id,
                                 strict=True):
            if tid < 0:
                continue
            x1, y1, x2, y2 = (float(v) / SCALE for v in box)
            out.append(TrackedBox(int(tid), self.classes[int(cls)], (x1, y1, x2, y2)))
        return out

    def live_ids(self) -> set[int]:
        assert self._impl is not None
        return {int(t.tracker_id) for t in self._impl.tracks if t.tracker_id >= 0}

    def _class_index(self, name: str) -> int:
        if name not in self.classes:
            self.classes.append(name)
        return self.classes.index(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "bytetrack": base64.b64encode(pickle.dumps(self._impl)).decode(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: TrackerConfig | None = None) -> Tracker:
        config = config or TrackerConfig()
        if "bytetrack" not in data:
            return cls(config)
        impl = pickle.loads(base64.b64decode(data["bytetrack"]))  # our own checkpoint rows
        return cls(config, list(data.get("classes", [])), impl)
