"""A camera pipeline against the project's simulator: statuses, reconnects and recorded gaps
for a camera that is unreachable at start and appears later, and a server that goes away and
comes back, and a broker memory alarm. Real RTSP, PostgreSQL and RabbitMQ; the pipeline runs
in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.pipeline_harness import StartPipeline, free_port, simulator
from tests.support import broker_memory_alarm

pytestmark = pytest.mark.timeout(90)


async def test_unreachable_at_start_then_the_camera_appears(camera_pipeline: StartPipeline) -> None:
    port = free_port()
    async with camera_pipeline(f"rtsp://127.0.0.1:{port}/cam1") as running:
        health = running.pipeline.health
        await running.until("unreachable", lambda: health.status == "unreachable")
        assert "refused" in health.reason
        since = health.since
        await asyncio.sleep(1.0)  # retries keep the status and its since
        assert (health.status, health.since) == ("unreachable", since)
        async with simulator(port, "cam1:synthetic:seed=3,crossings=4,warmup_s=0"):
            await running.until("live", lambda: health.status == "live")
            await running.until("batches", lambda: running.pipeline.outbox.in_flight == 0
                                and running.pipeline.counters["sampled"] >= 10)
            assert await running.status_history() == ["connecting", "unreachable", "live"]
            assert await running.gaps() == []  # it never delivered before: nothing was lost
        batches = await running.batches()
        assert batches and [b.seq for b in batches] == list(range(len(batches)))


async def test_server_gone_and_back_reconnects_and_records_the_outage(
    camera_pipeline: StartPipeline,
) -> None:
    port = free_port()
    mount = "cam1:synthetic:seed=4,crossings=6,warmup_s=0"
    first_server = simulator(port, mount)
    await first_server.__aenter__()  # up before the camera's first attempt
    async with camera_pipeline(f"rtsp://127.0.0.1:{port}/cam1") as running:
        health = running.pipeline.health
        try:
            await running.until("live", lambda: health.status == "live")
            await asyncio.sleep(1.5)
        finally:
            await first_server.__aexit__(None, None, None)
        await running.until("down", lambda: health.status in ("connecting", "unreachable"))
        first_epoch = running.pipeline.epoch
        await asyncio.sleep(1.0)
        async with simulator(port, mount):
            await running.until("live again", lambda: health.status == "live")
            await asyncio.sleep(1.5)
            assert running.pipeline.epoch > first_epoch
            history = await running.status_history()
            assert history[:2] == ["connecting", "live"] and history[-1] == "live"
            assert "unreachable" in history or history.count("connecting") >= 2
            gaps = await running.gaps()
            assert [(reason, closed) for reason, closed, _ in gaps] == [("camera_down", True)]
            epochs = {b.stream_epoch for b in await running.batches()}
            assert len(epochs) >= 2, "batches from both sessions, each with its own epoch"


async def test_broker_memory_alarm_drops_oldest_records_the_gap_and_resumes(
    camera_pipeline: StartPipeline,
) -> None:
    port = free_port()
    rss_before = rss_mb()
    async with simulator(port, "cam1:synthetic:seed=6,crossings=6,warmup_s=0"), \
            camera_pipeline(f"rtsp://127.0.0.1:{port}/cam1", outbox_batches=3) as running:
        pipeline, health = running.pipeline, running.pipeline.health
        await running.until("live", lambda: health.status == "live")
        await asyncio.sleep(1.5)
        with broker_memory_alarm():
            await running.until("backpressure", lambda: health.status == "backpressure")
            assert "blocks publishers" in health.reason or "confirms" in health.reason
            peak = 0
            for _ in range(40):  # 4 s of alarm: the outbox stays within its bounds
                peak = max(peak, pipeline.outbox.queued)
                assert pipeline.outbox.queued <= 3
                assert pipeline.outbox.in_flight <= pipeline.settings.publish_window
                await asyncio.sleep(0.1)
            assert pipeline.outbox.dropped_frames > 0 and peak == 3
        await running.until("live again", lambda: health.status == "live")
        sent_after = pipeline.counters["sampled"]
        await running.until("publishing again", lambda: pipeline.counters["sampled"]
                            >= sent_after + 10 and pipeline.outbox.in_flight == 0)
        history = await running.status_history()
        assert history == ["connecting", "live", "backpressure", "live"]
        gaps = await running.gaps()
        assert [(reason, closed) for reason, closed, _ in gaps] == [("dropped", True)]
        batches = await running.batches()
        seqs = [b.seq for b in batches if b.stream_epoch == pipeline.epoch]
        assert seqs == list(range(len(seqs))), "dropping leaves no hole in the sequence"
    # Nothing piled up while the broker refused: the whole test process grew by little.
    assert rss_mb() - rss_before < 150


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_camera_that_accepts_but_never_answers_stays_unreachable(
    camera_pipeline: StartPipeline,
) -> None:
    """Connect timeouts again and again: one verdict, not a flip to `connecting` per retry."""
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # hold the connection open, say nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with camera_pipeline(f"rtsp://127.0.0.1:{port}/cam", rtsp_timeout_s=0.5) as running:
            health = running.pipeline.health
            await running.until("three attempts", lambda: connections >= 3)
            assert health.status == "unreachable" and health.reason.startswith("timeout")
            assert await running.status_history() == ["connecting", "unreachable"]
    finally:
        server.close()
