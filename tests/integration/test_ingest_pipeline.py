"""Ingest against the simulator and a real RabbitMQ: a clip played once arrives whole — every
frame in a confirmed batch, in order, the last partial batch included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contracts.batch import decode_batch
from infra.runner import cancel_and_wait
from simulator.mounts import MountSpec, SimulatorSettings
from simulator.rtsp_server import serve
from tests.integration.pipeline_harness import StartPipeline
from tests.support import eventually

pytestmark = pytest.mark.slow

CAMPUS_FRAMES = 71


async def test_a_clip_played_once_arrives_whole_in_order(
    camera_pipeline: StartPipeline, shared_data: Path
) -> None:
    clip = shared_data / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    simulator = asyncio.create_task(serve(
        SimulatorSettings(port=0, mounts=(MountSpec(name="campus", kind="file", path=clip),)),
        ready=port.set_result,
    ))
    try:
        url = f"rtsp://127.0.0.1:{await port}/campus"
        # 25 fps (every frame), batches of 4: 71 frames end with a partial batch of 3. A file
        # mount plays once: no reconnect (it would replay the clip).
        async with camera_pipeline(
            url, camera={"target_fps": 25, "batch_frames": 4, "batch_ms": 5000},
            reconnect_initial_s=3600, reconnect_max_s=3600,
        ) as running:
            seqs: list[int] = []
            frames = 0

            async def collect() -> int:
                nonlocal frames
                for headers, body in await running.messages():
                    seqs.append(headers.seq)
                    frames += len(decode_batch(body))
                return frames

            await eventually(collect, lambda n: n >= CAMPUS_FRAMES, timeout_s=60)
            await asyncio.sleep(1.0)
            assert await collect() == CAMPUS_FRAMES
            assert seqs == list(range(len(seqs))) and len(seqs) == 18  # 17 full + 1 partial
    finally:
        await cancel_and_wait(simulator)
