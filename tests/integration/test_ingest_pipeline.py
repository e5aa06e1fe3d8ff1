"""Ingest against the simulator and a real RabbitMQ: a clip played once arrives whole — every
frame in a confirmed batch, in order, the last partial batch included."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import text

from contracts.batch import decode_batch
from contracts.messages import BatchHeaders
from infra import amqp
from infra.db import create_engine
from ingest.cameras import enabled_cameras
from ingest.pipeline import CameraPipeline
from ingest.settings import IngestSettings
from simulator.mounts import MountSpec, SimulatorSettings
from simulator.rtsp_server import serve
from tests.conftest import Isolated
from tests.support import eventually, seed_camera

pytestmark = pytest.mark.slow

CAMPUS_FRAMES = 71


async def test_a_clip_played_once_arrives_whole_in_order(
    isolated: Isolated, shared_data: Path
) -> None:
    clip = shared_data / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    simulator = asyncio.create_task(serve(
        SimulatorSettings(port=0, mounts=(MountSpec(name="campus", kind="file", path=clip),)),
        ready=port.set_result,
    ))
    engine = create_engine(isolated.database_url)
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    pipeline_task: asyncio.Task[None] | None = None
    try:
        url = f"rtsp://127.0.0.1:{await port}/campus"
        await seed_camera(engine, "campus", url=url)
        async with engine.begin() as conn:
            # 25 fps (every frame), batches of 4: 71 frames end with a partial batch of 3.
            await conn.execute(text(
                "UPDATE cameras SET target_fps = 25, batch_frames = 4, batch_ms = 5000"))
        spec = (await enabled_cameras(engine))["campus"]
        channel = await connection.channel()
        ingress = await amqp.declare_frames_topology(channel)
        settings = IngestSettings(rabbitmq_url=isolated.rabbitmq_url,
                                  database_url=isolated.database_url,
                                  reconnect_initial_s=3600, reconnect_max_s=3600)
        pipeline = CameraPipeline(spec, settings, engine, channel.default_exchange)
        pipeline_task = asyncio.create_task(pipeline.run())

        seqs: list[int] = []
        frames = 0

        async def collect() -> int:
            nonlocal frames
            while (message := await ingress.get(fail=False)) is not None:
                headers = BatchHeaders.from_amqp(message.headers)
                seqs.append(headers.seq)
                frames += len(decode_batch(message.body))
                await message.ack()
            return frames

        await eventually(collect, lambda n: n >= CAMPUS_FRAMES, timeout_s=60)
        await asyncio.sleep(1.0)
        assert await collect() == CAMPUS_FRAMES
        assert seqs == list(range(len(seqs))) and len(seqs) == 18  # 17 full + 1 partial
    finally:
        for task in (pipeline_task, simulator):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await connection.close()
        await engine.dispose()
