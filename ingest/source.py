"""What every camera source yields and how it fails, whatever the protocol behind it.

A source is an async iterator of `DecodedFrame` for one session (one connection, one pass of a
file). It never ends quietly: it stops only by raising `SourceError`, whose `reason` says why
(the camera's status and the reconnect policy are chosen from it), including "ended" when the
other side closed the session. Reconnecting is the caller's policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

from contracts.secrets import mask_credentials
from ingest.h264_depacketizer import DepacketizerStats

SourceFailure = Literal[
    "auth_failed",  # 401/403, or credentials refused
    "not_found",  # 404: no such stream or file
    "unsupported_transport",  # 461: e.g. UDP asked of a TCP-only server
    "unsupported_codec",  # the stream is not one the caller accepts
    "refused",  # TCP connection refused
    "unreachable",  # DNS failure, no route
    "timeout",  # connect, request or data silence longer than timeout_s
    "protocol",  # anything the server says that makes no sense, other 4xx/5xx
    "connection_lost",  # the connection broke mid-stream
    "ended",  # the server ended the session (closed the connection, RTCP BYE, end of file)
]


class SourceError(Exception):
    """A source could not be opened or stopped; `reason` says why, `status` the protocol code."""

    def __init__(self, reason: SourceFailure, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{reason}: {mask_credentials(message)}")
        self.reason: SourceFailure = reason
        self.status = status


@dataclass(slots=True)
class SourceStats:
    """Live counters of one source session; pass one in to read them while iterating."""

    frames: int = 0
    corrupt_access_units: int = 0  # undecodable units, JPEG parts or file packets: skipped
    queue_dropped_packets: int = 0  # RTSP only: packets the consumer was too slow for
    depacketizer: DepacketizerStats | None = None  # RTSP only


class DecodedFrame:
    """One decoded picture with its times.

    A decoder may hand over its own frame object instead of pixels: it is converted to BGR only
    when `image` is read. Ingest decodes every frame (H.264 needs them all) but keeps one in
    five; converting only those saves a third of the decode cost at 720p. Read `image` off the
    event loop: the conversion is CPU work.
    """

    __slots__ = ("_picture", "pts_s", "received_at", "stream_id")

    def __init__(self, image: npt.NDArray[np.uint8] | av.VideoFrame, pts_s: float,
                 received_at: float, stream_id: int) -> None:
        self._picture = image
        self.pts_s = pts_s  # presentation time in seconds, relative to the stream's first frame
        self.received_at = received_at  # time.time() when complete (capture time as we know it)
        self.stream_id = stream_id  # changes when the stream restarts inside a session

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        """(H, W, 3) uint8 BGR."""
        picture = self._picture
        if isinstance(picture, av.VideoFrame):
            return np.asarray(picture.to_ndarray(format="bgr24"), dtype=np.uint8)
        return picture

    def __repr__(self) -> str:
        return (f"DecodedFrame(pts_s={self.pts_s:.3f}, received_at={self.received_at:.3f}, "
                f"stream_id={self.stream_id})")
