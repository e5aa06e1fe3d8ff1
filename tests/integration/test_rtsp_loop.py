"""The camera simulator and the ingest RTSP source against each other, over real TCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.rtsp_client import RtspError
from ingest.rtsp_source import rtsp_frames
from ingest.source import DecodedFrame, SourceStats
from simulator.mounts import SimulatorSettings, parse_mount
from simulator.rtsp_server import serve
from tests.support import take_frames

pytestmark = pytest.mark.timeout(60)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TUD_CAMPUS = SHARED_DATA / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
CAM = "cam1:synthetic:seed=7,crossings=2,fps=25,warmup_s=0.5"


@pytest.fixture(scope="module")
async def simulator() -> AsyncIterator[str]:
    mounts = [parse_mount(CAM)]
    if TUD_CAMPUS.is_file():
        mounts.append(parse_mount(f"clip:file:path={TUD_CAMPUS}"))
    settings = SimulatorSettings(port=0, mounts=tuple(mounts))
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, ready=ready.set_result))
    port = await asyncio.wait_for(ready, 30)
    yield f"rtsp://127.0.0.1:{port}"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def take(url: str, count: int, **kwargs: Any) -> list[DecodedFrame]:
    frames, error = await take_frames(rtsp_frames(url, **kwargs), count)
    if error is not None:
        raise error
    return frames


async def test_synthetic_frames_arrive_in_real_time(simulator: str) -> None:
    stats = SourceStats()
    frames = await take(f"{simulator}/cam1", 50, stats=stats)

    assert all(f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    pts = [f.pts_s for f in frames]
    assert pts[0] == 0.0
    assert np.allclose(np.diff(pts), 1 / 25, atol=1e-4)
    wall_s = frames[-1].received_at - frames[0].received_at
    assert 49 / 25 * 0.8 < wall_s < 49 / 25 * 1.25
    assert {f.stream_id for f in frames} == {0}
    assert stats.frames == 50 and stats.corrupt_access_units == 0
    assert stats.depacketizer is not None and stats.depacketizer.lost_packets == 0


async def test_decoded_pictures_match_the_scene_and_its_truth(simulator: str) -> None:
    scene = parse_mount(CAM).scene()
    crossing = scene.truth()[0]
    frames = await take(f"{simulator}/cam1", round((crossing.t_s + 0.3) * 25))

    for frame in frames[::10]:
        error = np.abs(frame.image.astype(np.int16) - scene.render(frame.pts_s)).mean()
        assert error < 3.0, f"decoded picture at {frame.pts_s:.2f} s differs by {error:.1f}"
    nearest = min(frames, key=lambda f: abs(f.pts_s - crossing.t_s))
    moved = np.abs(nearest.image.astype(np.int16) - scene.render(0.0)).max(axis=2) > 60
    columns = np.flatnonzero(moved.sum(axis=0) > 20)
    centre = (columns[0] + columns[-1] + 1) / 2
    # Within a frame's travel (<= 220 px/s / 25 fps) plus coding blur of the line at W/2.
    assert abs(centre - scene.width / 2) <= 10


async def test_each_session_starts_its_own_stream(simulator: str) -> None:
    first, second = await asyncio.gather(
        take(f"{simulator}/cam1", 10), take(f"{simulator}/cam1", 10)
    )
    assert first[0].pts_s == second[0].pts_s == 0.0
    assert np.abs(first[5].image.astype(np.int16) - second[5].image).mean() < 1.0


async def test_unknown_mount_is_not_found(simulator: str) -> None:
    with pytest.raises(RtspError) as caught:
        await take(f"{simulator}/nope", 1)
    assert caught.value.reason == "not_found" and caught.value.status == 404


async def test_udp_is_an_unsupported_transport(simulator: str) -> None:
    with pytest.raises(RtspError) as caught:
        await take(f"{simulator}/cam1", 1, transport="udp")
    assert caught.value.reason == "unsupported_transport" and caught.value.status == 461


async def test_closed_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RtspError) as caught:
        await take(f"rtsp://127.0.0.1:{port}/cam1", 1, timeout_s=3.0)
    assert caught.value.reason == "refused"


async def test_auth_failure_is_typed_and_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def always_401(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                cseq = next(line for line in head.split("\r\n") if line.lower().startswith("cseq"))
                writer.write(
                    f"RTSP/1.0 401 Unauthorized\r\n{cseq}\r\n"
                    'WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode()
                )
        writer.close()

    server = await asyncio.start_server(always_401, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ingest.rtsp_client.aiortsp")  # it logs requests
    try:
        with pytest.raises(RtspError) as caught:
            await take(f"rtsp://admin:s3cr3t@127.0.0.1:{port}/cam1", 1, timeout_s=3.0)
    finally:
        server.close()
    assert caught.value.reason == "auth_failed" and caught.value.status == 401
    assert "s3cr3t" not in str(caught.value) and "admin" not in str(caught.value)
    assert "s3cr3t" not in caplog.text
    assert "YWRtaW46czNjcjN0" not in caplog.text  # base64 of admin:s3cr3t (Basic auth)


@pytest.mark.skipif(not TUD_CAMPUS.is_file(), reason=f"test footage absent: {TUD_CAMPUS}")
async def test_file_mount_streams_once_then_ends(simulator: str) -> None:
    frames: list[DecodedFrame] = []
    with pytest.raises(RtspError) as caught:
        async with contextlib.aclosing(rtsp_frames(f"{simulator}/clip")) as stream:
            async for frame in stream:
                frames.append(frame)
    assert caught.value.reason == "ended"
    assert len(frames) == 71  # every frame of TUD-Campus, none lost
    assert frames[0].image.shape == (480, 640, 3)
    assert np.allclose(np.diff([f.pts_s for f in frames]), 1 / 25, atol=1e-4)
