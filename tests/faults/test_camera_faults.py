"""Cameras failing under the whole pipeline (simulated cameras -> ingest -> balancer -> worker
processes -> PostgreSQL, tests/faults/harness.py), all at once, each its own way:

- cam-drop: gone for 30 s (its TCP endpoint closed, connections reset), then back;
- cam-hang: TCP still accepts but nothing passes (the open session goes silent, new ones are
  never answered) for 20 s;
- cam-frozen: shows one still picture for 15 s (its URL moved to GStreamer's RTSP server
  playing a frozen test pattern, then back).

Each camera's status must say what happened (unreachable / stalled / frozen), a closed
'camera_down' gap must span its outage, counting must resume after it, and the checker must
pass over the covered time: every confirmed batch applied once or a gap, counts equal to the
scenes' truth where the camera was watched."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import camera_events, cameras, coverage_gaps, crossing_events
from tests.conftest import Endpoints, Isolated
from tests.faults.f2_proxy import camera_proxy
from tests.faults.harness import CameraPlan, FaultStack
from tests.integration.gst_peer import GstRtspPeer
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DROP_S, HANG_S, FROZEN_S = 30.0, 20.0, 15.0
# Short health timers, so each fault is judged well inside its duration.
INGEST = {"STALL_S": "2", "FROZEN_S": "3", "RTSP_TIMEOUT_S": "3"}
CAMERAS = (CameraPlan("cam-drop", 31), CameraPlan("cam-hang", 32),
           CameraPlan("cam-frozen", 33))


async def set_url(engine: AsyncEngine, camera_id: str, url: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(cameras).where(cameras.c.id == camera_id).values(url=url))


async def statuses(engine: AsyncEngine, camera_id: str, since: float = 0.0) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(
            select(camera_events.c.status)
            .where(camera_events.c.camera_id == camera_id,
                   camera_events.c.at >= datetime.fromtimestamp(since, UTC))
            .order_by(camera_events.c.id))).scalars())


async def down_gaps(engine: AsyncEngine, camera_id: str) -> list[tuple[float, float | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(coverage_gaps).where(
            coverage_gaps.c.camera_id == camera_id, coverage_gaps.c.reason == "camera_down"))
        return [(r.started_at.timestamp(),
                 r.ended_at.timestamp() if r.ended_at is not None else None) for r in rows]


async def crossings_after(engine: AsyncEngine, camera_id: str, after: float) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(crossing_events).where(
            crossing_events.c.camera_id == camera_id,
            crossing_events.c.occurred_at > datetime.fromtimestamp(after, UTC)))).scalar_one())


async def back_and_counting(engine: AsyncEngine, camera_id: str, began: float,
                            back_at: float) -> None:
    """Live again, and a crossing counted after it came back."""
    async def last_status() -> str:
        seen = await statuses(engine, camera_id, began)
        return seen[-1] if seen else ""

    await eventually(last_status, lambda s: s == "live", timeout_s=40, interval_s=0.5)

    async def counted() -> int:
        return await crossings_after(engine, camera_id, back_at)

    await eventually(counted, lambda n: n > 0, timeout_s=40, interval_s=0.5)


async def test_a_camera_dropped_hung_or_frozen_is_reported_gapped_and_counted_again(
    isolated: Isolated, endpoints: Endpoints, tmp_path: Path
) -> None:
    frozen_peer = GstRtspPeer(frozen=True)
    await asyncio.to_thread(frozen_peer.start)
    try:
        async with FaultStack(isolated, endpoints.management_url, tmp_path, cameras=CAMERAS,
                              workers=("w1",), ingest_env=INGEST) as stack:
            engine = stack.engine
            async with engine.connect() as conn:
                direct = (await conn.execute(select(cameras.c.url).where(
                    cameras.c.id == "cam-frozen"))).scalar_one()
            sim = urlsplit(direct)
            assert sim.hostname is not None and sim.port is not None
            async with camera_proxy(sim.hostname, sim.port) as drop, \
                    camera_proxy(sim.hostname, sim.port) as hang:
                for cam, proxy in (("cam-drop", drop), ("cam-hang", hang)):
                    await set_url(engine, cam, f"rtsp://127.0.0.1:{proxy.port}/{cam}")
                await eventually(lambda: asyncio.sleep(0, (drop.connections, hang.connections)),
                                 lambda n: min(n) > 0, timeout_s=30)
                await asyncio.sleep(6)  # counting through the proxies

                began = time.time()
                await drop.down()
                hang.hang()
                await set_url(engine, "cam-frozen", frozen_peer.url())
                await asyncio.sleep(FROZEN_S)
                await set_url(engine, "cam-frozen", direct)
                await asyncio.sleep(HANG_S - FROZEN_S)
                hang.release()
                await asyncio.sleep(DROP_S - HANG_S)
                await drop.up()
                ended = {"cam-frozen": began + FROZEN_S, "cam-hang": began + HANG_S,
                         "cam-drop": began + DROP_S}

                for cam, at in ended.items():
                    await back_and_counting(engine, cam, began, at)
                # Steady traffic after the last return, so the checker compares each camera's
                # recovered stream with its truth, not only the edges of its outage.
                await asyncio.sleep(12)
                await stack.wait_consumers()
                verdict = await stack.finish()

            seen = {cam: await statuses(engine, cam, began) for cam in ended}
            gaps = {cam: await down_gaps(engine, cam) for cam in ended}
            stack.figures.update(statuses=seen)
            print(f"camera faults: statuses since the faults {seen}")
            relative = {c: [(round(s - began, 1), e and round(e - began, 1)) for s, e in g]
                        for c, g in gaps.items()}
            print(f"camera faults: camera_down gaps, s after the faults began: {relative}")
    finally:
        await asyncio.to_thread(frozen_peer.close)

    verdict.assert_ok()
    assert "unreachable" in seen["cam-drop"], seen
    assert "stalled" in seen["cam-hang"], seen
    assert "frozen" in seen["cam-frozen"], seen
    for cam, back_at in ended.items():
        # Closed gaps, end to end, from the last good frame before the fault to the first
        # after it: no stretch of the outage reported as covered time (a false zero).
        spans = sorted((s, e) for s, e in gaps[cam] if e is not None and s < back_at and e > began)
        merged: list[tuple[float, float]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1] + 0.5:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        assert any(start <= began + 1.0 and end >= back_at - 1.0 for start, end in merged), (
            cam, began, back_at, spans)
    stack.memory.assert_bounded()
