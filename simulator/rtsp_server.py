"""The simulator's RTSP server: many mounts, one process, RTP over TCP interleaved only.

UDP transport is deliberately absent (SETUP offering only UDP gets 461): interleaved TCP is what
ingest uses, and it keeps the simulator free of port allocation and NAT concerns.
Sessions live and die with their TCP connection; there is no session timeout beyond that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from simulator.encoder import KEYFRAME_INTERVAL_S
from simulator.mounts import SimulatorSettings
from simulator.rtp import H264Packetizer, rtcp_bye
from simulator.rtsp_messages import (
    MAX_HEADER_BYTES,
    BadRequest,
    Request,
    TcpTransport,
    choose_tcp_transport,
    content_length,
    format_response,
    parse_head,
)
from simulator.sdp import TRACK_CONTROL, h264_sdp
from simulator.sources import MountMedia, prepare_mount
from simulator.streaming import StreamThread

_log = logging.getLogger(__name__)

PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
SESSION_TIMEOUT_S = 60
# A reader this far behind loses whole access units (their sequence numbers stay consumed, so
# the client sees honest loss) instead of the server buffering without bound.
MAX_WRITE_BUFFER_BYTES = 4 * 1024 * 1024

Response = tuple[int, dict[str, str], bytes]


@dataclass(eq=False)
class _Session:
    id: str
    media: MountMedia
    channels: TcpTransport
    setup_url: str
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    initial_sequence: int = field(default_factory=lambda: secrets.randbits(16))
    initial_timestamp: int = field(default_factory=lambda: secrets.randbits(32))
    thread: StreamThread | None = None
    dropped_frames: int = 0


class _Connection:
    """One client TCP connection and the sessions set up on it."""

    def __init__(
        self,
        server: RtspServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self._sessions: dict[str, _Session] = {}
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def run(self) -> None:
        try:
            while True:
                await self._read_one()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except BadRequest as exc:
            _log.info("bad request from %s: %s", self.peer, exc)
            self._send(format_response(exc.status, ""))
        finally:
            await self.close()

    async def close(self) -> None:
        threads = [s.thread for s in self._sessions.values() if s.thread is not None]
        self._sessions.clear()
        for thread in threads:
            thread.stop()
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        for thread in threads:
            await thread.join()

    async def _read_one(self) -> None:
        first = await self._reader.readexactly(1)
        if first in b"\r\n":
            return
        if first == b"$":
            # Interleaved data from the client (RTCP receiver reports): read past it.
            _channel, high, low = await self._reader.readexactly(3)
            await self._reader.readexactly((high << 8) | low)
            return
        try:
            rest = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise BadRequest("request head too large") from exc
        head = first + rest
        if len(head) > MAX_HEADER_BYTES:
            raise BadRequest("request head too large")
        request = parse_head(head)
        size = content_length(request.headers)
        body = await self._reader.readexactly(size) if size else b""
        request = Request(request.method, request.url, request.headers, body)
        _log.debug("%s %s from %s", request.method, request.url, self.peer)
        self._handle(request)

    def _handle(self, request: Request) -> None:
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "GET_PARAMETER": self._get_parameter,
            "TEARDOWN": self._teardown,
        }.get(request.method)
        if handler is None:
            self._respond(request, (501, {"Public": PUBLIC_METHODS}, b""))
            return
        after: list[Callable[[], None]] = []
        try:
            response = handler(request, after)
        except Exception:
            # A bug in one request must not take the connection (and its session) down.
            _log.exception("%s %s from %s failed", request.method, request.url, self.peer)
            response, after = (500, {}, b""), []
        self._respond(request, response)
        # Work that must follow the response on the wire (PLAY's first RTP packet).
        for action in after:
            action()

    def _respond(self, request: Request, response: Response) -> None:
        status, headers, body = response
        if status >= 400:
            _log.info("%s %s from %s -> %d", request.method, request.url, self.peer, status)
        self._send(format_response(status, request.cseq, headers, body))

    def _send(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def _mount(self, request: Request) -> MountMedia | None:
        segments = request.path_segments
        return self._server.media.get(segments[0]) if segments else None

    def _session(self, request: Request) -> _Session | None:
        sid = request.session_id
        return self._sessions.get(sid) if sid else None

    # --- methods -------------------------------------------------------------------------

    def _options(self, request: Request, after: list[Callable[[], None]]) -> Response:
        return 200, {"Public": PUBLIC_METHODS}, b""

    def _describe(self, request: Request, after: list[Callable[[], None]]) -> Response:
        media = self._mount(request)
        if media is None:
            return 404, {}, b""
        sdp = h264_sdp(
            sps=media.sps,
            pps=media.pps,
            width=media.width,
            height=media.height,
            fps=media.fps,
            session_id=secrets.randbits(31),
            host=self._server.settings.host,
        )
        base = _without_userinfo(request.url).rstrip("/") + "/"
        headers = {"Content-Type": "application/sdp", "Content-Base": base}
        return 200, headers, sdp.encode("ascii")

    def _setup(self, request: Request, after: list[Callable[[], None]]) -> Response:
        media = self._mount(request)
        if media is None:
            return 404, {}, b""
        segments = request.path_segments
        if len(segments) > 1 and segments[1:] != [TRACK_CONTROL]:
            return 404, {}, b""
        channels = choose_tcp_transport(request.headers.get("transport"))
        if channels is None:
            return 461, {}, b""
        session = self._session(request)
        if request.session_id and session is None:
            return 454, {}, b""
        if session is not None and session.thread is not None:
            return 455, {}, b""
        if session is None:
            session = _Session(secrets.token_hex(8), media, channels, request.url)
            self._sessions[session.id] = session
        else:
            session.channels = channels
        transport = (
            f"RTP/AVP/TCP;unicast;interleaved={channels.rtp_channel}-{channels.rtcp_channel};"
            f"ssrc={session.ssrc:08X}"
        )
        return 200, {"Transport": transport, "Session": _session_header(session)}, b""

    def _play(self, request: Request, after: list[Callable[[], None]]) -> Response:
        session = self._session(request)
        if session is None:
            return 454, {}, b""
        headers = {
            "Session": _session_header(session),
            "Range": "npt=0.000-",
            "RTP-Info": (
                f"url={_without_userinfo(session.setup_url)};seq={session.initial_sequence};"
                f"rtptime={session.initial_timestamp}"
            ),
        }
        if session.thread is None:
            after.append(lambda: self._start(session))
        return 200, headers, b""

    def _get_parameter(self, request: Request, after: list[Callable[[], None]]) -> Response:
        if request.session_id and self._session(request) is None:
            return 454, {}, b""
        return 200, {}, b""

    def _teardown(self, request: Request, after: list[Callable[[], None]]) -> Response:
        session = self._session(request)
        if session is None:
            return 454, {}, b""
        del self._sessions[session.id]
        if session.thread is not None:
            session.thread.stop()
        _log.info("session %s (%s) torn down by %s", session.id, session.media.spec.name, self.peer)
        return 200, {}, b""

    # --- media ---------------------------------------------------------------------------

    def _start(self, session: _Session) -> None:
        packetizer = H264Packetizer(ssrc=session.ssrc, initial_sequence=session.initial_sequence)
        session.thread = StreamThread(
            media=session.media,
            packetizer=packetizer,
            initial_timestamp=session.initial_timestamp,
            loop=asyncio.get_running_loop(),
            deliver=lambda packets: self._deliver(session, packets),
            on_end=lambda error: self._ended(session, error),
            # Replayed clips all begin with a keyframe: without a random start, sessions that
            # play at once would send their (large) keyframes in lockstep, unlike real cameras.
            start_delay_s=(
                random.uniform(0, KEYFRAME_INTERVAL_S) if session.media.clip is not None else 0.0
            ),
        )
        session.thread.start()
        _log.info("session %s playing %s to %s", session.id, session.media.spec.name, self.peer)

    def _deliver(self, session: _Session, packets: list[bytes]) -> None:
        if session.id not in self._sessions or self._writer.is_closing():
            return
        if self._writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
            session.dropped_frames += 1
            if session.dropped_frames == 1 or session.dropped_frames % 100 == 0:
                _log.warning(
                    "client %s is too slow: %d frames of %s dropped",
                    self.peer,
                    session.dropped_frames,
                    session.media.spec.name,
                )
            return
        self._writer.write(_interleave(session.channels.rtp_channel, packets))

    def _ended(self, session: _Session, error: BaseException | None) -> None:
        if session.id not in self._sessions:
            return
        if error is None:
            _log.info(
                "session %s: %s played to the end; closing", session.id, session.media.spec.name
            )
            self._send(_interleave(session.channels.rtcp_channel, [rtcp_bye(session.ssrc)]))
        # A session whose media has ended has nothing more to say: closing the connection is
        # how an interleaved-TCP client learns it (it cannot miss it, unlike a lone BYE).
        self._writer.close()


def _interleave(channel: int, packets: list[bytes]) -> bytes:
    parts: list[bytes] = []
    for packet in packets:
        parts.append(bytes((0x24, channel, len(packet) >> 8, len(packet) & 0xFF)))
        parts.append(packet)
    return b"".join(parts)


def _session_header(session: _Session) -> str:
    return f"{session.id};timeout={SESSION_TIMEOUT_S}"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class RtspServer:
    def __init__(self, settings: SimulatorSettings, media: dict[str, MountMedia]) -> None:
        self.settings = settings
        self.media = media
        self._connections: dict[_Connection, asyncio.Task[None]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            await connection.run()
        finally:
            self._connections.pop(connection, None)

    async def close_all(self) -> None:
        # Closing the sockets ends each handler at its next read. Cancelling the handler tasks
        # instead makes Python 3.11's asyncio.streams log every one of them as an error.
        tasks = list(self._connections.values())
        await asyncio.gather(*(connection.close() for connection in list(self._connections)))
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            for task in stuck:
                task.cancel()


async def serve(settings: SimulatorSettings, ready: Callable[[int], None] | None = None) -> None:
    """Serve every mount until cancelled. `ready` gets the bound port (useful with port 0)."""
    prepared = await asyncio.gather(
        *(asyncio.to_thread(prepare_mount, spec) for spec in settings.mounts)
    )
    for media in prepared:
        if media.clip is not None:
            _log.info("mount %s: %d frames pre-encoded, %.1f Mbit/s, replayed in a loop",
                      media.spec.name, len(media.clip.frames), media.clip.bytes_per_s * 8e-6)
    server = RtspServer(settings, {m.spec.name: m for m in prepared})
    listener = await asyncio.start_server(server.handle, settings.host, settings.port)
    try:
        port = int(listener.sockets[0].getsockname()[1])
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        names = ",".join(m.spec.name for m in prepared)
        _log.info("simulator ready rtsp://%s:%d mounts=%s", host, port, names)
        if ready is not None:
            ready(port)
        await listener.serve_forever()
    finally:
        listener.close()
        await server.close_all()
