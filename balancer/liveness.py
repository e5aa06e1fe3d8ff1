"""Worker liveness judged on the receiver's monotonic clock (never the sender's wall clock)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.messages import WorkerHeartbeat


@dataclass
class Liveness:
    timeout_s: float = 5.0
    _seen: dict[str, tuple[float, WorkerHeartbeat]] = field(default_factory=dict)

    def observe(self, beat: WorkerHeartbeat, now_mono: float) -> None:
        if beat.stopping:
            # A draining worker takes no new work; forget it at once.
            self._seen.pop(beat.worker_id, None)
            return
        self._seen[beat.worker_id] = (now_mono, beat)

    def live(self, now_mono: float) -> dict[str, WorkerHeartbeat]:
        for worker_id in [w for w, (t, _) in self._seen.items() if now_mono - t > self.timeout_s]:
            del self._seen[worker_id]
        return {w: beat for w, (_, beat) in self._seen.items()}
