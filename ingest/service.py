"""Ingest wiring: keep one pipeline task per enabled camera, following changes in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from contracts.secrets import mask_url
from infra import amqp, db, ops
from ingest import metrics
from ingest.cameras import CameraSpec, enabled_cameras
from ingest.pipeline import CameraPipeline
from ingest.settings import IngestSettings

log = logging.getLogger("camcount.ingest")


class Ingest:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.engine = db.create_engine(settings.database_url)
        self.pipelines: dict[str, tuple[CameraSpec, CameraPipeline, asyncio.Task[None]]] = {}
        self.polling = False

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.polling,
            "cameras": {cid: p.status for cid, (_, p, _) in self.pipelines.items()},
        }

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, self.settings.node_id)
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await amqp.declare_frames_topology(channel)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve())
                log.info("ingest ready node=%s", self.settings.node_id)
                while not stop.is_set():
                    wanted = await enabled_cameras(self.engine)
                    self._reconcile(wanted, tg, channel.default_exchange)
                    self.polling = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.camera_poll_s)
                for _, _, task in self.pipelines.values():
                    task.cancel()
                server.should_exit = True
        finally:
            await connection.close()
            await self.engine.dispose()

    def _reconcile(self, wanted: dict[str, CameraSpec], tg: asyncio.TaskGroup,
                   exchange: Any) -> None:
        for camera_id, (spec, _, task) in list(self.pipelines.items()):
            if wanted.get(camera_id) != spec or task.done():
                task.cancel()
                del self.pipelines[camera_id]
                log.info("camera %s: stopped (removed, disabled or changed)", camera_id)
        for camera_id, spec in wanted.items():
            if camera_id not in self.pipelines:
                pipeline = CameraPipeline(spec, self.settings, self.engine, exchange)
                task = tg.create_task(pipeline.run(), name=f"camera-{camera_id}")
                self.pipelines[camera_id] = (spec, pipeline, task)
                log.info("camera %s: started %s", camera_id, mask_url(spec.url))
        metrics.CAMERAS.set(len(self.pipelines))
