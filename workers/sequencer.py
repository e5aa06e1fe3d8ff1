"""Feeds each camera's batches to the handler in sequence order, through the reorder window.

One batch is handled at a time (the lock): a camera's batches must apply in order, and the
window's held batches are released from two places (arrivals and the expiry timer).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from contracts.messages import BatchHeaders, MessageError
from workers.reorder import ReorderWindow

# What the handler reports: the camera's progress after this batch, or None when unknown
# (failed, fenced, or not a batch at all).
Applied = tuple[str, int, int] | None
Handler = Callable[[AbstractIncomingMessage], Awaitable[Applied]]


def _order_key(message: AbstractIncomingMessage) -> tuple[str, int, int] | None:
    try:
        headers = BatchHeaders.from_amqp(message.headers)
    except MessageError:
        return None  # the handler dead-letters it
    return headers.camera_id, headers.stream_epoch, headers.seq


class Sequencer:
    def __init__(self, window: ReorderWindow[AbstractIncomingMessage], handle: Handler) -> None:
        self.window = window
        self._handle = handle
        self._lock = asyncio.Lock()

    async def submit(self, message: AbstractIncomingMessage) -> None:
        key = _order_key(message)
        if key is None:
            await self._run([message])
            return
        await self._run(self.window.offer(*key, message, time.monotonic()))

    async def expire_forever(self, interval_s: float = 0.1) -> None:
        """Release batches held past the window's wait; run as a task, cancel to stop."""
        while True:
            await asyncio.sleep(interval_s)
            expired = self.window.expired(time.monotonic())
            if expired:
                await self._run(expired)

    async def _run(self, messages: list[AbstractIncomingMessage]) -> None:
        async with self._lock:
            todo = deque(messages)
            while todo:
                applied = await self._handle(todo.popleft())
                if applied is not None:
                    camera_id, stream_epoch, seq = applied
                    self.window.applied(camera_id, stream_epoch, seq)
                    todo.extend(self.window.ready(camera_id))

