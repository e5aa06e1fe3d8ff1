"""Decoded frames from an RTSP camera: client -> depacketizer -> decoder, composed.

One call is one session. It ends only by raising `RtspError` (its `reason` says why, "ended"
when the server closed the session); reconnecting is the caller's policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ingest.decoder import AsyncH264Decoder
from ingest.h264_depacketizer import H264Depacketizer
from ingest.rtsp_client import RtspError, Transport, open_stream
from ingest.source import DecodedFrame, SourceStats

__all__ = ["RtspError", "rtsp_frames"]

_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_MAX_PENDING_ARRIVALS = 64


class _Timeline:
    """Unwraps 32-bit RTP timestamps into seconds since the first access unit."""

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._first: int | None = None
        self._last_raw = 0
        self._extended = 0

    def extend(self, timestamp: int) -> int:
        if self._first is None:
            self._first = self._extended = timestamp
        else:
            delta = (timestamp - self._last_raw) % _TS_MOD
            self._extended += delta - _TS_MOD if delta >= _TS_HALF else delta
        self._last_raw = timestamp
        return self._extended

    def seconds(self, extended: int) -> float:
        return (extended - (self._first or 0)) / self._clock_rate


async def rtsp_frames(
    url: str,
    *,
    pinned_address: str | None = None,
    transport: Transport = "tcp",
    timeout_s: float = 10.0,
    stats: SourceStats | None = None,
) -> AsyncGenerator[DecodedFrame, None]:
    """Yield decoded BGR frames from an H.264 RTSP stream until it fails (RtspError).
    `pinned_address`: connect there instead of resolving the URL's host (see open_stream)."""
    counters = stats if stats is not None else SourceStats()
    async with (
        open_stream(
            url, pinned_address=pinned_address, transport=transport, timeout_s=timeout_s,
            accept_codecs=("H264",),
        ) as stream,
        AsyncH264Decoder() as decoder,
    ):
        media = stream.media
        depacketizer = H264Depacketizer(media.sprop_parameter_sets)
        counters.depacketizer = depacketizer.stats
        timeline = _Timeline(media.clock_rate)
        stream_id = 0
        arrivals: dict[int, float] = {}
        async for packet in stream.packets():
            if packet.stream_id != stream_id:
                stream_id = packet.stream_id
                depacketizer.reset()
                await decoder.reset()
                timeline = _Timeline(media.clock_rate)
                arrivals.clear()
            units = depacketizer.push(
                sequence=packet.sequence,
                timestamp=packet.timestamp,
                marker=packet.marker,
                payload=packet.payload,
                received_at=packet.received_at,
            )
            for unit in units:
                pts = timeline.extend(unit.timestamp)
                arrivals[pts] = unit.received_at
                if len(arrivals) > _MAX_PENDING_ARRIVALS:
                    del arrivals[next(iter(arrivals))]
                decoded = await decoder.decode(unit.data, pts)
                counters.corrupt_access_units = decoder.decoder.corrupt_access_units
                counters.queue_dropped_packets = stream.dropped_packets
                for image in decoded:
                    frame_pts = image.pts if image.pts is not None else pts
                    counters.frames += 1
                    yield DecodedFrame(
                        image=image.image,
                        pts_s=timeline.seconds(frame_pts),
                        received_at=arrivals.pop(frame_pts, unit.received_at),
                        stream_id=stream_id,
                    )
    # open_stream only returns by raising; reaching here means the iterator protocol broke.
    raise RtspError("ended", f"{stream.url}: stream ended")
