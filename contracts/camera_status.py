"""The status of a camera as ingest sees it: what an operator reads and what alerts key on."""

from __future__ import annotations

from typing import Literal, get_args

CameraStatus = Literal[
    "connecting",  # a session is being opened (first time, or after a failure)
    "live",  # frames are arriving and moving
    "stalled",  # the session is open but no frame came for STALL_S
    "frozen",  # frames arrive but the picture or the timestamps do not move
    "auth_failed",  # the camera refused the credentials
    "unreachable",  # refused, no route, timeout, wrong path, unsupported stream
    "backpressure",  # frames are being dropped: the broker blocks publishers or the buffer is full
    "unassigned",  # enabled, but no ingest node has room for it (every node at capacity)
    "disabled",  # disabled through the API
]
CAMERA_STATUSES: tuple[str, ...] = get_args(CameraStatus)

# Statuses in which the camera delivers no usable frames: coverage is lost while they last.
DOWN_STATUSES: frozenset[str] = frozenset(
    {"stalled", "frozen", "auth_failed", "unreachable", "unassigned"}
)
