"""Merging a recorded-video job's zone events across its segments: pure.

Entries, exits and dwell add up like crossings: each segment's events count where it owns
them (videos/ownership.py: the segment whose own window holds the event's time), summed per
zone name and class. Zones are matched by name, as lines are: every segment's virtual camera
has its own copy of the job's zones.

Peak occupancy does not add up. A segment's tracker warms up in the overlap before its own
window, so an object already inside at the window's start appears there as an entry before
the window (not owned, so not counted twice: the earlier segment owns the real entry). So per
segment, every event of it is replayed in time order (enter +1, exit -1 per zone and class),
and its peak is the largest running occupancy after each instant it owns; the job's peak is
the largest over its segments. Events of one instant (one frame) are applied together before
occupancy is read, as the live path reads it once per frame (workers/camera_state.py).

Occupancy at a window's start is not read from the later segment: the earlier segment already
measured it (occupancy changes only at events, so it has held since the earlier segment's last
owned event, whose reading the earlier segment took), and the earlier segment is the better
witness: its tracker has been running for a whole segment, the later one's only for the
overlap. Reading it from the later segment too changes nothing where both agree and adds the
later tracker's warm-up errors where they do not (measured on TUD-Campus with a 0.8 s overlap:
a cold tracker gave one person a second track inside the zone while the first lingered there,
lost, until ByteTrack's lost-track buffer ran out; read at the window's start, the peak was 5
where the single stream's was 4).

Known limitations. Dwell: an object inside across a boundary has its dwell measured by the
later segment from its first sighting in that segment's overlap, not from when it entered: its
exit counts once (dwell_count stays exact), with a dwell short of the single stream's by the
time it had spent inside before the overlap began. Warm-up: as for crossings
(videos/segments.py), zone results equal the single stream's only where the overlap outlasts
the tracker's warm-up, and for zones that includes ByteTrack's lost-track buffer: an identity
switch in the warm-up leaves the old track "inside" until the buffer runs out, and its exit
then counts if that falls in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from videos.ownership import Window, owns

ZoneKey = tuple[str, str]  # (zone name, object class)


@dataclass(frozen=True, slots=True)
class ZoneMark:
    """One zone event of a segment, as the merge needs it."""

    at: float  # Unix s: the capture time of the frame where it settled
    zone: str
    object_class: str
    kind: Literal["enter", "exit"]
    dwell_s: float | None = None  # exits: time inside as the segment saw it


@dataclass(slots=True)
class ZoneTotals:
    entries: int = 0
    exits: int = 0
    peak_occupancy: int = 0
    dwell_total_s: float = 0.0
    dwell_count: int = 0


def merge_zones(segments: Iterable[tuple[Window, Iterable[ZoneMark]]]
                ) -> dict[ZoneKey, ZoneTotals]:
    """Per (zone name, class): the job's totals from each segment's own window and every
    zone event it reported (overlap included). Keys with nothing owned are left out."""
    totals: dict[ZoneKey, ZoneTotals] = {}
    for window, marks in segments:
        _add_segment(totals, window, marks)
    return totals


def _add_segment(totals: dict[ZoneKey, ZoneTotals], window: Window,
                 marks: Iterable[ZoneMark]) -> None:
    inside: Counter[ZoneKey] = Counter()
    for at, group in groupby(sorted(marks, key=lambda m: m.at), key=lambda m: m.at):
        if at >= window.end_at:
            break
        instant = list(group)
        for m in instant:
            inside[(m.zone, m.object_class)] += 1 if m.kind == "enter" else -1
        if not owns(window, at):
            continue  # the overlap: replayed for the running occupancy only
        for m in instant:
            key = (m.zone, m.object_class)
            t = totals.setdefault(key, ZoneTotals())
            if m.kind == "enter":
                t.entries += 1
            else:
                t.exits += 1
                if m.dwell_s is not None:
                    t.dwell_total_s += m.dwell_s
                    t.dwell_count += 1
            t.peak_occupancy = max(t.peak_occupancy, inside[key])
