"""A camera pipeline against an independent RTSP server (GStreamer's gst-rtsp-server): each
misbehaviour ends in the right status, reconnect behaviour and recorded gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.gst_peer import GstRtspPeer
from tests.integration.pipeline_harness import Running, StartPipeline

pytestmark = pytest.mark.timeout(120)

USER, PASSWORD = "operator", "s3cr/t:p@ss"


@pytest.fixture
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[GstRtspPeer]:
    options = getattr(request, "param", {})
    server = GstRtspPeer(**options)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


async def live_then_batches(running: Running) -> None:
    health = running.pipeline.health
    await running.until("live", lambda: health.status == "live")
    await running.until("batches", lambda: running.pipeline.counters["sampled"] >= 6)


@pytest.mark.parametrize("peer", [{"auth": "basic", "user": USER, "password": PASSWORD},
                                  {"auth": "digest", "user": USER, "password": PASSWORD}],
                         indirect=True, ids=["basic", "digest"])
async def test_basic_and_digest_auth_go_live(peer: GstRtspPeer,
                                             camera_pipeline: StartPipeline) -> None:
    async with camera_pipeline(peer.url(USER, PASSWORD)) as running:
        await live_then_batches(running)
        await running.until("published", lambda: running.pipeline.outbox.in_flight == 0)
        assert len(await running.batches()) >= 1


@pytest.mark.parametrize("peer", [{"auth": "digest", "user": USER, "password": PASSWORD}],
                         indirect=True)
async def test_wrong_credentials_are_auth_failed_and_stay_so(
    peer: GstRtspPeer, camera_pipeline: StartPipeline,
) -> None:
    async with camera_pipeline(peer.url(USER, "wrong-" + PASSWORD)) as running:
        health = running.pipeline.health
        await running.until("auth_failed", lambda: health.status == "auth_failed")
        since = health.since
        await asyncio.sleep(1.5)  # it retries with back-off; the verdict and its since hold
        assert (health.status, health.since) == ("auth_failed", since)
        assert "wrong-" not in health.reason and "s3cr" not in health.reason
        assert await running.status_history() == ["connecting", "auth_failed"]
        assert await running.gaps() == []


async def test_wrong_path_is_unreachable_with_its_cause(
    peer: GstRtspPeer, camera_pipeline: StartPipeline,
) -> None:
    async with camera_pipeline(peer.url(path="/nope")) as running:
        health = running.pipeline.health
        await running.until("unreachable", lambda: health.status == "unreachable")
        assert health.reason.startswith("not_found")


async def test_server_killed_and_restarted_reconnects_and_closes_the_gap(
    peer: GstRtspPeer, camera_pipeline: StartPipeline,
) -> None:
    async with camera_pipeline(peer.url()) as running:
        health = running.pipeline.health
        await live_then_batches(running)
        await asyncio.to_thread(peer.kill)
        await running.until("unreachable", lambda: health.status == "unreachable")
        assert "refused" in health.reason
        assert [(r, closed) for r, closed, _ in await running.gaps()] == [("camera_down", False)]
        await asyncio.to_thread(peer.restart)
        await running.until("live again", lambda: health.status == "live")
        history = await running.status_history()
        assert history == ["connecting", "live", "connecting", "unreachable", "live"]
        assert [(r, closed) for r, closed, _ in await running.gaps()] == [("camera_down", True)]


async def test_a_paused_server_is_stalled_then_live_when_it_resumes(
    peer: GstRtspPeer, camera_pipeline: StartPipeline,
) -> None:
    async with camera_pipeline(peer.url(), stall_s=1.0) as running:
        health = running.pipeline.health
        await live_then_batches(running)
        await asyncio.to_thread(peer.pause)
        try:
            await running.until("stalled", lambda: health.status == "stalled", timeout_s=5)
            assert health.reason == "no frame for 1 s"
            await asyncio.sleep(4.0)  # past the RTP timeout: reconnect attempts, still stalled
            assert health.status in ("stalled", "unreachable")
        finally:
            await asyncio.to_thread(peer.resume)
        await running.until("live again", lambda: health.status == "live", timeout_s=30)
        history = await running.status_history()
        assert history[:3] == ["connecting", "live", "stalled"] and history[-1] == "live"
        gaps = await running.gaps()
        assert [(r, closed) for r, closed, _ in gaps] == [("camera_down", True)]
        assert gaps[0][2].startswith("stalled")


@pytest.mark.parametrize("peer", [{"frozen": True}], indirect=True)
async def test_a_frozen_stream_is_frozen_with_an_open_gap(
    peer: GstRtspPeer, camera_pipeline: StartPipeline,
) -> None:
    async with camera_pipeline(peer.url(), frozen_s=1.5) as running:
        health = running.pipeline.health
        await running.until("frozen", lambda: health.status == "frozen")
        assert "picture has not changed" in health.reason
        await asyncio.sleep(2.0)  # it reconnects meanwhile; the same still picture: no flapping
        assert health.status == "frozen"
        assert await running.status_history() == ["connecting", "live", "frozen"]
        assert [(r, closed) for r, closed, _ in await running.gaps()] == [("camera_down", False)]
