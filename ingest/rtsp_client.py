"""RTSP session and RTP reception over aiortsp, with failures raised as typed errors.

aiortsp gives the pieces (connection, media session, TCP/UDP transports) but its reader ends
its packet iterator silently on 401/404/461/refusal and picks the transport from the URL scheme.
Here the transport is an argument, every failure surfaces as `RtspError` with a `reason`, and
the end of a stream (server close, RTCP BYE, no data) is an error too, never a quiet stop.

Credentials in the URL go to aiortsp's authenticator only; anything we log or raise shows the
URL masked, and aiortsp's own log lines pass through a filter that masks them as well.

With a pinned address (registry/camera_urls.py) TCP and UDP go there; the URL's host, never
resolved, still names the camera in request URIs and TLS (SNI, certificate check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import struct
import time
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from aiortsp.rtcp.parser import RTCP
from aiortsp.rtsp.connection import RTSPConnection
from aiortsp.rtsp.errors import RTSPConnectionError, RTSPError, RTSPResponseError, RTSPTimeoutError
from aiortsp.rtsp.session import RTSPMediaSession
from aiortsp.transport import TCPTransport, UDPTransport

from contracts.secrets import mask_credentials
from infra.runner import cancel_and_wait
from ingest.h264_depacketizer import parse_sprop_parameter_sets
from ingest.source import SourceError, SourceFailure

Transport = Literal["tcp", "udp"]

RTCP_BYE = 203
MAX_QUEUED_PACKETS = 4096
_log = logging.getLogger(__name__)


class RtspError(SourceError):
    """An RTSP stream could not be opened or stopped; `reason` says why, `status` the code."""


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# aiortsp logs through this logger: requests with their Authorization header at debug level
# (masked by the filter), and half a dozen info lines per connection, hence WARNING by default;
# lower this logger's level to see them.
_aiortsp_log = logging.getLogger(f"{__name__}.aiortsp")
_aiortsp_log.addFilter(_MaskingFilter())
_aiortsp_log.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    ssrc: int
    sequence: int
    timestamp: int
    marker: bool
    payload_type: int
    payload: bytes
    received_at: float  # time.time() on arrival
    stream_id: int  # starts at 0, +1 whenever the SSRC changes: decoder state is invalid then


@dataclass(frozen=True, slots=True)
class MediaDescription:
    codec: str  # rtpmap encoding name, upper case ("H264")
    payload_type: int | None
    clock_rate: int
    sprop_parameter_sets: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _RawRtp:
    seq: int  # the two attributes aiortsp's RTCP statistics read
    ts: int


def parse_rtp(data: bytes) -> tuple[int, int, int, bool, int, bytes] | None:
    """(ssrc, seq, ts, marker, pt, payload) of an RTP packet, None if it is not one."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if offset > end:
        return None
    return ssrc, seq, ts, bool(second & 0x80), second & 0x7F, data[offset:end]


class _Reception:
    """Packet sink shared by both transports: parses, tracks the SSRC, bounds the queue."""

    def __init__(self, payload_type: int | None) -> None:
        self.queue: asyncio.Queue[RtpPacket | RtspError] = asyncio.Queue()
        self.payload_type = payload_type
        self.ssrc: int | None = None
        self.stream_id = 0
        self.dropped_packets = 0  # queue overflow: the consumer is too slow
        self.invalid_packets = 0

    def rtp(self, data: bytes) -> _RawRtp | None:
        parsed = parse_rtp(data)
        if parsed is None:
            self.invalid_packets += 1
            return None
        ssrc, seq, ts, marker, pt, payload = parsed
        if self.payload_type is not None and pt != self.payload_type:
            return None
        if self.ssrc != ssrc:
            if self.ssrc is not None:
                self.stream_id += 1
                _log.info(
                    "SSRC changed %08x -> %08x: new stream %d", self.ssrc, ssrc, self.stream_id
                )
            self.ssrc = ssrc
        if self.queue.qsize() >= MAX_QUEUED_PACKETS:
            # Dropping here shows up downstream as a sequence gap, hence as counted loss.
            self.dropped_packets += 1
            return _RawRtp(seq, ts)
        self.queue.put_nowait(
            RtpPacket(ssrc, seq, ts, marker, pt, payload, time.time(), self.stream_id)
        )
        return _RawRtp(seq, ts)

    def rtcp(self, data: bytes) -> RTCP | None:
        try:
            report = RTCP.unpack(data)
        except (ValueError, struct.error, IndexError):
            # Servers send types aiortsp does not know (XR, feedback); aiortsp would drop the
            # whole connection over them.
            return None
        for packet in report.packets:
            if packet.pt == RTCP_BYE and (self.ssrc is None or self.ssrc in packet.ssrcs):
                self.finish(RtspError("ended", "server sent RTCP BYE"))
        return report

    def finish(self, error: RtspError) -> None:
        self.queue.put_nowait(error)


