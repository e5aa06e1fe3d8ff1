"""Which worker holds which camera, and the batch rate each worker has committed to per
priority (`WorkerView.held_per_s`). Pure and incremental: routing a batch costs O(1) here, not a
pass over every camera.

A camera's rate is learned from its own batches: the capture-time distance between
consecutive sequence numbers (the balancer's arrival times would measure the queue instead).

It also remembers since when each camera is with its holder (monotonic clock), for the
policy's dwell before an optional move (`BatchRequest.held_since_mono`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.broker import Priority

Rates = tuple[float, float, float, float]
_ZERO: Rates = (0.0, 0.0, 0.0, 0.0)


@dataclass
class _Camera:
    priority: Priority
    rate_per_s: float
    stream_epoch: int
    seq: int
    captured_at: float
    holder: str | None = None


class Holdings:
    def __init__(self, initial_rate_per_s: float = 1.0, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1 or initial_rate_per_s <= 0:
            raise ValueError("need 0 < alpha <= 1 and a positive initial rate")
        self.initial_rate_per_s = initial_rate_per_s
        self.alpha = alpha
        self._cameras: dict[str, _Camera] = {}
        self._holder: dict[str, str] = {}  # camera -> worker, also for cameras not yet seen
        self._since: dict[str, float] = {}  # camera -> when its holder took it
        self._held: dict[str, list[float]] = {}

    def load(self, holders: Mapping[str, str], now_mono: float = -math.inf) -> None:
        """Replace every holder (assignments re-read from the database). A holder we already
        knew keeps its time; one that changed behind our back (another balancer moved the
        camera) counts from `now_mono`; one first seen (start-up) from long ago, so a balancer
        that starts holds nothing back."""
        since = {c: (self._since.get(c, now_mono) if self._holder.get(c) == w
                     else -math.inf if c not in self._holder else now_mono)
                 for c, w in holders.items()}
        self._holder, self._since = dict(holders), since
        self._held.clear()
        for camera_id, cam in self._cameras.items():
            cam.holder = self._holder.get(camera_id)
            self._add(cam, 1.0)

    def observe(self, camera_id: str, priority: Priority, stream_epoch: int, seq: int,
                captured_at: float) -> float:
        """A batch of the camera arrived: learn its rate; returns the rate (batches/s)."""
        cam = self._cameras.get(camera_id)
        if cam is None:
            cam = _Camera(priority, self.initial_rate_per_s, stream_epoch, seq, captured_at,
                          self._holder.get(camera_id))
            self._cameras[camera_id] = cam
            self._add(cam, 1.0)
            return cam.rate_per_s
        self._add(cam, -1.0)
        if stream_epoch == cam.stream_epoch and seq > cam.seq:
            per_batch_s = (captured_at - cam.captured_at) / (seq - cam.seq)
            if per_batch_s > 0:
                cam.rate_per_s += self.alpha * (1 / per_batch_s - cam.rate_per_s)
        if (stream_epoch, seq) > (cam.stream_epoch, cam.seq):
            cam.stream_epoch, cam.seq, cam.captured_at = stream_epoch, seq, captured_at
        cam.priority = priority
        self._add(cam, 1.0)
        return cam.rate_per_s

    def place(self, camera_id: str, worker_id: str, now_mono: float = -math.inf) -> None:
        """The camera is now with `worker_id`, since `now_mono` if that is a change (leave it
        out only where no dwell applies: the policy then moves the camera freely)."""
        if self._holder.get(camera_id) != worker_id:
            self._since[camera_id] = now_mono
        self._holder[camera_id] = worker_id
        cam = self._cameras.get(camera_id)
        if cam is None or cam.holder == worker_id:
            return
        self._add(cam, -1.0)
        cam.holder = worker_id
        self._add(cam, 1.0)

    def holder(self, camera_id: str) -> str | None:
        return self._holder.get(camera_id)

    def held_since(self, camera_id: str) -> float:
        """When the camera's holder took it (monotonic); -inf if unknown or long ago."""
        return self._since.get(camera_id, -math.inf)

    def cameras_of(self, worker_id: str) -> list[str]:
        return [c for c, w in self._holder.items() if w == worker_id]

    def held(self, worker_id: str) -> Rates:
        rates = self._held.get(worker_id)
        if rates is None:
            return _ZERO
        # Incremental sums drift below zero by rounding: never report a negative load.
        low, normal, high, critical = (max(0.0, r) for r in rates)
        return low, normal, high, critical

    def _add(self, cam: _Camera, sign: float) -> None:
        if cam.holder is None:
            return
        rates = self._held.setdefault(cam.holder, [0.0, 0.0, 0.0, 0.0])
        rates[cam.priority] += sign * cam.rate_per_s
