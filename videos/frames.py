"""Reading a video file for a job: its frame rate and length (probe), and one segment's frames
by global index, JPEG-encoded (SegmentReader). Blocking PyAV work: call from one thread each.

A frame's index is its presentation time over the nominal rate, so a segment that seeks into
the file numbers its frames exactly as a pass from the start would; a file without timestamps
is read from the start and numbered by count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer

from contracts.batch import EncodedFrame
from ingest.jpeg import encode_jpeg
from videos.segments import Segment

# Only local files: an HLS playlist or concat list must not make FFmpeg fetch URLs.
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
_DEFAULT_FPS = 25.0
_SEEK_MARGIN_S = 1.0  # seek this far before the first frame wanted: keyframes are sparse


class VideoError(Exception):
    """The file cannot serve as a video job's source; the message says why."""


@dataclass(frozen=True, slots=True)
class Probe:
    fps: float
    frames_total: int
    first_time_s: float  # presentation time of the first frame
    timed: bool = True  # the packets carry timestamps (else segments read from the top)


def _open(path: Path) -> InputContainer:
    try:
        container = av.open(str(path), options=_OPEN_OPTIONS)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise VideoError(f"{path.name}: no such file") from exc
    except (av.error.FFmpegError, EOFError) as exc:
        raise VideoError(f"{path.name}: not a video file ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name}: no video stream")
    return container


def probe(path: Path) -> Probe:
    """Frame rate, frame count (by demuxing packets: no decoding) and first timestamp."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else _DEFAULT_FPS
        first: float | None = None
        packets = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet at the end
                packets += 1
                if packet.pts is not None and packet.time_base is not None:
                    at = float(packet.pts * packet.time_base)
                    first = at if first is None else min(first, at)
        except (av.error.FFmpegError, EOFError):
            pass  # a damaged tail ends the file, as it ends a camera's pass
    if packets == 0:
        raise VideoError(f"{path.name}: no video frames")
    return Probe(fps, packets, first or 0.0, first is not None)


class SegmentReader:
    """A segment's kept frames (every `stride`-th global index in [first_frame, own_to)),
    handed out a batch at a time as EncodedFrames timed base_at + index / fps."""

    def __init__(self, path: Path, segment: Segment, probe: Probe, stride: int, base_at: float,
                 max_width: int, jpeg_quality: int) -> None:
        self._segment, self._probe, self._stride = segment, probe, stride
        self._base_at, self._max_width, self._quality = base_at, max_width, jpeg_quality
        self._container = _open(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._frames = self._decode()

    def _decode(self) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        segment, probe = self._segment, self._probe
        fps = probe.fps
        target_s = probe.first_time_s + segment.first_frame / fps - _SEEK_MARGIN_S
        if probe.timed and target_s > probe.first_time_s:
            time_base = self._stream.time_base or Fraction(1, 90_000)
            self._container.seek(math.floor(target_s / time_base), stream=self._stream,
                                 backward=True, any_frame=False)
        counted = 0
        try:
            for frame in self._container.decode(self._stream):
                if probe.timed and frame.time is not None:
                    index = round((frame.time - probe.first_time_s) * fps)
                else:
                    index = counted  # read from the top: numbered by count
                counted += 1
                if index >= segment.own_to:
                    return
                if index < segment.first_frame or index % self._stride:
                    continue
                yield index, np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
        except (av.error.FFmpegError, EOFError):
            return  # a damaged tail: the segment ends there (fewer batches than planned)

    def next_batch(self, size: int) -> list[EncodedFrame]:
        """Up to `size` frames; an empty list once the segment is exhausted."""
        out: list[EncodedFrame] = []
        for index, image in self._frames:
            jpeg, width, height = encode_jpeg(image, self._max_width, self._quality)
            out.append(EncodedFrame(self._base_at + index / self._probe.fps, width, height, jpeg))
            if len(out) == size:
                break
        return out

    def close(self) -> None:
        self._container.close()
