"""Exponential reconnect back-off with full jitter, a cap, and a reset after a healthy run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float
    max_s: float
    healthy_after_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next_delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.healthy_after_s:
            self._attempt = 0
        ceiling = min(self.max_s, self.initial_s * 2**self._attempt)
        self._attempt += 1
        # Full jitter: many cameras behind one failed switch must not reconnect in lockstep.
        return self.rng.uniform(ceiling / 2, ceiling)
