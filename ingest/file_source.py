"""Decoded frames from a video file, played as a live camera or as fast as it decodes.

One call is one session: one pass over the file, ending with SourceError("ended"), or endless
passes with `loop=True`. Each new pass is a new stream inside the session, as DecodedFrame
defines it: stream_id + 1 and pts_s from zero again; in real time the first frame of a pass
comes one frame interval after the last of the previous one. A damaged tail (the demuxer fails
mid-file, as with a recording cut off) is counted as corrupt and ends the pass like EOF.

PyAV objects are not thread-safe, so the container lives on one dedicated thread: it is
opened, read and closed there, and the event loop only awaits it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.video.stream import VideoStream

from ingest.source import DecodedFrame, SourceError, SourceStats

__all__ = ["file_frames"]

_log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

# FFmpeg renders text files (by extension) as video: a .txt would "play" as a camera.
_TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
# Only local files: an HLS playlist or concat list must not make FFmpeg fetch URLs.
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
_DEFAULT_FPS = 25.0
# A consumer that stalls longer than this is not served the backlog in a burst afterwards: a
# live camera would not have kept those frames either. Pacing resumes from now.
_MAX_LAG_S = 1.0


def _resolve(path_or_url: str | os.PathLike[str]) -> Path:
    text = os.fspath(path_or_url)
    if text.startswith("file:"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise SourceError("protocol", f"{text}: a file URL on another host ({parts.netloc})")
        text = unquote(parts.path)
    path = Path(text)
    if not path.is_absolute():
        # A relative path would depend on the ingest process's working directory.
        raise SourceError("protocol", f"{text}: a file source needs an absolute path")
    return path


class _Reader:
    """One pass over the file. Every method blocks: call them on the decode thread only."""

    def __init__(self, path: Path) -> None:
        self.corrupt_packets = 0
        try:
            self._container: InputContainer = av.open(str(path), options=_OPEN_OPTIONS)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise SourceError("not_found", f"{path}: no such file ({exc.strerror})") from exc
        except PermissionError as exc:
            raise SourceError("auth_failed", f"{path}: permission denied") from exc
        except (av.error.FFmpegError, EOFError) as exc:
            raise SourceError("unsupported_codec", f"{path}: not a video file ({exc})") from exc
        try:
            self._stream = self._video_stream(path)
        except SourceError:
            self._container.close()
            raise
        # No frame threads: they report a bad packet's error late or not at all, and corrupt
        # packets must be counted one by one. Real-time playback needs no more than one core.
        self._stream.thread_type = "SLICE"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.frame_interval_s = 1 / float(rate) if rate else 1 / _DEFAULT_FPS
        self._frames = self._decode()

    def _video_stream(self, path: Path) -> VideoStream:
        if self._container.format.name in _TEXT_FORMATS or not self._container.streams.video:
            raise SourceError("unsupported_codec", f"{path}: no video stream")
        return self._container.streams.video[0]

    def _decode(self) -> Iterator[tuple[Image, float | None]]:
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, EOFError) as exc:
                self._count_corrupt(exc)
                return
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                self._count_corrupt(exc)
                continue
            for frame in frames:
                yield np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8), frame.time

    def _count_corrupt(self, exc: Exception) -> None:
        self.corrupt_packets += 1
        if self.corrupt_packets == 1 or self.corrupt_packets % 100 == 0:
            _log.warning("corrupt packet skipped (%d so far): %s", self.corrupt_packets, exc)

    def next_frame(self) -> tuple[Image, float | None] | None:
        return next(self._frames, None)

    def close(self) -> None:
        self._container.close()


class _Pacer:
    """Real-time schedule: each frame is due at origin + its pts on the monotonic clock."""

    def __init__(self) -> None:
        self._origin: float | None = None
        self._last_due = 0.0

    async def wait(self, pts_s: float) -> None:
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - pts_s
        due = self._origin + pts_s
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > _MAX_LAG_S:
            self._origin += now - due
            due = now
        self._last_due = due

    def next_pass(self, gap_s: float) -> None:
        """The next pass's pts restart at zero: its first frame is due `gap_s` after the last."""
        if self._origin is not None:
            self._origin = self._last_due + gap_s


async def file_frames(
    path_or_file_url: str | os.PathLike[str],
    *,
    realtime: bool = True,
    loop: bool = False,
    stats: SourceStats | None = None,
) -> AsyncGenerator[DecodedFrame, None]:
    """Yield decoded BGR frames of a video file (`/abs/path` or `file:///abs/path`) until
    SourceError: "ended" at EOF (never, with `loop`), "not_found", "unsupported_codec".

    `realtime` paces frames at the file's own timing, as a camera would deliver them.
    A packet that fails to decode is skipped and counted in `stats.corrupt_access_units`.
    """
    path = _resolve(path_or_file_url)
    counters = stats if stats is not None else SourceStats()
    event_loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="file-decode")
    pacer = _Pacer()
    reader: _Reader | None = None
    corrupt_before = 0  # of the passes already closed
    stream_id = 0
    try:
        while True:
            reader = await event_loop.run_in_executor(executor, _Reader, path)
            interval_s = reader.frame_interval_s
            first_time: float | None = None
            pts_s = -interval_s
            decoded = 0
            while (item := await event_loop.run_in_executor(executor, reader.next_frame)):
                image, frame_time = item
                counters.corrupt_access_units = corrupt_before + reader.corrupt_packets
                if frame_time is None:  # no pts in the file: assume its nominal rate
                    pts_s += interval_s
                else:
                    first_time = frame_time if first_time is None else first_time
                    pts_s = frame_time - first_time
                if realtime:
                    await pacer.wait(pts_s)
                decoded += 1
                counters.frames += 1
                yield DecodedFrame(image, pts_s, time.time(), stream_id)
            corrupt_before += reader.corrupt_packets
            counters.corrupt_access_units = corrupt_before
            await event_loop.run_in_executor(executor, reader.close)
            reader = None
            if not decoded:
                # Checked on every pass: a looped file with nothing decodable would spin.
                raise SourceError("unsupported_codec", f"{path}: no decodable video frames")
            if not loop:
                raise SourceError("ended", f"{path}: end of file after {decoded} frames")
            stream_id += 1
            pacer.next_pass(interval_s)
    finally:
        if reader is not None:
            # Queued behind a decode that may still run: the container closes on its thread.
            executor.submit(reader.close)
        executor.shutdown(wait=False)
