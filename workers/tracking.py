"""Multi-object tracking by constant-velocity prediction and greedy nearest matching.

Pure: no I/O, no clock. The whole state is plain data (`to_dict`/`from_dict`) so it can be
checkpointed in the apply transaction and resumed on another worker after failover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from workers.detection import Detection


@dataclass(frozen=True)
class TrackerConfig:
    max_distance: float = 0.15  # relative units: how far a track may move between frames
    max_misses: int = 5  # frames a track survives without a detection
    min_hits: int = 3  # detections before a track is confirmed (and may count)


@dataclass
class Track:
    track_id: int
    object_class: str
    box: tuple[float, float, float, float]
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    misses: int = 0

    def predicted_centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2 + self.vx, (y1 + y2) / 2 + self.vy


@dataclass
class Tracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: dict[int, Track] = field(default_factory=dict)
    next_id: int = 1

    def update(self, detections: list[Detection]) -> list[Track]:
        """Advance one frame; returns the tracks seen in this frame (matched or new)."""
        pairs = sorted(
            (
                (math.dist(track.predicted_centre(), det.centre), tid, di)
                for tid, track in self.tracks.items()
                for di, det in enumerate(detections)
                if det.object_class == track.object_class
            ),
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        seen: list[Track] = []
        for distance, tid, di in pairs:
            if distance > self.config.max_distance:
                break
            if tid in used_tracks or di in used_dets:
                continue
            used_tracks.add(tid)
            used_dets.add(di)
            seen.append(self._match(self.tracks[tid], detections[di]))
        for tid in list(self.tracks):
            if tid not in used_tracks:
                track = self.tracks[tid]
                track.misses += 1
                if track.misses > self.config.max_misses:
                    del self.tracks[tid]
        for di, det in enumerate(detections):
            if di not in used_dets:
                track = Track(self.next_id, det.object_class, (det.x1, det.y1, det.x2, det.y2))
                self.tracks[track.track_id] = track
                self.next_id += 1
                seen.append(track)
        return seen

    def is_confirmed(self, track: Track) -> bool:
        return track.hits >= self.config.min_hits

    @staticmethod
    def _match(track: Track, det: Detection) -> Track:
        old_x, old_y = (track.box[0] + track.box[2]) / 2, (track.box[1] + track.box[3]) / 2
        new_x, new_y = det.centre
        # Smooth the velocity so one noisy box does not throw the prediction off.
        track.vx = 0.5 * track.vx + 0.5 * (new_x - old_x) / (track.misses + 1)
        track.vy = 0.5 * track.vy + 0.5 * (new_y - old_y) / (track.misses + 1)
        track.box = (det.x1, det.y1, det.x2, det.y2)
        track.hits += 1
        track.misses = 0
        return track

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_id": self.next_id,
            "tracks": [
                [t.track_id, t.object_class, list(t.box), t.vx, t.vy, t.hits, t.misses]
                for t in self.tracks.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: TrackerConfig | None = None) -> Tracker:
        tracker = cls(config or TrackerConfig(), {}, int(data.get("next_id", 1)))
        for tid, cls_name, box, vx, vy, hits, misses in data.get("tracks", []):
            x1, y1, x2, y2 = (float(v) for v in box)
            tracker.tracks[int(tid)] = Track(
                int(tid), str(cls_name), (x1, y1, x2, y2), float(vx), float(vy),
                int(hits), int(misses),
            )
        return tracker
