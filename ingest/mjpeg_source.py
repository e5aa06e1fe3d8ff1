"""Decoded frames from an HTTP MJPEG camera: one `multipart/x-mixed-replace` response of JPEGs.

One call is one session (one GET). It ends only by raising `SourceError`: "ended" when the
server closes the stream or sends the closing boundary. A snapshot URL (a single `image/jpeg`)
is refused with "unsupported_codec" rather than polled: polling is a different camera model
(its rate, its per-request failures) that this one-response session cannot express honestly.

Credentials come from the URL's userinfo and are sent only after the server's 401 says how:
Digest when offered (so the password never crosses the wire), else Basic.
MJPEG carries no timestamps, so pts_s is the arrival time of each part relative to the first,
unless the parts carry mjpg-streamer's `X-Timestamp` (capture time, seconds).

With a pinned address (registry/camera_urls.py) the request goes to that IP address while the
Host header and TLS (SNI and the certificate check) keep the URL's host name, which is never
resolved; redirects are then refused rather than followed: their target was never validated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import httpx
import numpy as np
import numpy.typing as npt

from contracts.secrets import mask_url
from ingest.multipart import MultipartError, MultipartParser, Part, parse_content_type
from ingest.source import DecodedFrame, SourceError, SourceStats

__all__ = ["mjpeg_frames"]

_log = logging.getLogger(__name__)

_MULTIPART_TYPES = ("multipart/x-mixed-replace", "multipart/mixed")
_EOI = b"\xff\xd9"
DEFAULT_MAX_PART_BYTES = 8 << 20  # a 4K JPEG at high quality is 2-4 MB


class _ChallengeAuth(httpx.Auth):
    """Basic or Digest, whichever the 401 asks for. Sending Basic unasked would hand the
    password in clear to a camera that wants Digest, and to anything on the path."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        schemes = {
            value.split(None, 1)[0].lower()
            for value in response.headers.get_list("www-authenticate")
            if value.strip()
        }
        if "digest" in schemes:
            # httpx's DigestAuth, driven through its public flow: it answers the challenge of
            # the 401 we already have instead of asking for a second one.
            digest = httpx.DigestAuth(self._username, self._password).auth_flow(request)
            next(digest)
            try:
                retry = digest.send(response)
            except StopIteration:
                return
            response = yield retry
            with contextlib.suppress(StopIteration):
                digest.send(response)
        elif "basic" in schemes:
            yield next(httpx.BasicAuth(self._username, self._password).auth_flow(request))


@dataclass(frozen=True)
class _Request:
    url: str  # without userinfo (httpx would otherwise send it as Basic, unasked)
    auth: httpx.Auth | None
    headers: dict[str, str]
    extensions: dict[str, str]


