"""One entry point for every kind of camera: the URL's scheme picks the source.

rtsp/rtsps/rtspt -> RTSP (H.264); http/https -> MJPEG; file:// or an absolute path -> a video
file played as a live camera (paced at its own rate, one pass per session). All of them yield
`DecodedFrame` and end only by raising `SourceError`, so callers need not know which it was.

`SourceStats` is the common counter set: `frames` and `corrupt_access_units` (a corrupt H.264
access unit, JPEG part or file packet: a picture lost to bad input) mean the same for every
source; the RTSP-only fields stay zero / None elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from urllib.parse import urlsplit

from contracts.secrets import SecretMasker, mask_url, url_secrets
from ingest.file_source import file_frames
from ingest.mjpeg_source import mjpeg_frames
from ingest.rtsp_client import Transport
from ingest.rtsp_source import rtsp_frames
from ingest.source import DecodedFrame, SourceError, SourceStats

__all__ = ["SourceStats", "camera_frames", "source_kind"]

_KINDS = {
    "rtsp": "rtsp", "rtsps": "rtsp", "rtspt": "rtsp",
    "http": "mjpeg", "https": "mjpeg",
    "file": "file",
}


def source_kind(url: str) -> str:
    """"rtsp", "mjpeg" or "file" for a camera URL; SourceError("protocol") for anything else."""
    if url.startswith("/"):
        return "file"
    try:
        scheme = urlsplit(url).scheme  # lower-cased by urlsplit
    except ValueError:
        scheme = ""
    kind = _KINDS.get(scheme)
    if kind is None:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise SourceError(
            "protocol", f"{mask_url(url)}: unsupported camera URL ({shown}); "
            "expected rtsp://, rtsps://, http(s):// or file:// (or an absolute path)"
        )
    return kind


async def camera_frames(
    url: str,
    *,
    pinned_address: str | None = None,
    transport: Transport = "tcp",
    timeout_s: float = 10.0,
    stats: SourceStats | None = None,
) -> AsyncGenerator[DecodedFrame, None]:
    """Decoded frames of one session with the camera at `url`, until it fails (SourceError).

    `pinned_address`: the IP address a network source connects to, in place of resolving the
    URL's host (which still names the camera in the request, Host header and TLS SNI); None
    resolves it. `transport` applies to RTSP only, `timeout_s` to network sources; a file
    plays in real time.
    """
    kind = source_kind(url)
    source: AsyncGenerator[DecodedFrame, None]
    if kind == "rtsp":
        source = rtsp_frames(url, pinned_address=pinned_address, transport=transport,
                             timeout_s=timeout_s, stats=stats)
    elif kind == "mjpeg":
        source = mjpeg_frames(url, pinned_address=pinned_address, timeout_s=timeout_s,
                              stats=stats)
    else:
        source = file_frames(url, realtime=True, stats=stats)
    try:
        # aclosing: closing this generator must close the session now, not when collected.
        async with contextlib.aclosing(source):
            async for frame in source:
                yield frame
    except SourceError as exc:
        # The URL's own secrets, in any encoding a server or library may have echoed them in
        # (its userinfo is masked already, by shape).
        masker = SecretMasker(url_secrets(url))
        exc.args = tuple(masker.mask(a) if isinstance(a, str) else a for a in exc.args)
        raise
    # Every source ends by raising; falling out of the loop means one broke that contract.
    raise SourceError("ended", f"{mask_url(url)}: the source stopped without a reason")
