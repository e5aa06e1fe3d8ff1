"""Multi-object tracking with ByteTrack (Roboflow's maintained `trackers` package).

What "confirmed" means: ByteTrack starts a tentative track from an unmatched detection that
clears `activation_threshold` and gives it an id only once it has been matched on
`minimum_consecutive_frames` consecutive frames; a tentative track that misses a frame is
dropped. Confirmation is a verdict on the *track* (a real object, not a one-frame blip), not on
single observations: on the frame a track is confirmed we also hand out the boxes it had while
tentative (`TrackedBox.earlier`), so a person who crosses a line between the frame they first
appear and the frame they are confirmed (a stream's first frames, someone stepping out from
behind another) is seen on both sides. A track that is never confirmed reaches no counter.

Two changes to the library's association, both against identity switches in crowds, where a
lost track's box stays where its person vanished while others walk through that spot (measured
on TUD-Stadtmitte: a person hidden behind two passers-by lost their track to a third, taller,
one, and with it their side of the counting line):
- ByteTrack's reference second stage (the authors' code, and ultralytics'): low-score boxes only
  continue tracks matched on the previous frame, at IoU >= `LOW_SCORE_IOU`. `trackers` 2.6
  offers them to every unmatched track, lost ones included, at the first stage's IoU.
- A lost track is only found again on a box of similar height (`HEIGHT_RATIO`), so a
  passer-by at another depth cannot take it over.

The whole tracker is checkpointed with each batch, so another worker resumes it after
failover. The checkpoint is the pickled tracker object together with the tentative tracks'
boxes (base64 in the JSON checkpoint): it is written and read only by camcount workers of the
same version, inside the apply transaction.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet
from trackers.core.bytetrack.utils import _get_alive_tracklets
from trackers.utils.detections import default_confidences

from workers.detection import Detection

# ByteTrack's Kalman noise is tuned in pixels; relative boxes are scaled to a nominal
# 1000-pixel frame so tracking behaves the same at any stream resolution.
SCALE = 1000.0
LOW_SCORE_IOU = 0.5  # ByteTrack's second-stage threshold
# Most by which one person's box height changes while out of sight for a second or two; a
# passer-by at another depth differs by more. Shared with the counter's hand-over.
HEIGHT_RATIO = 1.25

Box = tuple[float, float, float, float]  # relative x1, y1, x2, y2


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
    box: Box
    # On the frame a track is confirmed: (capture time, box) of each frame it was tentative,
    # oldest first. Empty on every later frame.
    earlier: tuple[tuple[float, Box], ...] = ()


class _ByteTrack(ByteTrackTracker):
    """The library's `update`, step for step, but for the two changes in the module
    docstring."""

    def update(self, detections: sv.Detections, frame: np.ndarray | None = None,
               timestamp: float | None = None) -> sv.Detections:
        self._warn_if_frame_unused(frame)
        timing = self._predict_timing(timestamp)
        if timing.skip_update:
            return self._detections_for_skipped_update(detections)
        if len(self.tracks) == 0 and len(detections) == 0:
            return _none()
        self._predict_tracklets(self.tracks, timing)
        budget = self._lost_track_time_budget(timing, self.maximum_time_without_update)
        self._prune_lost_tracks(timing)
        boxes = detections.xyxy
        confidences = default_confidences(detections)
        high = np.where(confidences >= self.high_conf_det_threshold)[0]
        low = np.where(confidences < self.high_conf_det_threshold)[0]
        predicted = (np.array([t.get_state_bbox() for t in self.tracks]) if self.tracks
                     else np.empty((0, 4)))
        out_det: list[int] = []
        out_ids: list[int] = []

        overlap = self.iou.compute(predicted, boxes[high])
        # After this frame's predict, a track matched on the previous frame has 1 here.
        lost = np.array([t.time_since_update > 1 for t in self.tracks], dtype=bool)
        if lost.any() and len(high):
            track_h = np.maximum(predicted[:, 3] - predicted[:, 1], 1e-6)  # may have collapsed
            ratio = (boxes[high, 3] - boxes[high, 1])[None, :] / track_h[:, None]
            unlike = (ratio > HEIGHT_RATIO) | (ratio < 1 / HEIGHT_RATIO)
            overlap = np.where(lost[:, None] & unlike, 0.0, overlap)
        matched, unmatched, unmatched_high = self._get_associated_indices(
            overlap, self.minimum_iou_threshold)
        for row, col in matched:
            self._matched(self.tracks[row], boxes[high[col]], int(high[col]), out_det, out_ids)

        recent = [i for i in unmatched if self.tracks[i].time_since_update == 1]
        matched, _, unmatched_low = self._get_associated_indices(
            self.iou.compute(predicted[recent], boxes[low]), LOW_SCORE_IOU)
        for row, col in matched:
            self._matched(self.tracks[recent[row]], boxes[low[col]], int(low[col]), out_det,
                          out_ids)
        for col in unmatched_low:
            out_det.append(int(low[col]))
            out_ids.append(-1)

        self._spawn_new_tracks(boxes, confidences, unmatched_high, high, out_det, out_ids)
        self.tracks = _get_alive_tracklets(
            tracklets=self.tracks, minimum_consecutive_frames=self.minimum_consecutive_frames,
            maximum_frames_without_update=self.maximum_frames_without_update,
            maximum_time_without_update=budget,
        )
        if not out_det:
            return _none()
        result = cast(sv.Detections, detections[np.array(out_det)])
        result.tracker_id = np.array(out_ids, dtype=int)
        return result

    def _matched(self, track: ByteTrackTracklet, box: np.ndarray, index: int,
                 out_det: list[int], out_ids: list[int]) -> None:
        track.update(box)
        if (track.number_of_successful_consecutive_updates >= self.minimum_consecutive_frames
                and track.tracker_id == -1):
            track.tracker_id = self._allocate_tracker_id()
        out_det.append(index)
        out_ids.append(track.tracker_id)


def _none() -> sv.Detections:
    result = sv.Detections.empty()
    result.tracker_id = np.array([], dtype=int)
    return result


def _new(config: TrackerConfig) -> ByteTrackTracker:
    return _ByteTrack(
        lost_track_buffer=config.lost_track_buffer, frame_rate=config.frame_rate,
        track_activation_threshold=config.activation_threshold,
        minimum_consecutive_frames=config.minimum_consecutive_frames,
        minimum_iou_threshold=config.minimum_iou,
        high_conf_det_threshold=config.high_confidence,
    )


def _relative(box: Any) -> Box:
    x1, y1, x2, y2 = (float(v) / SCALE for v in box)
    return x1, y1, x2, y2


@dataclass
class Tracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)
    classes: list[str] = field(default_factory=list)
    _impl: ByteTrackTracker | None = None
    # Tentative tracklet -> (time, box) per frame so far. Keyed by the tracklet object (a
    # tentative track has no id), pickled with the tracker so the keys stay the objects in
    # `_impl.tracks` after a restore.
    _tentative: dict[ByteTrackTracklet, list[tuple[float, Box]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self._impl is None:
            self._impl = _new(self.config)

    def update(self, detections: Sequence[Detection], at_s: float = 0.0) -> list[TrackedBox]:
        """One frame, captured at `at_s`. Returns confirmed tracks only (module docstring)."""
        assert self._impl is not None
        if detections:
            xyxy = np.array([[d.x1, d.y1, d.x2, d.y2] for d in detections]) * SCALE
            class_id = np.array([self._class_index(d.object_class) for d in detections])
            scores = np.array([d.score for d in detections], dtype=float)
            found = sv.Detections(xyxy=xyxy, confidence=scores, class_id=class_id)
        else:
            found = sv.Detections.empty()
        tracked = self._impl.update(found)
        by_id = {int(t.tracker_id): t for t in self._impl.tracks if t.tracker_id >= 0}
        out = []
        if tracked.tracker_id is not None and tracked.class_id is not None:
            for box, cls, tid in zip(tracked.xyxy, tracked.class_id, tracked.tracker_id,
                                     strict=True):
                if tid < 0:
                    continue
                earlier = self._tentative.pop(by_id[int(tid)], [])
                out.append(TrackedBox(int(tid), self.classes[int(cls)], _relative(box),
                                      tuple(earlier)))
        self._note_tentative(at_s)
        return out

    def _note_tentative(self, at_s: float) -> None:
        """Note this frame's box of each tentative track matched (or started) on it; forget
        the ones ByteTrack dropped. The box is the filter's state, which on a track's first
        frame is exactly the detection that started it."""
        assert self._impl is not None
        alive = [t for t in self._impl.tracks if t.tracker_id < 0]
        self._tentative = {t: self._tentative.get(t, []) for t in alive}
        for tracklet in alive:
            if tracklet.time_since_update == 0:
                self._tentative[tracklet].append((at_s, _relative(tracklet.get_state_bbox())))

    def live_ids(self) -> set[int]:
        assert self._impl is not None
        return {int(t.tracker_id) for t in self._impl.tracks if t.tracker_id >= 0}

    def _class_index(self, name: str) -> int:
        if name not in self.classes:
            self.classes.append(name)
        return self.classes.index(name)

    def to_dict(self) -> dict[str, Any]:
        state = pickle.dumps((self._impl, self._tentative))
        return {"classes": list(self.classes), "bytetrack": base64.b64encode(state).decode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: TrackerConfig | None = None) -> Tracker:
        config = config or TrackerConfig()
        if "bytetrack" not in data:
            return cls(config)
        state = pickle.loads(base64.b64decode(data["bytetrack"]))  # our own checkpoint rows
        impl, tentative = state if isinstance(state, tuple) else (state, {})
        if type(impl) is ByteTrackTracker:  # written before _ByteTrack: same state, new rules
            impl.__class__ = _ByteTrack
        return cls(config, list(data.get("classes", [])), impl, tentative)
