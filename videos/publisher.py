"""Publishing one segment's batches to frames.ingress, as a virtual camera's stream.

Why the existing pipeline and not a second processing path: a segment is just another
camera's stream to the balancer and the workers, so it gets everything live cameras have:
routing by capability and model, affinity (one worker keeps a segment's tracker), failover
that resumes from the tracker checkpoint, one transaction per batch with duplicate detection,
gaps for whatever is lost. Segments of one job are different cameras, so the balancer spreads
them over the pool: that is the parallelism. Batches go out at LOW priority: worker queues
are priority queues, so a live camera's batches overtake them, and under overload the
balancer delays or sheds low batches first (a shed video batch fails the job; it is never
counted short silently).

Batch ids are deterministic ((segment camera, epoch 1, seq) over a fixed frame layout), so a
runner that takes a job over republishes from the segment's progress and any batch sent twice
is dropped by the worker as a duplicate. At most `window` batches of a segment are published
ahead of its applied progress: queues, and the broker's memory, stay bounded however long the
video. The window is one batch by default: the balancer learns a camera's rate from capture
times, so a segment (25 fps of video time, processed as fast as the pool goes) looks like a
camera beyond a worker's capacity and is moved between workers; a move is safe only between
batches, as batches still queued at the old worker come back fenced, behind newer ones, and
their hole becomes a gap. Parallelism comes from many segments at once instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel

from contracts import broker
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders
from videos.jobs import JobRow

STREAM_EPOCH = 1


class ProgressGate:
    """Per segment, the batches applied so far; publishers wait here for room in the window."""

    def __init__(self, applied: dict[int, int], window: int) -> None:
        self.applied = dict(applied)
        self.window = window
        self._changed = asyncio.Condition()

    async def update(self, applied: dict[int, int]) -> None:
        async with self._changed:
            self.applied.update(applied)
            self._changed.notify_all()

    async def room_for(self, index: int, seq: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: seq - self.applied.get(index, 0) < self.window)


async def publish_batch(channel: AbstractChannel, job: JobRow, camera_id: str, seq: int,
                        frames: Sequence[EncodedFrame], deadline_s: float) -> None:
    headers = BatchHeaders(
        camera_id=camera_id, stream_epoch=STREAM_EPOCH, seq=seq,
        priority=broker.Priority.LOW, region=job.region, capability=job.capability,
        captured_at=frames[0].captured_at, deadline_at=time.time() + deadline_s,
        frame_count=len(frames), model=job.model,
    )
    # Awaits the broker's confirm (the channel has publisher confirms on).
    await channel.default_exchange.publish(
        aio_pika.Message(encode_batch(frames), headers=headers.to_amqp(),
                         message_id=str(headers.batch_id), priority=int(headers.priority),
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=broker.FRAMES_INGRESS,
    )