def _netloc(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return f"{bracketed}:{port}" if port else bracketed


def _request(url: str, pinned_address: str | None) -> _Request:
    """What to send for `url`: to `pinned_address` when given, the URL's host kept as the
    Host header and TLS server name."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SourceError("protocol", f"{mask_url(url)}: invalid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError("protocol", f"{mask_url(url)}: not an http(s) URL")
    auth = None
    if parts.username is not None:
        auth = _ChallengeAuth(unquote(parts.username), unquote(parts.password or ""))
    headers = {"Accept": "multipart/x-mixed-replace"}
    extensions: dict[str, str] = {}
    target = _netloc(parts.hostname, port)
    if pinned_address is not None:
        headers["Host"] = target
        extensions["sni_hostname"] = parts.hostname
        target = _netloc(pinned_address, port or (443 if parts.scheme == "https" else 80))
    return _Request(urlunsplit(parts._replace(netloc=target)), auth, headers, extensions)


def _decode_jpeg(body: bytes) -> npt.NDArray[np.uint8] | None:
    # libjpeg fills a truncated picture with grey and only warns; OpenCV 5 turns that into a
    # failure, OpenCV 4 returned the half-grey frame. A part that lost its end (EOI) is
    # refused here whatever the version: a half-grey frame is worse than no frame.
    if not body.rstrip(b"\r\n\t \x00").endswith(_EOI):
        return None
    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        return None
    return np.asarray(image, dtype=np.uint8)


class _PartClock:
    """pts_s of each part: its X-Timestamp when the stream has them, else its arrival time."""

    def __init__(self) -> None:
        self.stream_id = 0
        self._first_arrival: float | None = None
        self._first_stamp: float | None = None
        self._last_stamp: float | None = None
        self._stamped: bool | None = None  # decided by the first part

    def pts(self, arrival_mono: float, stamp: float | None) -> float:
        if self._first_arrival is None:
            self._first_arrival, self._stamped = arrival_mono, stamp is not None
            self._first_stamp = self._last_stamp = stamp
            return 0.0
        if not self._stamped or stamp is None or self._first_stamp is None:
            return arrival_mono - self._first_arrival
        if self._last_stamp is not None and stamp < self._last_stamp:
            # The camera's clock went back (restart, NTP step): a new stream, pts from zero.
            self.stream_id += 1
            self._first_arrival, self._first_stamp, self._last_stamp = arrival_mono, stamp, stamp
            return 0.0
        self._last_stamp = stamp
        return stamp - self._first_stamp


def _timestamp(headers: Mapping[str, str]) -> float | None:
    value = headers.get("x-timestamp")
    if not value:
        return None
    try:
        stamp = float(value)
    except ValueError:
        return None
    return stamp if math.isfinite(stamp) else None


def _connect_failure(exc: httpx.ConnectError, shown: str) -> SourceError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return SourceError("refused", f"{shown}: connection refused")
        if isinstance(cause, ssl.SSLError):
            return SourceError("protocol", f"{shown}: TLS failed ({cause})")
        if isinstance(cause, socket.gaierror):
            return SourceError("unreachable", f"{shown}: cannot resolve host ({cause})")
        cause = cause.__cause__ or cause.__context__
    return SourceError("unreachable", f"{shown}: cannot connect ({exc})")


def _http_failure(exc: httpx.HTTPError, shown: str, *, streaming: bool) -> SourceError:
    if isinstance(exc, httpx.TimeoutException):
        what = "no data" if streaming else "no answer"
        return SourceError("timeout", f"{shown}: {what} within the timeout")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, shown)
    if isinstance(exc, httpx.RemoteProtocolError) and (
        "closed" in str(exc) or "disconnected" in str(exc)
    ):
        if streaming:
            # A FIN in the middle of a chunked body: the server ended the stream.
            return SourceError("ended", f"{shown}: the server closed the stream")
        return SourceError("connection_lost", f"{shown}: closed before answering")
    if isinstance(exc, httpx.ProtocolError | httpx.UnsupportedProtocol):
        return SourceError("protocol", f"{shown}: malformed HTTP ({exc})")
    if isinstance(exc, httpx.TransportError):  # read, write, close errors: reset, broken pipe
        return SourceError("connection_lost", f"{shown}: connection broke ({exc!r})")
    return SourceError("protocol", f"{shown}: {exc!r}")  # too many redirects, bad encoding


def _check_response(response: httpx.Response, shown: str) -> str | None:
    """The boundary of a usable MJPEG response (None: learn it from the body), else raise."""
    status = response.status_code
    if response.is_redirect:
        where = mask_url(response.headers.get("location", ""))
        raise SourceError("protocol", f"{shown}: HTTP {status} redirect to {where!r} not "
                          "followed (register the stream's own url)", status=status)
    if status in (401, 403):
        offered = ", ".join(
            v.split(None, 1)[0] for v in response.headers.get_list("www-authenticate") if v.strip()
        )
        hint = f" (server offers: {offered})" if offered else ""
        raise SourceError("auth_failed", f"{shown}: HTTP {status}{hint}", status=status)
    if status in (404, 410):
        raise SourceError("not_found", f"{shown}: HTTP {status}", status=status)
    if status != 200:
        raise SourceError("protocol", f"{shown}: HTTP {status}", status=status)
    media_type, boundary = parse_content_type(response.headers.get("content-type", ""))
    if media_type == "image/jpeg":
        raise SourceError(
            "unsupported_codec", f"{shown}: a single JPEG snapshot, not an MJPEG stream"
        )
    if media_type not in _MULTIPART_TYPES:
        raise SourceError("unsupported_codec", f"{shown}: content type {media_type!r} is not MJPEG")
    return boundary


async def _parts(
    response: httpx.Response, parser: MultipartParser
) -> AsyncGenerator[Part, None]:
    async for chunk in response.aiter_raw():
        for part in parser.feed(chunk):
            yield part
        if parser.closed:
            return
    for part in parser.finish():
        yield part


async def mjpeg_frames(
    url: str,
    *,
    pinned_address: str | None = None,
    timeout_s: float = 10.0,
    stats: SourceStats | None = None,
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
) -> AsyncGenerator[DecodedFrame, None]:
    """Yield decoded BGR frames from an MJPEG-over-HTTP stream until it fails (SourceError).

    `pinned_address`: the IP address to connect to instead of resolving the URL's host.

    `timeout_s` bounds connecting, the answer, and each silence in the stream. A corrupt JPEG is
    skipped and counted in `stats.corrupt_access_units` (as is a part lost to broken framing).
    """
    counters = stats if stats is not None else SourceStats()
    shown = mask_url(url)
    request = _request(url, pinned_address)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mjpeg-decode")
    corrupt = 0
    streaming = False
    try:
        # trust_env=False: no proxy variables and no ~/.netrc credentials sneak into a camera
        # session; what the camera's URL says is all that is sent.
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s), auth=request.auth,
                follow_redirects=pinned_address is None, trust_env=False,
            ) as client,
            client.stream("GET", request.url, headers=request.headers,
                          extensions=request.extensions) as response,
        ):
            parser = MultipartParser(
                _check_response(response, shown), max_part_bytes=max_part_bytes
            )
            clock = _PartClock()
            streaming = True
            parts = _parts(response, parser)
            async with contextlib.aclosing(parts):
                async for part in parts:
                    arrival_mono, received_at = time.monotonic(), time.time()
                    image = await loop.run_in_executor(executor, _decode_jpeg, part.body)
                    # Resyncs too: each one is a part lost to broken framing.
                    counters.corrupt_access_units = corrupt + parser.resyncs
                    if image is None:
                        corrupt += 1
                        counters.corrupt_access_units += 1
                        if corrupt == 1 or corrupt % 100 == 0:
                            _log.warning("%s: corrupt JPEG part skipped (%d so far)",
                                         shown, corrupt)
                        continue
                    pts_s = clock.pts(arrival_mono, _timestamp(part.headers))
                    counters.frames += 1
                    yield DecodedFrame(image, pts_s, received_at, clock.stream_id)
    except httpx.HTTPError as exc:
        raise _http_failure(exc, shown, streaming=streaming) from exc
    except MultipartError as exc:
        raise SourceError("protocol", f"{shown}: {exc}") from exc
    finally:
        # wait=False: a decode still running finishes on its own; the caller need not wait.
        executor.shutdown(wait=False, cancel_futures=True)
    # Out of the loop: the body ended (FIN, last chunk or the closing boundary), not an error.
    raise SourceError("ended", f"{shown}: the server ended the stream")
