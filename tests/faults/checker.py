"""The fault suite's checker, after Jepsen's queue checker: pure, no I/O, no clock.

Every batch the broker CONFIRMED to ingest (ingest has handed it over for good) must end as
exactly one of:
  applied once     - one ledger row (batch_ledger, written in the apply transaction);
  recorded as gap  - no ledger row, but its seq lies inside a coverage gap of its camera/epoch;
  LOST             - neither: the invariant "counted once or recorded as a gap" is broken;
  APPLIED TWICE    - two or more ledger rows: the invariant "never counted twice" is broken.
Applied batches that were never confirmed are "unexpected": legal when the broker took a
message but its confirm was lost in a broker crash (ingest then resends it, or gives up when
the camera stops), so they are reported, not failed. Unexpected batches applied twice still fail.

Counts are compared with the simulator's truth over *covered* time only (see `compare_counts`).

API (other fault scenarios import it):
    history = History(confirmed=..., applied=..., gaps=..., counted=..., truth=..., windows=...)
    verdict = check(history)
    print(verdict.summary()); verdict.assert_ok()
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.faults.misses import explain

# How far a counted crossing's time may sit from the simulator's time for it: ingest stamps a
# frame when it has received and decoded it (tens of ms after the simulator rendered it), the
# frame sampled nearest the crossing is up to one frame period away (0.1-0.2 s), the tracker
# confirms a crossing a frame or two after the centre passes the line, and a starved simulator
# falls behind by up to its MAX_LAG_S (1 s) before it re-anchors. 1.5 s covers the sum.
CLOCK_SLACK_S = 1.5
# A crossing is judged by the tracker from frames on both sides of the line, so one that
# happens while frames are missing (a gap) may be counted (the object's boxes before and after
# still overlap, and the track goes on) or not (it becomes a new track on the far side). Either
# way the count lands on the first frame after the gap. Next to a gap, a crossing is safe once
# the tracker has its frames: 2 to confirm a track (minimum_consecutive_frames) and one past
# the line, 0.3 s at 10 fps; and the gap's edges are known to a batch (0.5 s) or, for time
# gaps, to ingest's clock. 2 s covers that; crossings this close to a gap (or inside it) are
# left out of the comparison on BOTH sides.
GAP_MARGIN_S = 2.0

Span = tuple[float, float]  # [start, end] in wall-clock seconds


@dataclass(frozen=True, order=True)
class BatchKey:
    camera_id: str
    stream_epoch: int
    seq: int

    def __str__(self) -> str:
        return f"{self.camera_id}/{self.stream_epoch}/{self.seq}"


@dataclass(frozen=True)
class Confirmed:
    """A batch the broker confirmed to ingest, and the capture time it spans."""

    key: BatchKey
    captured_at: float
    ends_at: float


@dataclass(frozen=True)
class Applied:
    """One apply of a batch (a batch_ledger row)."""

    key: BatchKey
    worker_id: str = ""
    crossings: int = 0


@dataclass(frozen=True)
class Gap:
    """A coverage_gaps row: a seq range of one stream epoch, and/or a span of capture time."""

    camera_id: str
    stream_epoch: int
    reason: str
    seq_from: int | None = None
    seq_to: int | None = None
    started_at: float | None = None
    ended_at: float | None = None

    def covers(self, key: BatchKey) -> bool:
        return (key.camera_id == self.camera_id and key.stream_epoch == self.stream_epoch
                and self.seq_from is not None and self.seq_to is not None
                and self.seq_from <= key.seq <= self.seq_to)


@dataclass(frozen=True)
class Crossing:
    """A line crossing: counted (a crossing_events row) or true (the simulator's scene)."""

    camera_id: str
    at: float  # wall-clock capture time
    direction: str  # "in" | "out"


@dataclass(frozen=True)
class History:
    confirmed: Sequence[Confirmed] = ()
    applied: Sequence[Applied] = ()
    gaps: Sequence[Gap] = ()
    counted: Sequence[Crossing] = ()
    truth: Sequence[Crossing] = ()
    # What the scenario did and when (wall clock): "kill w1", "start w1", ... for explaining a
    # miss; the checker's verdict does not depend on it.
    events: Sequence[tuple[float, str]] = ()
    # Per camera, the spans of capture time over which truth is known and counts are compared
    # (its RTSP sessions, each up to the end of the run); a camera without any is not compared.
    windows: Mapping[str, Sequence[Span]] = field(default_factory=dict)


@dataclass(frozen=True)
class CountCheck:
    """Truth against counts for one camera and direction, over its covered time. Counted and
    true crossings are paired when within the clock slack; what stays unpaired in covered
    time is a miss (a true crossing not counted) or a spurious count (counted twice, or
    never there)."""

    camera_id: str
    direction: str
    truth: int  # true crossings in covered time
    counted: int  # counted crossings in covered time
    missed: int
    spurious: int
    covered_s: float
    uncertain_truth: int  # true crossings left out (near a gap or the window's edges)
    missed_at: tuple[float, ...] = ()  # capture times of the misses, for the explanation
    spurious_at: tuple[float, ...] = ()
    # counted minus true time of each certain pair: how much of the clock slack was used
    offsets: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return self.missed == 0 and self.spurious == 0


@dataclass(frozen=True)
class Verdict:
    confirmed: int
    applied_once: int
    recorded_as_gap: int
    lost: tuple[BatchKey, ...]
    applied_twice: tuple[BatchKey, ...]
    unexpected: tuple[BatchKey, ...]
    applied_and_gap: tuple[BatchKey, ...]  # applied once, and inside a gap too (reported)
    counts: tuple[CountCheck, ...]
    gap_reasons: Mapping[str, int]
    explained: tuple[str, ...] = ()  # per count mismatch, what happened around it
    # batches applied by another worker than the camera's batch before (a takeover): counts
    # across them are compared like any others (the motion background travels with the
    # camera: workers/backgrounds.py), and how many there were shows what was exercised
    takeovers: int = 0

    @property
    def count_mismatches(self) -> tuple[CountCheck, ...]:
        return tuple(c for c in self.counts if not c.ok)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.applied_twice and not self.count_mismatches

    def summary(self) -> str:
        truth = sum(c.truth for c in self.counts)
        counted = sum(c.counted for c in self.counts)
        covered = sum(c.covered_s for c in self.counts if c.direction == "in")
        lines = [
            f"checker: {'OK' if self.ok else 'FAILED'}: confirmed {self.confirmed}, applied once "
            f"{self.applied_once}, recorded as gap {self.recorded_as_gap}, lost without gap "
            f"{len(self.lost)}, applied twice {len(self.applied_twice)}, unexpected "
            f"{len(self.unexpected)}, applied and gap {len(self.applied_and_gap)}",
            f"checker: gaps by reason {dict(sorted(self.gap_reasons.items()))}",
            f"checker: counts over {covered:.0f} s covered: truth {truth}, counted {counted}, "
            f"mismatches {len(self.count_mismatches)}, left out near gaps "
            f"{sum(c.uncertain_truth for c in self.counts)}",
        ]
        if self.takeovers:
            lines.append(f"checker: {self.takeovers} takeovers (a camera's batch applied by "
                         "another worker than its batch before), counted across like the rest")
        offsets = sorted(o for c in self.counts for o in c.offsets)
        if offsets:
            lines.append(f"checker: counted minus true time: {offsets[0]:+.2f} .. "
                         f"{offsets[len(offsets) // 2]:+.2f} (median) .. {offsets[-1]:+.2f} s")
        for name, keys in (("LOST", self.lost), ("APPLIED TWICE", self.applied_twice),
                           ("unexpected", self.unexpected)):
            if keys:
                shown = ", ".join(str(k) for k in keys[:20])
                lines.append(f"checker: {name}: {shown}{' ...' if len(keys) > 20 else ''}")
        lines.extend(f"checker: COUNT MISMATCH {c.camera_id} {c.direction}: truth {c.truth}, "
                     f"counted {c.counted} ({c.missed} missed, {c.spurious} spurious) over "
                     f"{c.covered_s:.0f} s" for c in self.count_mismatches)
        lines.extend(f"checker:   {line}" for line in self.explained)
        return "\n".join(lines)

    def assert_ok(self) -> None:
        assert self.ok, self.summary()


def check(history: History, *, gap_margin_s: float = GAP_MARGIN_S,
          clock_slack_s: float = CLOCK_SLACK_S) -> Verdict:
    applies = Counter(a.key for a in history.applied)
    confirmed = {c.key: c for c in history.confirmed}
    gaps_by_stream: dict[tuple[str, int], list[Gap]] = defaultdict(list)
    for gap in history.gaps:
        gaps_by_stream[gap.camera_id, gap.stream_epoch].append(gap)

    def in_gap(key: BatchKey) -> bool:
        return any(g.covers(key) for g in gaps_by_stream.get((key.camera_id, key.stream_epoch),
                                                             ()))

    once = as_gap = 0
    lost: list[BatchKey] = []
    twice: list[BatchKey] = []
    both: list[BatchKey] = []
    for key in sorted(confirmed):
        n = applies.get(key, 0)
        if n == 1:
            once += 1
            if in_gap(key):
                both.append(key)
        elif n > 1:
            twice.append(key)
        elif in_gap(key):
            as_gap += 1
        else:
            lost.append(key)
    unexpected = sorted(k for k in applies if k not in confirmed)
    twice.extend(k for k in unexpected if applies[k] > 1)
    uncertain = _uncertain_spans(history, lost, gap_margin_s)
    counts = compare_counts(history, uncertain, gap_margin_s, clock_slack_s)
    return Verdict(
        confirmed=len(confirmed), applied_once=once, recorded_as_gap=as_gap,
        lost=tuple(lost), applied_twice=tuple(sorted(twice)), unexpected=tuple(unexpected),
        applied_and_gap=tuple(both),
        counts=counts, gap_reasons=Counter(g.reason for g in history.gaps),
        explained=explain(history, [c for c in counts if not c.ok]),
        takeovers=_takeovers(history),
    )


def _takeovers(history: History) -> int:
    holder: dict[str, str] = {}
    moves = 0
    for applied in sorted(history.applied, key=lambda a: a.key):
        camera = applied.key.camera_id
        before, holder[camera] = holder.get(camera), applied.worker_id
        moves += before is not None and before != applied.worker_id
    return moves


def _uncertain_spans(history: History, lost: Iterable[BatchKey],
                     margin_s: float) -> dict[str, list[Span]]:
    """Per camera, capture time that some frames of were never counted: time gaps, the capture
    spans of batches recorded as gaps (or lost), each widened by `margin_s`."""
    by_key = {c.key: c for c in history.confirmed}
    spans: dict[str, list[Span]] = defaultdict(list)
    for gap in history.gaps:
        if gap.started_at is not None:
            end = gap.ended_at if gap.ended_at is not None else float("inf")
            spans[gap.camera_id].append((gap.started_at - margin_s, end + margin_s))
    not_counted = [k for k, c in by_key.items()
                   if any(g.covers(k) for g in history.gaps)] + list(lost)
    for key in not_counted:
        batch = by_key[key]
        spans[key.camera_id].append((batch.captured_at - margin_s, batch.ends_at + margin_s))
    return {camera: _merge(s) for camera, s in spans.items()}


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _inside(at: float, spans: Sequence[Span]) -> bool:
    return any(start <= at <= end for start, end in spans)


def compare_counts(history: History, uncertain: Mapping[str, list[Span]],
                   gap_margin_s: float = GAP_MARGIN_S,
                   clock_slack_s: float = CLOCK_SLACK_S) -> tuple[CountCheck, ...]:
    """Truth against counts per camera and direction, over covered time: the camera's sessions
    less its uncertain spans. Each session's edges are uncertain too (a crossing under way when
    it began or ended), by the gap margin plus the clock slack."""
    out = []
    edge_s = gap_margin_s + clock_slack_s
    for camera, spans in sorted(history.windows.items()):
        if not spans:
            continue
        ordered = sorted(spans)
        edges = [(-float("inf"), ordered[0][0] + edge_s),
                 (ordered[-1][1] - edge_s, float("inf"))]
        edges += [(end - edge_s, start + edge_s)
                  for (_, end), (start, _) in itertools.pairwise(ordered)]
        blind = _merge([*uncertain.get(camera, []), *edges])
        covered = sum(_covered_s(start, end, blind) for start, end in ordered)
        for direction in ("in", "out"):
            true = sorted(c.at for c in history.truth
                          if c.camera_id == camera and c.direction == direction)
            counted = sorted(c.at for c in history.counted
                             if c.camera_id == camera and c.direction == direction)
            pairs, lone_true, lone_counted = _pair(true, counted, clock_slack_s)
            # A pair is judged where the truth says the crossing happened.
            certain_pairs = sum(not _inside(t, blind) for t, _ in pairs)
            missed_at = tuple(t for t in lone_true if not _inside(t, blind))
            spurious_at = tuple(t for t in lone_counted if not _inside(t, blind))
            missed, spurious = len(missed_at), len(spurious_at)
            certain_truth = certain_pairs + missed
            out.append(CountCheck(
                camera, direction, truth=certain_truth, counted=certain_pairs + spurious,
                missed=missed, spurious=spurious, covered_s=covered,
                uncertain_truth=len(true) - certain_truth,
                missed_at=missed_at, spurious_at=spurious_at,
                offsets=tuple(c - t for t, c in pairs if not _inside(t, blind)),
            ))
    return tuple(out)


def _pair(true: Sequence[float], counted: Sequence[float], slack_s: float,
          ) -> tuple[list[tuple[float, float]], list[float], list[float]]:
    """Greedy in time order: each true crossing takes the earliest unpaired counted one within
    the slack. Unambiguous with the scenes the harness plays: objects cross one at a time, so
    at 640 px wide crossings are at least (640 + 40) / 220 + 0.5 = 3.6 s apart
    (simulator/scenes.py), more than twice the slack."""
    pairs: list[tuple[float, float]] = []
    lone_true: list[float] = []
    lone_counted: list[float] = []
    j = 0
    for t in true:
        while j < len(counted) and counted[j] < t - slack_s:
            lone_counted.append(counted[j])
            j += 1
        if j < len(counted) and counted[j] <= t + slack_s:
            pairs.append((t, counted[j]))
            j += 1
        else:
            lone_true.append(t)
    lone_counted.extend(counted[j:])
    return pairs, lone_true, lone_counted


def _covered_s(start: float, end: float, blind: Sequence[Span]) -> float:
    covered = max(0.0, end - start)
    for s, e in blind:
        covered -= max(0.0, min(e, end) - max(s, start))
    return max(0.0, covered)
