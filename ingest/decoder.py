"""H.264 access units to BGR images with PyAV, fed directly: no demuxer, no probing.

`H264Decoder` is blocking and not thread-safe; `AsyncH264Decoder` runs it on one dedicated
thread so decode order is kept and the event loop never waits on FFmpeg.
Corrupt input is skipped and counted, never raised: one bad access unit must not end a stream.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from av.video.codeccontext import VideoCodecContext

_log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class DecodedImage:
    image: av.VideoFrame  # converted to pixels by whoever keeps it (most frames are not kept)
    pts: int | None  # the pts given with the access unit that produced it (codec delay aside)


class H264Decoder:
    def __init__(self) -> None:
        self.corrupt_access_units = 0
        self.decoded_frames = 0
        self._ctx = self._create()

    @staticmethod
    def _create() -> VideoCodecContext:
        ctx = av.CodecContext.create("h264", "r")
        assert isinstance(ctx, VideoCodecContext)
        # Slice threads add no delay; frame threads would hold back one frame per thread.
        ctx.thread_type = "SLICE"
        return ctx

    def reset(self) -> None:
        """Start over (new SSRC, new stream parameters): drop every reference picture."""
        self._ctx = self._create()

    def decode(self, access_unit: bytes, pts: int | None = None) -> list[DecodedImage]:
        packet = av.Packet(access_unit)
        packet.pts = pts
        try:
            frames = self._ctx.decode(packet)
            images = [DecodedImage(frame, frame.pts) for frame in frames]
        except (av.error.FFmpegError, ValueError) as exc:
            self.corrupt_access_units += 1
            if self.corrupt_access_units == 1 or self.corrupt_access_units % 100 == 0:
                _log.warning(
                    "corrupt access unit skipped (%d so far): %s", self.corrupt_access_units, exc
                )
            return []
        self.decoded_frames += len(images)
        return images


class AsyncH264Decoder:
    """`H264Decoder` on a private thread. Use as an async context manager."""

    def __init__(self) -> None:
        self.decoder = H264Decoder()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="h264-decode")

    async def decode(self, access_unit: bytes, pts: int | None = None) -> list[DecodedImage]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.decoder.decode, access_unit, pts)

    async def reset(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.decoder.reset)

    async def __aenter__(self) -> AsyncH264Decoder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # wait=False: a decode still running finishes on its own; the caller need not wait.
        self._executor.shutdown(wait=False, cancel_futures=True)
