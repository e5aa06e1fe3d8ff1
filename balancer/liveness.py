"""Worker liveness judged on the receiver's monotonic clock (never the sender's wall clock).

Two modes, chosen by `LivenessConfig.mode`:
- "phi": the phi accrual failure detector (Hayashibara et al. 2004, as in Akka and Cassandra).
  Each worker's inter-arrival history gives a mean and a standard deviation; phi is how
  unlikely the current silence is, -log10 of the probability that a heartbeat is still coming.
  Like Akka, the mean is raised by an "acceptable heartbeat pause" and the deviation floored
  by `min_std_s`, so a GC pause or a burst of network jitter within the pause stays "up":
  phi only climbs once the silence outgrows the slowest interval seen by more than the pause.
- "expiry": a fixed silence (`suspect_after_s`, then `timeout_s`).

States: up -> suspect -> down. A suspect keeps the cameras it holds (affinity; it may only be
slow) but gets no new ones; down is final for that incarnation and the worker is forgotten.
A heartbeat with `stopping=True` (graceful drain) makes it down at once; a new `boot_id` is a
new incarnation whose interval history starts afresh.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from contracts.messages import WorkerHeartbeat

WorkerState = Literal["up", "suspect", "down"]
EventKind = Literal["worker.up", "worker.suspect", "worker.down"]
LivenessMode = Literal["phi", "expiry"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class LivenessConfig:
    mode: LivenessMode = "phi"
    # expiry mode
    suspect_after_s: float = 2.5
    timeout_s: float = 5.0
    # phi mode: Akka's cluster defaults (threshold 8, pause 3 s, min std 100 ms); suspect at
    # phi 3 (a 1-in-1000 silence). Beating every 1 s: suspect after ~4.3 s, down after ~4.5 s.
    phi_suspect: float = 3.0
    phi_dead: float = 8.0
    window: int = 100
    min_std_s: float = 0.1
    acceptable_pause_s: float = 3.0
    first_interval_s: float = 1.0  # the expected heartbeat interval, before any is measured

    def __post_init__(self) -> None:
        if not 0 < self.suspect_after_s <= self.timeout_s:
            raise ValueError("need 0 < suspect_after_s <= timeout_s")
        if not 0 < self.phi_suspect <= self.phi_dead:
            raise ValueError("need 0 < phi_suspect <= phi_dead")
        if self.window < 1 or self.min_std_s <= 0 or self.first_interval_s <= 0:
            raise ValueError("window, min_std_s and first_interval_s must be positive")
        if self.acceptable_pause_s < 0:
            raise ValueError("acceptable_pause_s must not be negative")


@dataclass(frozen=True)
class LivenessEvent:
    kind: EventKind
    worker_id: str
    boot_id: str
    at_mono: float
    reason: str  # heartbeat, restarted, silence, draining


def phi(silence_s: float, mean_s: float, std_s: float) -> float:
    """Phi for a silence given the (pause-raised) mean and (floored) deviation of intervals.

    Akka's logistic approximation of the normal tail, written as log10(1 + e^z) so that it
    neither overflows nor hits log(0) for very long or very short silences."""
    y = (silence_s - mean_s) / std_s
    z = y * (1.5976 + 0.070566 * y * y)
    softplus = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    return softplus / _LN10


@dataclass
class _Track:
    """One incarnation of a worker: its last beat and its inter-arrival history."""

    beat: WorkerHeartbeat
    last_mono: float
    state: WorkerState
    window: int
    intervals: deque[float] = field(default_factory=deque)
    total_s: float = 0.0
    total_sq: float = 0.0

    def arrive(self, beat: WorkerHeartbeat, now_mono: float) -> None:
        # Out-of-order or duplicate deliveries can give a negative interval; never learn it.
        interval = max(0.0, now_mono - self.last_mono)
        self.intervals.append(interval)
        self.total_s += interval
        self.total_sq += interval * interval
        if len(self.intervals) > self.window:
            old = self.intervals.popleft()
            self.total_s -= old
            self.total_sq -= old * old
        self.beat = beat
        self.last_mono = max(self.last_mono, now_mono)

    def mean_std(self, config: LivenessConfig) -> tuple[float, float]:
        n = len(self.intervals)
        if n == 0:
            # Akka's bootstrap: the expected interval with a quarter of it as deviation. The
            # worker's own announced interval beats the configured guess.
            first = self.beat.heartbeat_interval_s or config.first_interval_s
            return first, first / 4
        mean = self.total_s / n
        variance = max(0.0, self.total_sq / n - mean * mean)
        return mean, math.sqrt(variance)


class Liveness:
    """Heartbeats in (`observe`), transitions out (`observe` and `poll`), views (`live`)."""

    def __init__(self, config: LivenessConfig | None = None) -> None:
        self.config = config or LivenessConfig()
        self._tracks: dict[str, _Track] = {}

    def observe(self, beat: WorkerHeartbeat, now_mono: float) -> list[LivenessEvent]:
        wid = beat.worker_id
        track = self._tracks.get(wid)
        if beat.stopping:
            # A draining worker takes no new work: down at once, not after a timeout.
            if track is None:
                return []
            del self._tracks[wid]
            return [LivenessEvent("worker.down", wid, beat.boot_id, now_mono, "draining")]
        if track is None or track.beat.boot_id != beat.boot_id:
            # A new incarnation: the old one's intervals say nothing about this one.
            self._tracks[wid] = _Track(beat, now_mono, "up", self.config.window)
            reason = "heartbeat" if track is None else "restarted"
            return [LivenessEvent("worker.up", wid, beat.boot_id, now_mono, reason)]
        track.arrive(beat, now_mono)
        if track.state == "up":
            return []
        track.state = "up"
        return [LivenessEvent("worker.up", wid, beat.boot_id, now_mono, "heartbeat")]

    def phi(self, worker_id: str, now_mono: float) -> float:
        track = self._tracks.get(worker_id)
        return math.inf if track is None else self._phi(track, now_mono)

    def state(self, worker_id: str, now_mono: float) -> WorkerState:
        track = self._tracks.get(worker_id)
        return "down" if track is None else self._judge(track, now_mono)

    def poll(self, now_mono: float) -> list[LivenessEvent]:
        """Apply the clock: emit suspect/down transitions and forget the dead."""
        events: list[LivenessEvent] = []
        for wid, track in list(self._tracks.items()):
            state = self._judge(track, now_mono)
            if state == track.state:
                continue
            if state == "down":
                del self._tracks[wid]
                events.append(LivenessEvent("worker.down", wid, track.beat.boot_id, now_mono,
                                            "silence"))
            elif state == "suspect":
                track.state = state
                events.append(LivenessEvent("worker.suspect", wid, track.beat.boot_id,
                                            now_mono, "silence"))
            # suspect -> up needs a heartbeat (observe emits it): silence never heals.
        return events

    def states(self, now_mono: float) -> dict[str, WorkerState]:
        """Every known worker's state now; read-only (poll applies the transitions)."""
        return {wid: self._judge(t, now_mono) for wid, t in self._tracks.items()}

    def live(self, now_mono: float) -> dict[str, WorkerHeartbeat]:
        """Up and suspect workers with their last beat: those that may keep their cameras.
        Read-only, so events are never lost to a caller that only wants the view."""
        return {wid: t.beat for wid, t in self._tracks.items()
                if self._judge(t, now_mono) != "down"}

    def beat(self, worker_id: str) -> WorkerHeartbeat | None:
        """The last beat of a worker not yet judged down (its load, its counters)."""
        track = self._tracks.get(worker_id)
        return None if track is None else track.beat

    def suspects(self, now_mono: float) -> set[str]:
        """Live but not to be given new cameras."""
        return {wid for wid, state in self.states(now_mono).items() if state == "suspect"}

    def _phi(self, track: _Track, now_mono: float) -> float:
        mean, std = track.mean_std(self.config)
        silence = max(0.0, now_mono - track.last_mono)
        return phi(silence, mean + self.config.acceptable_pause_s,
                   max(std, self.config.min_std_s))

    def _judge(self, track: _Track, now_mono: float) -> WorkerState:
        cfg = self.config
        if cfg.mode == "expiry":
            silence = now_mono - track.last_mono
            if silence > cfg.timeout_s:
                return "down"
            return "suspect" if silence > cfg.suspect_after_s else "up"
        # phi only grows with the silence, so suspect cannot turn back to up without a beat.
        value = self._phi(track, now_mono)
        if value >= cfg.phi_dead:
            return "down"
        return "suspect" if value >= cfg.phi_suspect else "up"
