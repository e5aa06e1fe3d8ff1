"""What every camera source yields and how it fails, whatever the protocol behind it.

A source is an async iterator of `DecodedFrame` for one session (one connection, one pass of a
file). It never ends quietly: it stops only by raising `SourceError`, whose `reason` says why
(the camera's status and the reconnect policy are chosen from it), including "ended" when the
other side closed the session. Reconnecting is the caller's policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from contracts.secrets import mask_credentials

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


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    image: npt.NDArray[np.uint8]  # (H, W, 3) BGR
    pts_s: float  # presentation time in seconds, relative to the first frame of the stream
    received_at: float  # time.time() when the frame was complete (capture time as we know it)
    stream_id: int  # changes when the stream restarts inside a session (pts_s restarts then)
