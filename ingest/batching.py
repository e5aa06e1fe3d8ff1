"""Grouping sampled frames into batches of N frames or T ms, with a byte cap. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.batch import EncodedFrame


@dataclass(frozen=True)
class BatchPolicy:
    max_frames: int = 5
    max_wait_s: float = 1.0
    max_bytes: int = 4 * 1024 * 1024


@dataclass
class Batcher:
    policy: BatchPolicy
    _frames: list[EncodedFrame] = field(default_factory=list)
    _bytes: int = 0
    _opened_mono: float = 0.0

    def add(self, frame: EncodedFrame, now_mono: float) -> list[EncodedFrame] | None:
        """Add a frame; returns a full batch when this frame completes one."""
        flushed = None
        if self._frames and self._bytes + len(frame.jpeg) > self.policy.max_bytes:
            flushed = self._take()
        if not self._frames:
            self._opened_mono = now_mono
        self._frames.append(frame)
        self._bytes += len(frame.jpeg)
        if flushed is None and (
            len(self._frames) >= self.policy.max_frames
            or now_mono - self._opened_mono >= self.policy.max_wait_s
        ):
            flushed = self._take()
        return flushed

    def due(self, now_mono: float) -> list[EncodedFrame] | None:
        """A partial batch whose wait has expired (the stream slowed or stalled)."""
        if self._frames and now_mono - self._opened_mono >= self.policy.max_wait_s:
            return self._take()
        return None

    def drain(self) -> list[EncodedFrame] | None:
        return self._take() if self._frames else None

    def _take(self) -> list[EncodedFrame]:
        frames, self._frames, self._bytes = self._frames, [], 0
        return frames
