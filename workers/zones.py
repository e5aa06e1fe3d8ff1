"""Zone occupancy per class, as pure code over tracks: current and peak occupancy, entries,
exits and dwell time. A track is inside when its anchor point lies in the polygon; like line
crossings, a change of inside/outside must hold for `settle_frames` observations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from contracts.geometry import Point


@dataclass(frozen=True)
class CountingZone:
    zone_id: int
    version: int
    polygon: tuple[Point, ...]

    def contains(self, x: float, y: float) -> bool:
        contour = np.array([[p.x, p.y] for p in self.polygon], dtype=np.float32)
        return cv2.pointPolygonTest(contour, (x, y), False) >= 0


@dataclass(frozen=True)
class ZoneEvent:
    zone_id: int
    zone_version: int
    track_id: int
    object_class: str
    kind: str  # "enter" | "exit"
    frame_index: int
    dwell_s: float  # for exits: time inside, 0 for entries


@dataclass
class _Presence:
    inside: bool
    since_s: float  # when the current inside/outside state settled
    pending_n: int = 0


@dataclass
class ZoneCounter:
    settle_frames: int = 2
    presence: dict[int, dict[int, _Presence]] = field(default_factory=dict)  # track -> zone
    classes: dict[int, str] = field(default_factory=dict)  # track -> class

    def observe(
        self, frame_index: int, at_s: float, track_id: int, object_class: str,
        anchor: tuple[float, float], zones: list[CountingZone],
    ) -> list[ZoneEvent]:
        self.classes[track_id] = object_class
        per_zone = self.presence.setdefault(track_id, {})
        events = []
        for zone in zones:
            inside = zone.contains(*anchor)
            state = per_zone.get(zone.zone_id)
            if state is None:
                per_zone[zone.zone_id] = _Presence(inside, at_s)
                if inside:  # first seen inside (e.g. appeared there): an entry
                    events.append(ZoneEvent(zone.zone_id, zone.version, track_id, object_class,
                                            "enter", frame_index, 0.0))
                continue
            if inside == state.inside:
                state.pending_n = 0
                continue
            state.pending_n += 1
            if state.pending_n < self.settle_frames:
                continue
            dwell = at_s - state.since_s if state.inside else 0.0
            state.inside, state.since_s, state.pending_n = inside, at_s, 0
            events.append(ZoneEvent(zone.zone_id, zone.version, track_id, object_class,
                                    "enter" if inside else "exit", frame_index, dwell))
        return events

    def occupancy(self) -> Counter[tuple[int, str]]:
        """(zone_id, class) -> tracks inside now."""
        return Counter(
            (zone_id, self.classes[tid])
            for tid, zones in self.presence.items()
            for zone_id, state in zones.items()
            if state.inside
        )

    def forget(self, live_track_ids: set[int], at_s: float, frame_index: int,
               zones: list[CountingZone]) -> list[ZoneEvent]:
        """Tracks that ended leave every zone they were in (with their dwell time)."""
        versions = {z.zone_id: z.version for z in zones}
        events = []
        for tid in [t for t in self.presence if t not in live_track_ids]:
            for zone_id, state in self.presence.pop(tid).items():
                if state.inside and zone_id in versions:
                    events.append(ZoneEvent(zone_id, versions[zone_id], tid,
                                            self.classes.get(tid, "?"), "exit", frame_index,
                                            at_s - state.since_s))
            self.classes.pop(tid, None)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {
            "settle_frames": self.settle_frames,
            "presence": {
                str(t): {str(z): [s.inside, s.since_s, s.pending_n] for z, s in zones.items()}
                for t, zones in self.presence.items()
            },
            "classes": {str(t): c for t, c in self.classes.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneCounter:
        counter = cls(int(data.get("settle_frames", 2)))
        for t, zones in data.get("presence", {}).items():
            counter.presence[int(t)] = {
                int(z): _Presence(bool(v[0]), float(v[1]), int(v[2])) for z, v in zones.items()
            }
        counter.classes = {int(t): str(c) for t, c in data.get("classes", {}).items()}
        return counter
