"""One session's media pipeline on its own thread: frames -> H.264 -> RTP, paced in real time.

Rendering and encoding never touch the event loop; finished packets are handed over with
`call_soon_threadsafe`. The scene clock is the frame index (t = i / fps), so the RTP timestamps
and the scene's ground truth agree exactly even when the thread runs late. A mount encoded once
(`preencode_s`) skips the encoder: its access units are replayed in a loop, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

from simulator.encoder import EncodedFrame, H264Encoder
from simulator.rtp import H264_CLOCK_RATE, H264Packetizer
from simulator.sources import MountMedia

_log = logging.getLogger(__name__)

# Beyond this lag the thread stops trying to catch up (a burst of old frames helps nobody).
MAX_LAG_S = 1.0

PacketSink = Callable[[list[bytes]], None]
EndCallback = Callable[[BaseException | None], None]


class StreamThread:
    """Runs until `stop()`, until the source ends (file without loop) or on an error.

    `deliver` and `on_end` are called on the event loop, never on the thread.
    """

    def __init__(
        self,
        *,
        media: MountMedia,
        packetizer: H264Packetizer,
        initial_timestamp: int,
        loop: asyncio.AbstractEventLoop,
        deliver: PacketSink,
        on_end: EndCallback,
        clock: Callable[[], float] = time.monotonic,
        start_delay_s: float = 0.0,
    ) -> None:
        self._media = media
        self._packetizer = packetizer
        self._initial_timestamp = initial_timestamp
        self._loop = loop
        self._deliver = deliver
        self._on_end = on_end
        self._clock = clock
        self._start_delay_s = start_delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sim-{media.spec.name}", daemon=True
        )
        self.frames_sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    async def join(self) -> None:
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._stream()
        except Exception as exc:
            _log.exception("stream for mount %s failed", self._media.spec.name)
            error = exc
        if not self._stop.is_set():
            self._call_soon(self._on_end, error)

    def _stream(self) -> None:
        if self._stop.wait(self._start_delay_s):
            return
        clip = self._media.clip
        if clip is not None:
            self._pace(itertools.cycle(clip.frames))
            return
        encoder = H264Encoder(self._media.width, self._media.height, self._media.fps)
        # closing(): a file source holds an open container until its generator is closed.
        with contextlib.closing(self._media.frames()) as frames:
            self._pace(encoder.encode(frame) for frame in frames)

    def _pace(self, units: Iterator[EncodedFrame]) -> None:
        fps = self._media.fps
        start = self._clock()
        anchor_index = 0
        for index, encoded in enumerate(units):
            due = start + (index - anchor_index) / fps
            wait_s = due - self._clock()
            if wait_s < -MAX_LAG_S:
                _log.warning(
                    "mount %s runs %.1f s late; re-anchoring", self._media.spec.name, -wait_s
                )
                start, anchor_index = self._clock(), index
            elif self._stop.wait(max(wait_s, 0.0)):
                return
            if self._stop.is_set():
                return
            timestamp = self._initial_timestamp + round(index * H264_CLOCK_RATE / fps)
            packets = self._packetizer.packetize(encoded.nals, timestamp)
            if not self._call_soon(self._deliver, packets):
                return
            self.frames_sent += 1

    def _call_soon(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the server is gone
            return False
        return True
