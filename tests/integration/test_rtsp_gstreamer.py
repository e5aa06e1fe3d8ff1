"""Our RTSP client against an independent peer: GStreamer's gst-rtsp-server.

The camera simulator shares our assumptions; GStreamer does not. These tests pin what the
ingest source does against it: decoding over TCP and UDP, Basic and Digest auth, the reason
each failure reports, and how a server that dies, freezes or comes back is seen.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from ingest.rtsp_client import RtspError, open_stream
from ingest.rtsp_source import rtsp_frames
from ingest.source import DecodedFrame, SourceStats
from tests.integration.gst_peer import GstRtspPeer, free_port
from tests.support import take_frames

pytestmark = pytest.mark.timeout(60)

USER = "operator"
# Characters that must be percent-encoded in a URL, so decoding is exercised too.
PASSWORD = "s3cr/t:p@ss wörd%"
FPS = 25

PeerFactory = Callable[..., GstRtspPeer]


@pytest.fixture
def make_peer() -> Iterator[PeerFactory]:
    """Start peers for one test; every one is killed afterwards, whatever happened."""
    peers: list[GstRtspPeer] = []

    def make(**options: Any) -> GstRtspPeer:
        peer = GstRtspPeer(**options)
        peers.append(peer)
        return peer.start()

    try:
        yield make
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[GstRtspPeer]:
    """A plain server (TCP and UDP, moving picture) for the tests that leave it alive."""
    with GstRtspPeer() as started:
        yield started


async def take(url: str, count: int, **kwargs: Any) -> list[DecodedFrame]:
    frames, error = await take_frames(rtsp_frames(url, **kwargs), count)
    if error is not None:
        raise error
    return frames


async def failure(url: str, **kwargs: Any) -> RtspError:
    with pytest.raises(RtspError) as caught:
        await take(url, 10**6, **kwargs)
    return caught.value


def assert_live_video(frames: list[DecodedFrame]) -> None:
    assert all(f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    pts = np.array([f.pts_s for f in frames])
    assert pts[0] == 0.0
    assert np.allclose(np.diff(pts), 1 / FPS, atol=2e-3), pts
    # The ball moves: a stream that repeats one picture is not what this server sends.
    assert any(not np.array_equal(a.image, b.image) for a, b in itertools.pairwise(frames))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_frames_decode(peer: GstRtspPeer, transport: Any) -> None:
    stats = SourceStats()
    frames = await take(peer.url(), 30, transport=transport, timeout_s=5, stats=stats)

    assert_live_video(frames)
    assert {f.stream_id for f in frames} == {0}
    assert stats.frames == 30 and stats.corrupt_access_units == 0
    depacketized = stats.depacketizer
    assert depacketized is not None
    # Every access unit decoded: nothing waited for an IDR or was thrown away incomplete.
    assert depacketized.dropped_access_units == depacketized.resyncs == 0
    assert depacketized.malformed_packets == 0
    if transport == "tcp":  # loopback UDP may drop under load; TCP may not
        assert depacketized.lost_packets == 0


async def test_udp_from_a_tcp_only_server_is_an_unsupported_transport(
    make_peer: PeerFactory,
) -> None:
    server = make_peer(udp_ok=False)

    error = await failure(server.url(), transport="udp", timeout_s=5)

    assert error.reason == "unsupported_transport", error
    assert len(await take(server.url(), 3, transport="tcp", timeout_s=5)) == 3


async def test_the_stream_describes_itself(peer: GstRtspPeer) -> None:
    payload_types: list[int] = []
    async with open_stream(peer.url(), timeout_s=5) as stream:
        async for packet in stream.packets():
            payload_types.append(packet.payload_type)
            if len(payload_types) == 10:
                break

    assert stream.media.codec == "H264"
    assert stream.media.payload_type == 96
    assert stream.media.clock_rate == 90_000
    # GStreamer's sprop-parameter-sets, as we parse them: one SPS (type 7), one PPS (type 8).
    assert [nal[0] & 0x1F for nal in stream.media.sprop_parameter_sets] == [7, 8]
    assert payload_types == [96] * 10


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_right_credentials_get_frames(make_peer: PeerFactory, auth: Any) -> None:
    server = make_peer(auth=auth, user=USER, password=PASSWORD)

    frames = await take(server.url(USER, PASSWORD), 5, timeout_s=5)

    assert len(frames) == 5 and frames[0].image.shape == (360, 640, 3)


@pytest.mark.parametrize("auth", ["basic", "digest"])
@pytest.mark.parametrize(
    ("user", "password"),
    [(USER, PASSWORD + "x"), ("intruder", PASSWORD), (None, None)],
    ids=["wrong-password", "wrong-user", "none"],
)
async def test_wrong_credentials_fail_as_auth_failed_and_stay_secret(
    make_peer: PeerFactory, auth: Any, user: str | None, password: str | None
) -> None:
    server = make_peer(auth=auth, user=USER, password=PASSWORD)
    started = time.monotonic()

    error = await failure(server.url(user, password), timeout_s=5)

    assert error.reason == "auth_failed", error
    assert error.status == 401
    assert time.monotonic() - started < 5, "a refused login must not wait for a timeout"
    text = f"{error} {error!r}"
    for secret in filter(None, {password, PASSWORD, quote(PASSWORD, safe="")}):
        assert secret not in text


async def test_one_server_serves_session_after_session(peer: GstRtspPeer) -> None:
    # Reconnect loops open many sessions on one camera, some at the same time (two ingest
    # nodes during a lease handover): each must start cleanly at an IDR.
    for _ in range(4):
        assert_live_video(await take(peer.url(), 5, timeout_s=5))
    together = await asyncio.gather(*(take(peer.url(), 5, timeout_s=5) for _ in range(2)))
    for frames in together:
        assert_live_video(frames)


async def test_wrong_path_is_not_found(peer: GstRtspPeer) -> None:
    error = await failure(peer.url(path="/nope"), timeout_s=5)

    assert error.reason == "not_found", error
    assert error.status == 404


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_server_killed_mid_stream_ends_the_session_quickly(
    make_peer: PeerFactory, transport: Any
) -> None:
    server = make_peer()
    frames = 0
    killed_at = 0.0
    with pytest.raises(RtspError) as caught:
        async for _ in rtsp_frames(server.url(), transport=transport, timeout_s=10):
            frames += 1
            if frames == 10:
                server.kill()
                killed_at = time.monotonic()

    # Well inside timeout_s: the closed RTSP connection says so, no silence has to be waited out.
    assert time.monotonic() - killed_at < 2
    assert caught.value.reason in ("connection_lost", "ended"), caught.value


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_frozen_server_process_is_a_timeout(make_peer: PeerFactory, transport: Any) -> None:
    server = make_peer()
    timeout_s = 2.0
    frames = 0
    paused_at = 0.0
    try:
        with pytest.raises(RtspError) as caught:
            async for _ in rtsp_frames(server.url(), transport=transport, timeout_s=timeout_s):
                frames += 1
                if frames == 10:
                    server.pause()
                    paused_at = time.monotonic()
        waited_s = time.monotonic() - paused_at
    finally:
        server.resume()

    assert caught.value.reason == "timeout", caught.value
    # aiortsp notices silence between timeout_s and timeout_s + 1 s after the last packet.
    # Over TCP that closes the connection; over UDP the RTSP connection is still open and we
    # send a TEARDOWN first, whose wait open_stream bounds by 2 s.
    teardown_s = 2.0 if transport == "udp" else 0.0
    assert timeout_s - 0.1 <= waited_s < timeout_s + 1.5 + teardown_s, waited_s


async def test_restarted_server_serves_a_new_session(make_peer: PeerFactory) -> None:
    server = make_peer()
    first = await take(server.url(), 5, timeout_s=5)
    port = server.port

    server.kill()
    gone = await failure(server.url(), timeout_s=5)
    await asyncio.to_thread(server.restart)
    again = await take(server.url(), 10, timeout_s=5)

    assert len(first) == 5 and server.port == port
    assert gone.reason == "refused", gone
    assert_live_video(again)


async def test_unreachable_at_first_then_up(make_peer: PeerFactory) -> None:
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"

    error = await failure(url, timeout_s=5)
    server = await asyncio.to_thread(make_peer, port=port)
    frames = await take(url, 10, timeout_s=5)

    assert error.reason == "refused", error
    assert server.url() == url
    assert_live_video(frames)


async def test_frozen_camera_repeats_one_picture_while_time_advances(
    make_peer: PeerFactory,
) -> None:
    server = make_peer(frozen=True)

    frames = await take(server.url(), 2 * FPS + 5, timeout_s=5)

    first = frames[0].image
    assert all(np.array_equal(f.image, first) for f in frames), "the picture changed"
    # A test card, not a blank screen: a watchdog cannot tell "frozen" from "uniform" here.
    assert first.reshape(-1, 3).std(axis=0).min() > 20
    pts = np.array([f.pts_s for f in frames])
    assert np.allclose(np.diff(pts), 1 / FPS, atol=2e-3)
    # Past an IDR (one a second): the decoder restarting does not change the picture either.
    assert pts[-1] > 2.0
    wall_s = frames[-1].received_at - frames[0].received_at
    assert wall_s > 0.8 * pts[-1], "a frozen camera is still live: frames come in real time"
