"""Planning a video's segments: pure, in frame indices.

Segment k owns the frames [own_from, own_to) and its tracker starts `overlap` frames earlier,
at `first_frame`, so that by `own_from` it has seen what the single stream had seen: tracks
confirmed, their side of each line settled, a track that vanished just before handed over.

Why the overlap must exceed the tracker's confirmation time (and then some): a crossing is
counted only for a confirmed track whose side of the line has settled (workers/counting.py:
`minimum_consecutive_frames` matches to confirm, `settle_frames` observations on each side).
A segment whose tracker started at its own first frame would meet a person already walking
towards the line as a brand-new, tentative track: if they cross before it is confirmed and
settled, that crossing is lost (the previous segment ended before it); if the overlap is
shorter than the hand-over window (LineCounter.handover_s), a person hidden across the boundary
comes back as a newcomer with no side history and is lost too. With the overlap longer than
confirmation + settling + hand-over, the tracker's state at `own_from` matches the single
stream's, each crossing is reported by both neighbours at the same frame, and the ownership
rule (videos/ownership.py) keeps exactly one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    index: int
    first_frame: int  # tracking starts here: own_from minus the overlap, never before 0
    own_from: int  # the first frame whose crossings this segment counts
    own_to: int  # exclusive

    @property
    def frames(self) -> int:
        """Frames the segment processes, its overlap included."""
        return self.own_to - self.first_frame

    @property
    def preroll(self) -> int:
        return self.own_from - self.first_frame


def plan_segments(frames_total: int, fps: float, segment_s: float,
                  overlap_s: float) -> list[Segment]:
    """Segments of about `segment_s` covering every frame once (by ownership), each starting
    its tracker `overlap_s` earlier. A tail shorter than half a segment joins the one before:
    a short last segment would cost a whole overlap for little footage."""
    if frames_total <= 0:
        return []
    if fps <= 0 or segment_s <= 0 or overlap_s < 0:
        raise ValueError("fps and segment_s must be positive, overlap_s not negative")
    length = max(1, round(segment_s * fps))
    overlap = math.ceil(overlap_s * fps - 1e-9)
    count = max(1, frames_total // length)
    if frames_total - count * length >= length / 2:
        count += 1
    bounds = [min(k * length, frames_total) for k in range(count)] + [frames_total]
    return [Segment(k, max(0, bounds[k] - overlap), bounds[k], bounds[k + 1])
            for k in range(count)]


def sample_stride(fps: float, target_fps: float | None) -> int:
    """Keep every n-th frame of the file (by its global index, so every segment keeps the same
    frames as the single stream would)."""
    if target_fps is None or target_fps >= fps:
        return 1
    return max(1, round(fps / target_fps))


def batch_count(segment: Segment, stride: int, batch_frames: int) -> int:
    """How many batches a segment's sampled frames make."""
    kept = len(range(_first_kept(segment.first_frame, stride), segment.own_to, stride))
    return math.ceil(kept / batch_frames)


def _first_kept(frame: int, stride: int) -> int:
    return -(-frame // stride) * stride


def kept_frames(segment: Segment, stride: int) -> range:
    """The global indices of the frames a segment sends, in order."""
    return range(_first_kept(segment.first_frame, stride), segment.own_to, stride)
