"""Per-camera tracking, line and zone counting state, advanced one batch at a time.

`advance` never mutates its input: the apply transaction may still fail or find a duplicate,
and then the worker keeps the state it had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from workers.counting import CountingLine, Crossing, LineCounter, Sighting
from workers.detection import Detection
from workers.tracking import Tracker, TrackerConfig
from workers.zones import CountingZone, ZoneCounter, ZoneEvent

Anchor = Literal["foot", "centre"]


def count_key(line_id: int, direction: str, object_class: str) -> str:
    return f"{line_id}:{direction}:{object_class}"


def zone_key(zone_id: int, object_class: str) -> str:
    return f"{zone_id}:{object_class}"


@dataclass
class CameraState:
    tracker: Tracker = field(default_factory=Tracker)
    counter: LineCounter = field(default_factory=LineCounter)
    zones: ZoneCounter = field(default_factory=ZoneCounter)
    totals: dict[str, int] = field(default_factory=dict)

    def occupancy(self) -> dict[str, int]:
        """'zone_id:class' -> objects inside now."""
        return {zone_key(z, c): n for (z, c), n in self.zones.occupancy().items()}

    def to_checkpoint(self) -> dict[str, Any]:
        return {"tracker": self.tracker.to_dict(), "counter": self.counter.to_dict(),
                "zones": self.zones.to_dict()}

    @classmethod
    def from_checkpoint(
        cls, checkpoint: dict[str, Any], totals: dict[str, int], config: TrackerConfig
    ) -> CameraState:
        return cls(
            Tracker.from_dict(checkpoint.get("tracker", {}), config),
            LineCounter.from_dict(checkpoint.get("counter", {})),
            ZoneCounter.from_dict(checkpoint.get("zones", {})),
            dict(totals),
        )

    def copy(self) -> CameraState:
        return CameraState.from_checkpoint(self.to_checkpoint(), self.totals, self.tracker.config)


@dataclass(frozen=True)
class BatchEffects:
    crossings: list[Crossing]
    zone_events: list[ZoneEvent]
    # (zone_id, zone_version, class) -> most objects inside at once during the batch
    peak_occupancy: dict[tuple[int, int, str], int]


def advance(
    state: CameraState,
    detections_per_frame: Sequence[list[Detection]],
    lines: list[CountingLine],
    zones: Sequence[CountingZone] = (),
    frame_times: Sequence[float] = (),
    anchor: Anchor = "foot",
) -> tuple[CameraState, BatchEffects]:
    """`frame_times` are the frames' capture times in seconds; without them (tests) frames are
    taken to be one second apart, carrying on from the previous batch."""
    new = state.copy()
    crossings: list[Crossing] = []
    events: list[ZoneEvent] = []
    peak: Counter[tuple[int, str]] = Counter()
    zone_list = list(zones)
    start_s = new.counter.now_s
    for index, detections in enumerate(detections_per_frame):
        at_s = frame_times[index] if index < len(frame_times) else start_s + index + 1
        # Per confirmed track, oldest first: its tentative frames (on the frame it is
        # confirmed, see workers.tracking), then this one.
        sightings = [
            [Sighting(track.track_id, track.object_class, _anchor(box, anchor),
                      (box[2] - box[0], box[3] - box[1]), seen_s)
             for seen_s, box in (*track.earlier, (at_s, track.box))]
            for track in new.tracker.update(detections, at_s)
        ]
        crossings += new.counter.observe_frame(index, sightings, lines)
        if zone_list:
            for seen in sightings:
                for s in seen:
                    events += new.zones.observe(index, s.at_s, s.track_id, s.object_class,
                                                s.anchor, zone_list)
        live = new.tracker.live_ids()
        new.counter.forget(live, at_s)
        events += new.zones.forget(live, at_s, index, zone_list)
        peak |= new.zones.occupancy()  # Counter union keeps the maximum per key
    delta = Counter(count_key(c.line_id, c.direction, c.object_class) for c in crossings)
    for key, n in delta.items():
        new.totals[key] = new.totals.get(key, 0) + n
    versions = {z.zone_id: z.version for z in zone_list}
    peaks = {(z, versions[z], c): n for (z, c), n in peak.items() if z in versions}
    return new, BatchEffects(crossings, events, peaks)


def _anchor(box: tuple[float, float, float, float], anchor: Anchor) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2, y2) if anchor == "foot" else ((x1 + x2) / 2, (y1 + y2) / 2)
