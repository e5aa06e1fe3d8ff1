"""A circuit breaker per worker: stop sending batches to a worker that fails or crawls, and let
a few probes find out when it has recovered. Pure, with an injected monotonic clock.

closed --(failure rate >= threshold over the window, at least `min_volume` outcomes)--> open
open --(cool_down_s later, on the next `allow`)--> half_open
half_open --(`probes` successes)--> closed; --(a failure, or no verdict in time)--> open

What counts: a timeout and a batch slower than `slow_s` are failures even when they end well
(a crawling GPU is as useless to real-time counting as a dead one); a data error (a corrupt
frame, a dead-lettered malformed batch) is the input's fault, not the worker's, and is not
counted at all, so bad cameras cannot open a healthy worker's breaker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class Outcome(Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # the worker raised, nacked or crashed on the batch
    TIMEOUT = "timeout"  # no verdict within the time allowed
    DATA_ERROR = "data_error"  # the batch itself was bad: not the worker's fault


@dataclass(frozen=True)
class BreakerConfig:
    failure_rate: float = 0.5  # open at or above this share of failures in the window
    min_volume: int = 10  # fewer outcomes than this in the window never open the breaker
    window: int = 20  # the last N outcomes (also the memory bound in time mode) ...
    window_s: float | None = None  # ... and, when set, only those of the last window_s
    slow_s: float = 2.0  # a batch that took longer than this counts as a failure
    cool_down_s: float = 10.0  # open for this long before probes are allowed
    probes: int = 3  # half-open admits at most this many batches until a verdict
    probe_timeout_s: float | None = None  # half-open without verdict: re-open (default cool-down)

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.min_volume < 1 or self.window < 1 or self.probes < 1:
            raise ValueError("min_volume, window and probes must be at least 1")
        if self.min_volume > self.window:
            raise ValueError("min_volume above the count window: the breaker could never open")
        if self.cool_down_s <= 0 or self.slow_s <= 0:
            raise ValueError("cool_down_s and slow_s must be positive")


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the API and the dashboard show for one worker."""

    state: BreakerState
    failure_rate: float
    calls: int
    failures: int
    opened_at_mono: float | None
    probes_admitted: int
    probes_succeeded: int


class Breaker:
    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._state: BreakerState = "closed"
        # (at_mono, failed): at most `window` of them, and none older than `window_s`.
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at: float | None = None
        self._probes_admitted = 0
        self._probes_succeeded = 0
        self._unanswered_mono: deque[float] = deque()  # admission times of pending probes

    def state(self, now_mono: float) -> BreakerState:
        self._tick(now_mono)
        return self._state

    def can_admit(self, now_mono: float) -> bool:
        """Would `allow` say yes now? Takes no probe slot."""
        self._tick(now_mono)
        if self._state == "closed":
            return True
        return self._state == "half_open" and self._probes_admitted < self.config.probes

    def probe_slots(self, now_mono: float) -> int:
        self._tick(now_mono)
        if self._state != "half_open":
            return 0
        return self.config.probes - self._probes_admitted

    def allow(self, now_mono: float) -> bool:
        """Ask to send one batch; in half-open a yes takes one of the probe slots."""
        if not self.can_admit(now_mono):
            return False
        if self._state == "half_open":
            self._probes_admitted += 1
            self._unanswered_mono.append(now_mono)
        return True

    def record(self, outcome: Outcome, duration_s: float, now_mono: float) -> None:
        """A batch's verdict. In half-open every verdict is taken as a probe's: batches sent
        before the breaker opened have had a whole cool-down to report."""
        self._tick(now_mono)
        if outcome is Outcome.DATA_ERROR:
            return
        failed = outcome is not Outcome.SUCCESS or duration_s > self.config.slow_s
        if self._state == "open":
            return  # late verdicts of batches sent before opening decide nothing
        if self._state == "half_open":
            if failed:
                self._open(now_mono)
                return
            self._probes_succeeded += 1
            if self._unanswered_mono:
                self._unanswered_mono.popleft()
            if self._probes_succeeded >= self.config.probes:
                self._close()
            return
        self._outcomes.append((now_mono, failed))
        self._failures += failed
        self._trim(now_mono)
        if self._should_open():
            self._open(now_mono)

    def snapshot(self, now_mono: float) -> BreakerSnapshot:
        self._tick(now_mono)
        calls = len(self._outcomes)
        return BreakerSnapshot(
            state=self._state,
            failure_rate=self._failures / calls if calls else 0.0,
            calls=calls,
            failures=self._failures,
            opened_at_mono=self._opened_at,
            probes_admitted=self._probes_admitted,
            probes_succeeded=self._probes_succeeded,
        )

    def _should_open(self) -> bool:
        calls = len(self._outcomes)
        return (calls >= self.config.min_volume
                and self._failures >= self.config.failure_rate * calls)

    def _tick(self, now_mono: float) -> None:
        cfg = self.config
        if self._state == "open":
            assert self._opened_at is not None
            if now_mono >= self._opened_at + cfg.cool_down_s:
                self._state = "half_open"
                self._reset_probes()
        elif self._state == "half_open" and self._unanswered_mono:
            limit = cfg.probe_timeout_s if cfg.probe_timeout_s is not None else cfg.cool_down_s
            # A probe that never answers is a timeout: without this a lost probe would keep
            # the breaker half-open, admitting nothing, for ever.
            if now_mono >= self._unanswered_mono[0] + limit:
                self._open(now_mono)
        elif self._state == "closed" and cfg.window_s is not None:
            self._trim(now_mono)

    def _trim(self, now_mono: float) -> None:
        cfg = self.config
        while self._outcomes and (
            len(self._outcomes) > cfg.window
            or (cfg.window_s is not None and self._outcomes[0][0] <= now_mono - cfg.window_s)
        ):
            self._failures -= self._outcomes.popleft()[1]

    def _open(self, now_mono: float) -> None:
        self._state = "open"
        self._opened_at = now_mono
        self._reset_probes()

    def _close(self) -> None:
        # A fresh window: the failures that opened the breaker must not re-open it at once.
        self._state = "closed"
        self._outcomes.clear()
        self._failures = 0
        self._opened_at = None
        self._reset_probes()

    def _reset_probes(self) -> None:
        self._probes_admitted = self._probes_succeeded = 0
        self._unanswered_mono.clear()
