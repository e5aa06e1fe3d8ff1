"""Sources given a pinned address connect there and never resolve the URL's host, which still
names the camera in the request (RTSP request URI, HTTP Host header). Most URLs name
`localhost`, which resolves to loopback here, where a canary listens on the same port: any
connection that resolved the name would land on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from ingest.mjpeg_source import mjpeg_frames
from ingest.rtsp_source import rtsp_frames
from ingest.source import SourceError
from ingest.sources import camera_frames
from simulator.mounts import MountSpec
from tests.camera_host import camera_host
from tests.integration.gst_peer import GstRtspPeer
from tests.integration.recording_simulator import recording_simulator
from tests.integration.test_hostile_camera_urls import Canary, canary_on
from tests.support import take_frames

pytestmark = pytest.mark.timeout(60)


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, dtype=np.uint8))
    assert ok
    return buf.tobytes()


class MjpegCamera:
    """An MJPEG camera that records each request's line and Host header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            host = next((line.split(":", 1)[1].strip() for line in head[1:]
                         if line.lower().startswith("host:")), "")
            self.requests.append((head[0], host))
            if head[0].startswith("GET /redirect "):
                writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/stream\r\n"
                             b"Content-Length: 0\r\n\r\n" % self.port)
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; "
                         b"boundary=frame\r\nConnection: close\r\n\r\n")
            body = _jpeg()
            for _ in range(3):
                writer.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"--frame--\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def mjpeg_camera() -> AsyncIterator[tuple[MjpegCamera, Canary]]:
    camera = MjpegCamera()
    server = await asyncio.start_server(camera.handle, camera_host(), 0)
    camera.port = int(server.sockets[0].getsockname()[1])
    try:
        async with canary_on(camera.port) as canary:
            yield camera, canary
    finally:
        server.close()


async def test_mjpeg_goes_to_the_pinned_address_with_the_host_name_in_the_host_header(
) -> None:
    async with mjpeg_camera() as (camera, canary):
        url = f"http://localhost:{camera.port}/stream?x=1"
        frames, error = await take_frames(
            camera_frames(url, pinned_address=camera_host(), timeout_s=5), 3)
        assert len(frames) == 3, error
        assert camera.requests == [("GET /stream?x=1 HTTP/1.1", f"localhost:{camera.port}")]
        assert canary.connections == []


async def test_mjpeg_with_a_pinned_address_follows_no_redirect() -> None:
    async with mjpeg_camera() as (camera, canary):
        url = f"http://localhost:{camera.port}/redirect"
        with pytest.raises(SourceError) as failed:
            async for _ in mjpeg_frames(url, pinned_address=camera_host(), timeout_s=5):
                pass
        assert failed.value.reason == "protocol" and "not followed" in str(failed.value)
        assert len(camera.requests) == 1
        assert canary.connections == []


async def test_rtsp_goes_to_the_pinned_address_and_asks_for_the_url_as_registered() -> None:
    lines: list[str] = []

    class Requests(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    spec = MountSpec(name="a", seed=1, fps=10, width=160, height=100, loop=True)
    log = logging.getLogger("simulator.rtsp_server")
    handler = Requests(logging.DEBUG)
    async with recording_simulator([spec], camera_host()) as (_, port), canary_on(port) as canary:
        level = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        try:
            url = f"rtsp://localhost:{port}/a"
            frames, error = await take_frames(
                rtsp_frames(url, pinned_address=camera_host(), timeout_s=5), 3)
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
    assert len(frames) == 3, error
    assert any(line.startswith(f"DESCRIBE {url} from {camera_host()}:") for line in lines)
    assert canary.connections == []


async def test_rtsp_over_udp_sends_to_the_pinned_address_too() -> None:
    """GStreamer's server (UDP RTP, which our simulator lacks) on loopback, named by a host
    that resolves nowhere: the session and its RTP work through the pinned address alone."""
    with GstRtspPeer() as peer:
        url = peer.url().replace("127.0.0.1", "camera.invalid", 1)
        frames, error = await take_frames(
            rtsp_frames(url, pinned_address="127.0.0.1", transport="udp", timeout_s=10), 5)
    assert len(frames) == 5, error
