"""A bounded per-camera reorder window in front of the apply transaction. Pure; clock injected.

Batches of a camera normally arrive in order, but a batch that failed and was requeued comes
back after the ones already prefetched behind it. Without a window those later batches would
apply first and the requeued one would become a gap. The window holds a batch that is ahead of
the camera's next expected sequence number until the missing ones arrive, at most `max_held`
batches or `max_wait_s` seconds; then it releases what it holds (the apply step records the
still-missing span as a gap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Camera(Generic[T]):
    expected: tuple[int, int] | None = None  # (stream_epoch, seq) to apply next
    held: dict[tuple[int, int], tuple[float, T]] = field(default_factory=dict)


@dataclass
class ReorderWindow(Generic[T]):
    max_held: int = 3
    max_wait_s: float = 2.0
    _cameras: dict[str, _Camera[T]] = field(default_factory=dict)

    def offer(self, camera_id: str, stream_epoch: int, seq: int, item: T,
              now_mono: float) -> list[T]:
        """The items to process now, in order (possibly none: `item` is held)."""
        cam = self._cameras.setdefault(camera_id, _Camera())
        key = (stream_epoch, seq)
        exp = cam.expected
        ahead = exp is not None and key[0] == exp[0] and key[1] > exp[1]
        if not ahead:
            # In order, behind (a duplicate), a new stream epoch, or nothing known yet.
            return [item]
        cam.held[key] = (now_mono, item)
        if len(cam.held) > self.max_held:
            return self._release_all(cam)
        return []

    def applied(self, camera_id: str, stream_epoch: int, seq: int) -> None:
        """The camera's progress is now (stream_epoch, seq): expect the next one."""
        cam = self._cameras.setdefault(camera_id, _Camera())
        cam.expected = (stream_epoch, seq + 1)

    def skipped(self, camera_id: str, stream_epoch: int, seq: int) -> None:
        """A batch was settled without applying (dead-lettered, stale): when it is the one
        expected, expect the next. Never moves the expectation back (an old batch skipped)."""
        cam = self._cameras.get(camera_id)
        if cam is not None and cam.expected == (stream_epoch, seq):
            cam.expected = (stream_epoch, seq + 1)

    def ready(self, camera_id: str) -> list[T]:
        """Held items that have become next in line after an apply."""
        cam = self._cameras.get(camera_id)
        return self._release_ready(cam) if cam else []

    def expired(self, now_mono: float) -> list[T]:
        out: list[T] = []
        for cam in self._cameras.values():
            if cam.held and min(t for t, _ in cam.held.values()) + self.max_wait_s <= now_mono:
                out += self._release_all(cam)
        return out

    def held(self) -> int:
        return sum(len(c.held) for c in self._cameras.values())

    def _release_ready(self, cam: _Camera[T]) -> list[T]:
        out = []
        while cam.expected is not None and cam.expected in cam.held:
            out.append(cam.held.pop(cam.expected)[1])
            cam.expected = (cam.expected[0], cam.expected[1] + 1)
        return out

    @staticmethod
    def _release_all(cam: _Camera[T]) -> list[T]:
        items = [cam.held[k][1] for k in sorted(cam.held)]
        cam.held.clear()
        return items