class _ReceptionMixin:
    """Replaces aiortsp's per-packet dpkt parsing and client fan-out with `_Reception`."""

    reception: _Reception
    stats: Any

    def handle_rtp_data(self, data: bytes) -> None:
        raw = self.reception.rtp(data)
        if raw is not None:
            self.stats.update(raw)

    def handle_rtcp_data(self, data: bytes) -> None:
        report = self.reception.rtcp(data)
        if report is not None:
            self.stats.handle_rtcp(report)


class _Connection(RTSPConnection):  # type: ignore[misc]
    """aiortsp's, with TLS checked against the URL's host rather than `host` (pinned)."""

    def __init__(self, *args: Any, server_hostname: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_hostname = server_hostname

    async def prepare(self) -> None:
        loop = asyncio.get_running_loop()
        tls = {"ssl": self.ssl, "server_hostname": self.server_hostname} if self.ssl else {}
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self, self.host, self.port, **tls),
                self.default_timeout)
        except (TimeoutError, OSError) as exc:
            raise RTSPConnectionError(f"Unable to connect to {self.host}:{self.port}") from exc


class _TcpTransport(_ReceptionMixin, TCPTransport):  # type: ignore[misc]
    pass


class _UdpTransport(_ReceptionMixin, UDPTransport):  # type: ignore[misc]
    pass


class RtspStream:
    """A playing RTSP session; iterate `packets()` until it raises."""

    def __init__(self, url: str, media: MediaDescription, reception: _Reception) -> None:
        self.url = mask_credentials(url)
        self.media = media
        self._reception = reception

    @property
    def dropped_packets(self) -> int:
        return self._reception.dropped_packets

    async def packets(self) -> AsyncIterator[RtpPacket]:
        while True:
            item = await self._reception.queue.get()
            if isinstance(item, RtspError):
                # Later callers must see the same end, not hang on an empty queue.
                self._reception.queue.put_nowait(item)
                raise item
            yield item


