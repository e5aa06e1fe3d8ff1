"""Feeds each camera's batches to the handler in sequence order, through the reorder window.

One batch is handled at a time (the lock): a camera's batches must apply in order, and the
window's held batches are released from two places (arrivals and the expiry timer).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage

from contracts.messages import BatchHeaders, MessageError
from workers.reorder import ReorderWindow

# What the handler reports: the camera's progress after this batch, or None when unknown
# (failed, fenced, or not a batch at all).
Applied = tuple[str, int, int] | None


@dataclass(frozen=True)
class Skipped:
    """A batch settled without being applied (dead-lettered, stale): no later delivery will
    apply it, so the camera's batches held behind it need not wait out the window. Without
    this, held batches of a few such cameras fill the prefetch, nothing else is delivered, and
    the whole worker stalls for the window's wait."""

    camera_id: str
    stream_epoch: int
    seq: int


def skipped(message: AbstractIncomingMessage) -> Skipped | None:
    """The Skipped batch a message names; None when its headers name none."""
    key = _order_key(message)
    return None if key is None else Skipped(*key)


Handler = Callable[[AbstractIncomingMessage], Awaitable[Applied | Skipped]]


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
                outcome = await self._handle(todo.popleft())
                if isinstance(outcome, Skipped):
                    self.window.skipped(outcome.camera_id, outcome.stream_epoch, outcome.seq)
                    todo.extend(self.window.ready(outcome.camera_id))
                elif outcome is not None:
                    camera_id, stream_epoch, seq = outcome
                    self.window.applied(camera_id, stream_epoch, seq)
                    todo.extend(self.window.ready(camera_id))

