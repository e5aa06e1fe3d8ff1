"""A camera's health as a pure state machine: status, reason and since, and the coverage gaps
that follow from it. Pure: the pipeline feeds it events with the clock and applies its effects.

Statuses (contracts.camera_status): a session starts `connecting`; moving frames make it `live`;
no frame for `stall_s` while a session is open makes it `stalled`; pictures that stay identical
(or timestamps that stop) for `frozen_s` make it `frozen`; a failed connect maps its cause to
`auth_failed` or `unreachable`; dropped frames make it `backpressure`. A status holds until the
evidence changes: a frozen camera that is reconnected stays `frozen` until its picture moves,
so an operator's alert does not flap between frozen and connecting.

Coverage: leaving `live` (or `backpressure`) for any other status opens a `camera_down` gap at
the last good frame; the next moving frame closes it. The gap's edges are capture times, so a
report shows exactly the span with no usable frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.camera_status import CameraStatus
from ingest.source import SourceFailure

# What a connect failure means to an operator: wrong credentials are theirs to fix; the rest
# says the camera cannot be reached as configured (the reason names the cause).
_FAILURE_STATUS: dict[SourceFailure, CameraStatus] = {
    "auth_failed": "auth_failed",
    "not_found": "unreachable",
    "unsupported_transport": "unreachable",
    "unsupported_codec": "unreachable",
    "refused": "unreachable",
    "unreachable": "unreachable",
    "timeout": "unreachable",
    "protocol": "unreachable",
    "connection_lost": "connecting",
    "ended": "connecting",
}
_COVERED: frozenset[CameraStatus] = frozenset({"live", "backpressure"})


@dataclass(frozen=True)
class StatusChange:
    status: CameraStatus
    previous: CameraStatus | None
    reason: str
    since: float  # wall clock


@dataclass(frozen=True)
class GapOpened:
    started_at: float  # the last good frame's capture time
    detail: str


@dataclass(frozen=True)
class GapClosed:
    ended_at: float  # the first good frame's capture time


Effect = StatusChange | GapOpened | GapClosed


@dataclass
class HealthPolicy:
    stall_s: float = 5.0
    frozen_s: float = 20.0


class CameraHealth:
    """One camera on one node. Call the `on_*` methods; each returns the effects to apply."""

    def __init__(self, policy: HealthPolicy, last_frame_at: float | None = None) -> None:
        self.policy = policy
        self.status: CameraStatus | None = None
        self.reason = ""
        self.since = 0.0
        # The last moving frame's capture time; seeded from the camera's stored status so a
        # node taking a camera over (or restarting) accounts for the time nobody watched it.
        self.last_frame_at = last_frame_at
        self.gap_open = False
        self._last_arrival_mono: float | None = None
        self._session_open = False
        self._same_since_mono: float | None = None
        self._last_signature: bytes | None = None
        self._last_pts: float | None = None

    # --- session lifecycle ---

    def on_connecting(self, now: float, attempt_reason: str) -> list[Effect]:
        self._session_open = False
        if self.status in (None, "live", "backpressure", "connecting"):
            return self._become("connecting", attempt_reason, now)
        return []  # keep saying why it failed (stalled, frozen, unreachable) while we retry

    def on_session_open(self, now_mono: float) -> None:
        self._session_open = True
        self._last_arrival_mono = now_mono
        self._last_pts = None  # a new session's clock starts over
        if self.status != "frozen":
            # Kept while frozen: a reconnect that shows the same still picture is still frozen.
            self._same_since_mono = None
            self._last_signature = None

    def on_failure(self, now: float, reason: SourceFailure, message: str, *,
                   mid_stream: bool = False) -> list[Effect]:
        """A session failed; `mid_stream` when it had been delivering frames."""
        self._session_open = False
        status = _FAILURE_STATUS.get(reason, "unreachable")
        if mid_stream and reason in ("timeout", "connection_lost", "ended"):
            status = "connecting"  # it worked a moment ago: say we are reconnecting
        if status == "connecting" and self.status in ("stalled", "frozen"):
            return []  # the session ended because it stalled or froze: that is the news
        return self._become(status, message, now)

    # --- frames ---

    def on_decoded(self, now_mono: float) -> None:
        """Any decoded frame, kept by the sampler or not: the stream is flowing. (Stalls are
        judged on these, so a camera sampled at 0.1 fps is not stalled between samples.)"""
        self._last_arrival_mono = now_mono

    def on_frame(self, now: float, now_mono: float, captured_at: float, pts_s: float,
                 signature: bytes) -> list[Effect]:
        """A sampled frame. `signature` is a small digest of the picture (equal when identical)."""
        self._last_arrival_mono = now_mono
        same_picture = signature == self._last_signature
        stuck_clock = self._last_pts is not None and pts_s <= self._last_pts
        self._last_signature, self._last_pts = signature, pts_s
        if not (same_picture or stuck_clock):
            self._same_since_mono = None
            return self._moving(now, captured_at)
        if self._same_since_mono is None:
            self._same_since_mono = now_mono
        if now_mono - self._same_since_mono >= self.policy.frozen_s or self.status == "frozen":
            why = "the picture has not changed" if same_picture else "timestamps stopped"
            return self._become("frozen", f"{why} for {self.policy.frozen_s:g} s", now)
        # Still within the benefit of the doubt, but not a moving frame: should the picture
        # turn out frozen, its gap starts at the last frame that moved, not frozen_s later.
        return self._moving(now, captured_at, moved=False)

    def on_tick(self, now: float, now_mono: float) -> list[Effect]:
        """The watchdog's periodic look, independent of the frame loop (a hung read is caught)."""
        if not self._session_open or self._last_arrival_mono is None:
            return []
        silent_s = now_mono - self._last_arrival_mono
        if silent_s >= self.policy.stall_s and self.status != "stalled":
            return self._become("stalled", f"no frame for {self.policy.stall_s:g} s", now)
        return []

    def stalled_for_s(self, now_mono: float) -> float:
        if not self._session_open or self._last_arrival_mono is None:
            return 0.0
        return now_mono - self._last_arrival_mono

    # --- publishing ---

    def on_backpressure(self, now: float, reason: str) -> list[Effect]:
        if self.status in ("live", "backpressure") and reason != self.reason:
            return self._become("backpressure", reason, now)
        return []

    def on_backpressure_cleared(self, now: float) -> list[Effect]:
        if self.status == "backpressure":
            return self._become("live", "frames moving", now)
        return []

    # --- internals ---

    def _moving(self, now: float, captured_at: float, moved: bool = True) -> list[Effect]:
        effects: list[Effect] = []
        if self.gap_open:
            effects.append(GapClosed(captured_at))
            self.gap_open = False
        elif (self.status not in _COVERED and self.last_frame_at is not None
              and captured_at > self.last_frame_at):
            # Nobody saw the camera since its last frame (this node starting, or taking it over
            # from a node that crashed): record that span as well.
            effects.append(GapOpened(self.last_frame_at, "no frames: ingest not reading"))
            effects.append(GapClosed(captured_at))
        if moved or effects:
            # A gap just closed here: the next one may not start before it ended.
            self.last_frame_at = captured_at
        if self.status not in _COVERED:
            effects += self._become("live", "frames moving", now)
        return effects

    def _become(self, status: CameraStatus, reason: str, now: float) -> list[Effect]:
        if status == self.status and reason == self.reason:
            return []
        effects: list[Effect] = []
        previous = self.status
        if status != previous:
            self.since = now
            if (previous in _COVERED and status not in _COVERED and not self.gap_open
                    and self.last_frame_at is not None):
                effects.append(GapOpened(self.last_frame_at, f"{status}: {reason}"))
                self.gap_open = True
        self.status, self.reason = status, reason
        effects.insert(0, StatusChange(status, previous, reason, self.since))
        return effects