@contextlib.asynccontextmanager
async def open_stream(
    url: str,
    *,
    pinned_address: str | None = None,
    transport: Transport = "tcp",
    timeout_s: float = 10.0,
    accept_codecs: Collection[str] | None = None,
) -> AsyncIterator[RtspStream]:
    """Connect, DESCRIBE, SETUP, PLAY; yield the playing stream; TEARDOWN on exit.

    `url` is an `rtsp://[user:pass@]host[:port]/path` (or `rtsps://` for TLS), its host never
    resolved when `pinned_address` is given. Every failure, during setup or later while
    iterating packets, raises `RtspError`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps", "rtspt") or not parts.hostname:
        raise RtspError("protocol", f"not an RTSP URL: {mask_credentials(url)}")
    # aiortsp's session strips the scheme and credentials it sends: give it a plain rtsp(s) URL.
    scheme = "rtsps" if parts.scheme == "rtsps" else "rtsp"
    request_url = urlunsplit(parts._replace(scheme=scheme))
    masked = mask_credentials(url)
    tls = ssl.create_default_context() if scheme == "rtsps" else None
    port = parts.port or (322 if tls else 554)

    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    connection = _Connection(
        pinned_address or parts.hostname,
        port,
        username,
        password,
        logger=_aiortsp_log,
        timeout=timeout_s,
        ssl=tls,
        server_hostname=parts.hostname,
    )
    try:
        await connection.prepare()
    except RTSPConnectionError as exc:
        raise _connect_error(exc, masked, timeout_s) from None

    transport_class = _TcpTransport if transport == "tcp" else _UdpTransport
    rtp = transport_class(connection, logger=_aiortsp_log, timeout=timeout_s)
    rtp.reception = _Reception(payload_type=None)
    session = RTSPMediaSession(connection, request_url, transport=rtp, logger=_aiortsp_log)
    supervisor: asyncio.Task[None] | None = None
    try:
        await _step("setup", masked, rtp.prepare())
        await _step("setup", masked, session.setup())
        media = _describe(session)
        if accept_codecs is not None and media.codec not in accept_codecs:
            raise RtspError("unsupported_codec", f"{masked} carries {media.codec}")
        rtp.reception.payload_type = media.payload_type
        await _step("PLAY", masked, session.play())
        supervisor = asyncio.create_task(_supervise(connection, rtp, session, masked))
        yield RtspStream(url, media, rtp.reception)
    finally:
        try:
            if supervisor is not None:
                await cancel_and_wait(supervisor)
        finally:
            # Even when our caller is being cancelled (cancel_and_wait passes that on): a
            # camera handed to another node must be torn down before its lease is released.
            await _close(connection, rtp, session, timeout_s)


async def _step(what: str, masked: str, awaitable: Any) -> Any:
    """Run one aiortsp step, turning whatever it raises into an RtspError with a reason."""
    try:
        return await awaitable
    except RtspError:
        raise
    except RTSPResponseError as exc:
        response = exc.response
        status = int(response.status) if response is not None else None
        detail = f"{response.status} {response.status_msg}" if response is not None else "error"
        method = _FAILED_METHOD.search(str(exc.args[0]) if exc.args else "")
        what = method.group(1) if method else what
        reason = _STATUS_REASONS.get(status or 0, "protocol")
        raise RtspError(reason, f"{what} {masked}: {detail}", status=status) from None
    except RTSPTimeoutError:
        raise RtspError("timeout", f"{what} {masked}: no answer in time") from None
    except RTSPConnectionError as exc:
        raise RtspError("protocol", f"{what} {masked}: connection closed ({exc})") from None
    except (RTSPError, AssertionError, ValueError, KeyError, TypeError) as exc:
        raise RtspError("protocol", f"{what} {masked}: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise RtspError("unreachable", f"{what} {masked}: {exc}") from None


_FAILED_METHOD = re.compile(r"request error for (\w+) ")


_STATUS_REASONS: dict[int, SourceFailure] = {
    401: "auth_failed",
    403: "auth_failed",
    404: "not_found",
    461: "unsupported_transport",
}


def _connect_error(exc: RTSPConnectionError, masked: str, timeout_s: float) -> RtspError:
    cause = exc.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return RtspError("refused", f"{masked}: connection refused")
    if isinstance(cause, TimeoutError):
        return RtspError("timeout", f"{masked}: no connection within {timeout_s:g} s")
    return RtspError("unreachable", f"{masked}: {cause or exc}")


def _describe(session: Any) -> MediaDescription:
    sdp = session.sdp
    media = sdp.get_media("video") if sdp is not None else None
    if media is None:
        raise RtspError("unsupported_codec", "the SDP has no video stream")
    attributes = media.get("attributes", {})
    rtpmap = attributes.get("rtpmap") or {}
    fmtp = attributes.get("fmtp") or {}
    return MediaDescription(
        codec=str(rtpmap.get("encoding", "unknown")).upper(),
        payload_type=rtpmap.get("pt"),
        clock_rate=int(rtpmap.get("clockRate") or 90_000),
        sprop_parameter_sets=parse_sprop_parameter_sets(
            fmtp.get("sprop-parameter-sets") if isinstance(fmtp, dict) else None
        ),
    )


async def _supervise(connection: Any, rtp: Any, session: Any, masked: str) -> None:
    """Send keep-alives and turn the end of the connection or transport into an RtspError."""
    reception: _Reception = rtp.reception
    keepalive_s = max(1.0, float(session.session_keepalive))
    ends = (rtp.result, connection.result)
    while True:
        done, _ = await asyncio.wait(ends, timeout=keepalive_s, return_when=FIRST_COMPLETED)
        if done:
            # A transport timeout closes the connection too: report the first cause.
            first = next(future for future in ends if future in done)
            reception.finish(_end_reason(first, masked))
            return
        try:
            await _step("keep-alive", masked, session.keep_alive())
        except RtspError as exc:
            reception.finish(exc)
            return


def _end_reason(future: asyncio.Future[Any], masked: str) -> RtspError:
    if future.cancelled():
        return RtspError("connection_lost", f"{masked}: connection cancelled")
    error = future.exception()
    if error is None:
        return RtspError("ended", f"{masked}: the server closed the session")
    if isinstance(error, TimeoutError):
        return RtspError("timeout", f"{masked}: no RTP data in time")
    if isinstance(error, RTSPConnectionError) and isinstance(
        error.__cause__, ValueError | AssertionError
    ):
        return RtspError("protocol", f"{masked}: invalid data from the server")
    return RtspError("connection_lost", f"{masked}: {type(error).__name__}")


async def _close(connection: Any, rtp: Any, session: Any, timeout_s: float) -> None:
    if connection.running and session.session_id:
        # A polite TEARDOWN frees the server's session now rather than at its timeout; a dead
        # or slow server must not hold up the caller, hence the short bound and no errors.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.teardown(), timeout=min(timeout_s, 2.0))
    with contextlib.suppress(Exception):
        rtp.close()
    connection.close()
    for future in (connection.result, rtp.result):
        if future.done() and not future.cancelled():
            future.exception()  # mark retrieved: nobody else will look at it
