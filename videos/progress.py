"""How far a job has come: pure, from each segment's applied batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from videos.segments import Segment, kept_frames


@dataclass(frozen=True, slots=True)
class JobProgress:
    segments_done: int
    segments_total: int
    frames_done: int
    frames_total: int

    def line(self) -> str:
        return (f"segments {self.segments_done}/{self.segments_total}, "
                f"frames {self.frames_done}/{self.frames_total}")


def own_frames_done(segment: Segment, stride: int, batch_frames: int, applied: int) -> int:
    """Frames of the segment's own window behind its last applied batch (the file's frames,
    sampled or not). `applied`: how many of its batches are applied."""
    kept = kept_frames(segment, stride)
    sent = min(len(kept), applied * batch_frames)
    if sent >= len(kept):
        return segment.own_to - segment.own_from
    if sent == 0:
        return 0
    behind = kept[sent - 1] + 1  # every frame up to the last one processed
    return max(0, min(behind, segment.own_to) - segment.own_from)


def job_progress(segments: Sequence[Segment], batches: Sequence[int], applied: Sequence[int],
                 stride: int, batch_frames: int, frames_total: int) -> JobProgress:
    done = sum(1 for total, n in zip(batches, applied, strict=True) if n >= total)
    frames = sum(own_frames_done(s, stride, batch_frames, n)
                 for s, n in zip(segments, applied, strict=True))
    return JobProgress(done, len(segments), min(frames, frames_total), frames_total)
