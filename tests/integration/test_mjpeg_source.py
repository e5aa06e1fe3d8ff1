"""The MJPEG source against a real HTTP camera written here on asyncio streams, over real TCP.

The camera serves real JPEGs at 25 fps and does, per query string, what cameras do wrong: it
hangs, closes, resets, lies, sends garbage, asks for Basic or Digest (RFC 7616, MD5, qop=auth).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
import socket
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from ingest.mjpeg_source import mjpeg_frames
from ingest.source import DecodedFrame, SourceError, SourceStats
from ingest.sources import camera_frames
from tests.support import take_frames

pytestmark = pytest.mark.timeout(60)

USER, PASSWORD = "admin", "s3cr:et@x"
QUOTED = "s3cr%3Aet%40x"  # the password as it stands in a URL
REALM = "camcount-test"
SIZE = (240, 320)
FPS = 25


def level(index: int) -> int:
    return 30 + 10 * (index % 20)


def jpeg(index: int) -> bytes:
    image = np.full((*SIZE, 3), level(index), dtype=np.uint8)
    cv2.rectangle(image, (10 + 5 * index, 10), (40 + 5 * index, 60), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def levels(frames: list[DecodedFrame]) -> list[int]:
    return [round(float(np.median(f.image[100:, 200:]))) for f in frames]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _digest_fields(header: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in header.removeprefix("Digest ").split(","):
        key, _, value = item.strip().partition("=")
        fields[key] = value.strip('"')
    return fields


class Camera:
    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self.authorizations: list[str] = []
        self.sent_bytes = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    def authorized(self, scheme: str, header: str) -> bool:
        if scheme == "basic":
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return header == f"Basic {token}"
        f = _digest_fields(header)
        if not header.startswith("Digest ") or f.get("nonce") != self.nonce:
            return False
        ha1 = _md5(f"{f['username']}:{REALM}:{PASSWORD}")
        ha2 = _md5(f"GET:{f['uri']}")
        expected = _md5(f"{ha1}:{self.nonce}:{f['nc']}:{f['cnonce']}:{f['qop']}:{ha2}")
        return f["username"] == USER and f["qop"] == "auth" and f["response"] == expected

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:  # keep-alive: the retry after a 401 may come on the same connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = urlsplit(lines[0].split(" ")[1])
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                self.authorizations.append(headers.get("authorization", ""))
                if not await self.route(target.path, parse_qs(target.query), headers, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.handlers.discard(task)

    async def route(self, path: str, query: dict[str, list[str]], headers: dict[str, str],
                    writer: asyncio.StreamWriter) -> bool:
        opt = {key: values[0] for key, values in query.items()}
        scheme = opt.get("auth")
        if scheme and not self.authorized(scheme, headers.get("authorization", "")):
            challenge = (f'Digest realm="{REALM}", qop="auth", nonce="{self.nonce}", '
                         f'opaque="{secrets.token_hex(8)}", algorithm=MD5'
                         if scheme == "digest" else f'Basic realm="{REALM}"')
            reply(writer, "401 Unauthorized", f"WWW-Authenticate: {challenge}\r\n")
            return True
        if path == "/missing":
            reply(writer, "404 Not Found")
        elif path == "/error":
            reply(writer, "500 Internal Server Error")
        elif path == "/snapshot":
            body = jpeg(0)
            reply(writer, "200 OK", "Content-Type: image/jpeg\r\n", body)
        elif path == "/silent":
            await asyncio.sleep(30)
        elif path == "/stream":
            await self.stream(writer, opt)
        return False

    async def stream(self, writer: asyncio.StreamWriter, opt: dict[str, str]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: no-cache\r\n"
                     b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
        if "huge" in opt:
            await self.flood(writer, announced=opt["huge"] == "announced")
            return
        corrupt = {int(i) for i in opt.get("corrupt", "").split(",") if i}
        for i in range(int(opt.get("frames", "10"))):
            body = jpeg(i)
            if i in corrupt:  # one garbage part with a JPEG end, one truncated JPEG
                body = b"\xff\xd8garbage\xff\xd9" if i % 2 else body[: len(body) // 2]
            head = "--frame\r\nContent-Type: image/jpeg\r\n"
            if opt.get("length", "1") == "1":
                head += f"Content-Length: {len(body)}\r\n"
            if "stamp" in opt:  # "restart": the camera's clock jumps back at the 4th part
                stamp = 1000 + (i % 3 if opt["stamp"] == "restart" else i) * 0.04
                head += f"X-Timestamp: {stamp:.6f}\r\n"
            writer.write(head.encode() + b"\r\n" + body + b"\r\n")
            await writer.drain()
            await asyncio.sleep(1 / FPS)
        after = opt.get("after", "close")
        if after == "hang":
            await asyncio.sleep(30)
        elif after == "boundary":
            writer.write(b"--frame--\r\n")
            await writer.drain()
        elif after == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def flood(self, writer: asyncio.StreamWriter, *, announced: bool) -> None:
        """One part that never ends: 64 MB of JPEG-less bytes unless the client gives up."""
        length = f"Content-Length: {2_000_000_000}\r\n" if announced else ""
        writer.write(f"--frame\r\nContent-Type: image/jpeg\r\n{length}\r\n".encode())
        chunk = b"\x00" * 65536
        while self.sent_bytes < 64 << 20:
            writer.write(chunk)
            await writer.drain()
            self.sent_bytes += len(chunk)


def reply(writer: asyncio.StreamWriter, status: str, headers: str = "", body: bytes = b"") -> None:
    writer.write(f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode()
                 + body)


@pytest.fixture
async def camera() -> AsyncIterator[tuple[Camera, str]]:
    cam = Camera()
    server = await asyncio.start_server(cam.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield cam, f"http://127.0.0.1:{port}"
    server.close()
    for task in list(cam.handlers):
        task.cancel()
    await asyncio.gather(*cam.handlers, return_exceptions=True)
    await server.wait_closed()


async def take(url: str, count: int | None = None, **kwargs: Any
               ) -> tuple[list[DecodedFrame], SourceError | None]:
    """Frames until `count`, or until the source fails: (frames, its error or None)."""
    return await take_frames(kwargs.pop("source", mjpeg_frames)(url, **kwargs), count)


@pytest.mark.parametrize("length", ["1", "0"])
async def test_frames_arrive_whole_in_order_and_in_real_time(
    camera: tuple[Camera, str], length: str
) -> None:
    stats = SourceStats()
    frames, error = await take(f"{camera[1]}/stream?frames=12&length={length}", stats=stats)

    assert error is not None and error.reason == "ended"
    assert levels(frames) == [level(i) for i in range(12)]
    assert all(f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8 for f in frames)
    assert {f.stream_id for f in frames} == {0}
    pts = [f.pts_s for f in frames]
    assert pts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(pts))
    assert 11 / FPS * 0.7 < pts[-1] < 11 / FPS * 2.5
    assert abs(frames[-1].received_at - time.time()) < 5
    assert stats.frames == 12 and stats.corrupt_access_units == 0


async def test_x_timestamp_gives_the_cameras_own_pts(camera: tuple[Camera, str]) -> None:
    frames, _ = await take(f"{camera[1]}/stream?frames=5&stamp=1")
    assert [f.pts_s for f in frames] == pytest.approx([i * 0.04 for i in range(5)], abs=1e-6)
    assert {f.stream_id for f in frames} == {0}


async def test_an_x_timestamp_going_back_starts_a_new_stream(camera: tuple[Camera, str]) -> None:
    frames, _ = await take(f"{camera[1]}/stream?frames=5&stamp=restart")
    assert [f.stream_id for f in frames] == [0, 0, 0, 1, 1]
    assert [f.pts_s for f in frames] == pytest.approx([0, 0.04, 0.08, 0, 0.04], abs=1e-6)


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_credentials_from_the_url_answer_the_challenge(
    camera: tuple[Camera, str], scheme: str
) -> None:
    cam, base = camera
    url = base.replace("//", f"//{USER}:{QUOTED}@") + f"/stream?frames=3&auth={scheme}"
    frames, error = await take(url)

    assert len(frames) == 3 and error is not None and error.reason == "ended"
    # Nothing sent before the challenge, then only the scheme asked for.
    assert cam.authorizations[0] == ""
    assert cam.authorizations[1].split()[0].lower() == scheme
    if scheme == "digest":
        encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert not any(PASSWORD in a or encoded in a for a in cam.authorizations)


@pytest.mark.parametrize("scheme", ["basic", "digest"])
@pytest.mark.parametrize("userinfo", [f"{USER}:wrong%40{QUOTED}@", ""])
async def test_refused_credentials_fail_without_showing_them(
    camera: tuple[Camera, str], scheme: str, userinfo: str
) -> None:
    url = camera[1].replace("//", f"//{userinfo}") + f"/stream?auth={scheme}"
    frames, error = await take(url)

    assert frames == [] and error is not None
    assert error.reason == "auth_failed" and error.status == 401
    for text in (str(error), repr(error), *map(str, error.args)):
        assert PASSWORD not in text and QUOTED not in text and "wrong" not in text


@pytest.mark.parametrize(
    ("path", "reason", "status"),
    [
        ("/missing", "not_found", 404),
        ("/error", "protocol", 500),
        ("/snapshot", "unsupported_codec", None),
        ("/stream?frames=3&after=boundary", "ended", None),
        ("/stream?frames=3&after=reset", "connection_lost", None),
    ],
)
async def test_server_answers_map_to_reasons(
    camera: tuple[Camera, str], path: str, reason: str, status: int | None
) -> None:
    _, error = await take(camera[1] + path)
    assert error is not None and (error.reason, error.status) == (reason, status)


async def test_a_refused_port_is_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, error = await take(f"http://127.0.0.1:{port}/stream")
    assert error is not None and error.reason == "refused"


async def test_an_unknown_host_is_unreachable() -> None:
    _, error = await take("http://camera.invalid/stream", timeout_s=5)  # .invalid never resolves
    assert error is not None and error.reason == "unreachable"


@pytest.mark.parametrize(("path", "frames_before"), [("/silent", 0),
                                                     ("/stream?frames=3&after=hang", 3)])
async def test_silence_longer_than_the_timeout_is_a_timeout(
    camera: tuple[Camera, str], path: str, frames_before: int
) -> None:
    started = time.monotonic()
    frames, error = await take(camera[1] + path, timeout_s=0.5)
    assert error is not None and error.reason == "timeout"
    assert len(frames) == frames_before
    assert time.monotonic() - started < 0.5 + frames_before / FPS + 2


async def test_corrupt_parts_are_skipped_and_counted(camera: tuple[Camera, str]) -> None:
    stats = SourceStats()
    frames, error = await take(f"{camera[1]}/stream?frames=8&corrupt=2,5", stats=stats)
    assert error is not None and error.reason == "ended"
    assert levels(frames) == [level(i) for i in (0, 1, 3, 4, 6, 7)]
    assert stats.frames == 6 and stats.corrupt_access_units == 2


@pytest.mark.parametrize("huge", ["announced", "endless"])
async def test_an_oversized_part_is_a_protocol_error_in_bounded_memory(
    camera: tuple[Camera, str], huge: str
) -> None:
    cap = 1 << 20
    tracemalloc.start()
    try:
        _, error = await take(f"{camera[1]}/stream?huge={huge}", max_part_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error is not None and error.reason == "protocol"
    assert "bytes" in str(error)
    # Unbounded buffering would have held the whole 64 MB flood (and then said "ended").
    assert peak < 8 * cap
    assert camera[0].sent_bytes < 48 << 20


async def test_the_dispatcher_reaches_mjpeg_for_http(camera: tuple[Camera, str]) -> None:
    stats = SourceStats()
    frames, error = await take(f"{camera[1]}/stream?frames=4", source=camera_frames,
                               stats=stats)
    assert levels(frames) == [level(i) for i in range(4)]
    assert error is not None and error.reason == "ended" and stats.frames == 4
