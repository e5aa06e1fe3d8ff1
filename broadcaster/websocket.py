"""The WebSocket endpoint: subscribe by camera (or all), optional resume from an event_seq.

Client -> server: {"op": "subscribe", "cameras": ["cam-1"] | "*", "resume_from": 123}
Server -> client: {"type": "hello"}, then {"type": "counts", "event_seq": ..., ...}
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from broadcaster import metrics
from broadcaster.hub import ALL, Client, Hub
from broadcaster.relay import replay

log = logging.getLogger("camcount.broadcaster")

REPLAY_LIMIT = 10_000


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    op: str = Field(pattern="^subscribe$")
    cameras: list[str] | str = ALL
    resume_from: int | None = Field(default=None, ge=0)

    def camera_set(self) -> set[str]:
        return {ALL} if self.cameras == ALL else set(self.cameras)


class Connection:
    def __init__(self, ws: ServerConnection, hub: Hub, engine: AsyncEngine, queue_size: int):
        self.ws, self.hub, self.engine = ws, hub, engine
        self.client = Client(queue_size)

    async def serve(self) -> None:
        self.hub.join(self.client)
        metrics.CLIENTS.inc()
        try:
            await self.ws.send(json.dumps({"type": "hello"}))
            tasks = [
                asyncio.create_task(self._send()),
                asyncio.create_task(self._receive()),
                asyncio.create_task(self.client.dropped.wait()),
            ]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self.client.dropped.is_set():
                await self.ws.close(1013, "too slow: resume from your last event_seq")
        except ConnectionClosed:
            pass
        finally:
            self.hub.leave(self.client)
            metrics.CLIENTS.dec()

    async def _send(self) -> None:
        while True:
            event = await self.client.queue.get()
            await self.ws.send(json.dumps(event))

    async def _receive(self) -> None:
        async for raw in self.ws:
            try:
                sub = Subscribe.model_validate_json(raw)
            except ValidationError as exc:
                await self._error(exc.errors()[0]["msg"])
                continue
            cameras = sub.camera_set()
            self.client.cameras = cameras
            if sub.resume_from is not None:
                # Live events may also be queued meanwhile; clients dedupe by event_seq.
                filt = None if ALL in cameras else cameras
                for update in await replay(self.engine, sub.resume_from, filt, REPLAY_LIMIT):
                    await self.ws.send(json.dumps(
                        {"type": "counts", **update.model_dump(mode="json")}
                    ))

    async def _error(self, message: str) -> None:
        payload: dict[str, Any] = {"type": "error", "message": message}
        await self.ws.send(json.dumps(payload))
