"""The test rig both contestants face: a producer publishing like ingest and fake workers.

The producer publishes to frames.ingress exactly as ingest/pipeline.py does (BatchHeaders on
the wire, a contracts.batch body, priority, persistent, one task per camera awaiting each
publisher confirm, so a camera's batches keep their order). The fake workers beat on the
heartbeats exchange like workers/service.py, so the balancer sees them live, and consume
their own queue, acking each batch at once: the relay, not the rig, should be the
bottleneck. Producer and fake workers share this process so that send and receive times come
from one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from contracts import broker
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders, WorkerHeartbeat
from infra import amqp

HEARTBEAT_INTERVAL_S = 0.5
FAKE_CAPACITY_PER_S = 10_000.0
STREAM_EPOCH = 1


@dataclass(frozen=True)
class RigConfig:
    cameras: int = 50
    workers: int = 2
    body_bytes: int = 150_000  # about five 640x360 JPEG frames
    frames_per_batch: int = 5
    outstanding: int = 256  # closed loop: batches published and not yet received
    worker_prefetch: int = 512
    deadline_s: float = 120.0  # far beyond any latency here: no batch may become a gap

    @property
    def camera_ids(self) -> list[str]:
        return [f"relay-{i:03d}" for i in range(self.cameras)]

    @property
    def worker_ids(self) -> list[str]:
        return [f"relay-w{i}" for i in range(self.workers)]


@dataclass
class Tally:
    """One phase's books, keyed by batch id (the AMQP message id, which both relays keep)."""

    sent_at: dict[str, float] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)  # first delivery
    duplicates: int = 0  # deliveries beyond the first, and any of a batch never published
    stamped: int = 0  # deliveries with assignment_epoch in their headers

    @property
    def missing(self) -> int:
        return len(self.sent_at) - len(self.received_at)

    def received_between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.received_at.values())

    def sent_between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.sent_at.values())

    def latencies_s(self, start: float, end: float) -> list[float]:
        """Publish-to-receive of the batches published in [start, end): once drained, late
        arrivals count too, so a relay that falls behind cannot hide its worst batches."""
        return [self.received_at[mid] - sent for mid, sent in self.sent_at.items()
                if start <= sent < end and mid in self.received_at]


class Rig:
    def __init__(self, config: RigConfig, channel: AbstractChannel) -> None:
        self.config = config
        self.channel = channel  # the producer's, with publisher confirms
        self.seq = dict.fromkeys(config.camera_ids, 0)
        self.tally = Tally()
        self.window: asyncio.Semaphore | None = None
        self.drained: asyncio.Event | None = None
        frame = max(1, config.body_bytes // config.frames_per_batch)
        # Random bytes: as incompressible as JPEG, and the relays never look inside.
        self.body = encode_batch([EncodedFrame(time.time(), 640, 360, os.urandom(frame))
                                  for _ in range(config.frames_per_batch)])

    def begin(self, tally: Tally) -> None:
        self.tally = tally

    async def publish(self, camera_id: str) -> None:
        seq = self.seq[camera_id]
        self.seq[camera_id] = seq + 1
        now = time.time()
        headers = BatchHeaders(
            camera_id=camera_id, stream_epoch=STREAM_EPOCH, seq=seq,
            priority=broker.Priority.NORMAL, captured_at=now,
            deadline_at=now + self.config.deadline_s, frame_count=self.config.frames_per_batch,
        )
        message_id = str(headers.batch_id)
        self.tally.sent_at[message_id] = now
        await self.channel.default_exchange.publish(
            aio_pika.Message(self.body, headers=headers.to_amqp(), message_id=message_id,
                             priority=int(headers.priority), timestamp=now,
                             content_type="application/x-camcount-batch",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=broker.FRAMES_INGRESS,
        )

    async def on_delivery(self, message: AbstractIncomingMessage) -> None:
        now = time.time()
        tally, message_id = self.tally, message.message_id or ""
        if message_id in tally.sent_at and message_id not in tally.received_at:
            tally.received_at[message_id] = now
            if self.window is not None:
                self.window.release()
            if self.drained is not None and tally.missing == 0:
                self.drained.set()
        else:
            tally.duplicates += 1
        if "assignment_epoch" in (message.headers or {}):
            tally.stamped += 1
        await message.ack()

    async def saturate(self, tally: Tally, seconds: float) -> None:
        """Closed loop: each camera publishes whenever fewer than `outstanding` batches are
        on their way, so the ingress queue never runs dry and the relay sets the pace."""
        self.begin(tally)
        self.window = window = asyncio.Semaphore(self.config.outstanding)
        stop = asyncio.Event()

        async def camera(camera_id: str) -> None:
            while True:
                await window.acquire()
                if stop.is_set():
                    return
                await self.publish(camera_id)

        try:
            async with asyncio.TaskGroup() as tg:
                for camera_id in self.config.camera_ids:
                    tg.create_task(camera(camera_id))
                await asyncio.sleep(seconds)
                stop.set()
                for _ in self.config.camera_ids:  # wake every camera waiting for a slot
                    window.release()
        finally:
            self.window = None

    async def pace(self, tally: Tally, rate_per_s: float, seconds: float) -> None:
        """Open loop at `rate_per_s` in all, the cameras' schedules staggered evenly, as a
        fleet of cameras each batching at its own fps would."""
        self.begin(tally)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        n = len(self.config.camera_ids)
        interval = n / rate_per_s
        start = loop.time()

        async def camera(index: int, camera_id: str) -> None:
            due = start + interval * index / n
            while True:
                if due > loop.time():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), due - loop.time())
                if stop.is_set():
                    return
                await self.publish(camera_id)
                due += interval

        async with asyncio.TaskGroup() as tg:
            for index, camera_id in enumerate(self.config.camera_ids):
                tg.create_task(camera(index, camera_id))
            await asyncio.sleep(seconds)
            stop.set()

    async def drain(self, tally: Tally, timeout_s: float) -> None:
        """Wait until every published batch arrived (or the timeout; missing ones then show)."""
        if tally.missing > 0:
            self.drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout_s)
            self.drained = None
        await asyncio.sleep(0.2)  # room for a duplicate to show itself


async def _fake_worker(channel: AbstractChannel, worker_id: str, rig: Rig,
                       stop: asyncio.Event) -> None:
    """Consume the worker's queue into the rig and beat until `stop`, then say goodbye."""
    config = rig.config
    await channel.set_qos(prefetch_count=config.worker_prefetch)
    spec = broker.worker_queue(worker_id)
    queue = await amqp.declare_queue(channel, spec)
    await queue.purge()
    tag = await queue.consume(rig.on_delivery)
    exchange: AbstractExchange = await amqp.declare_exchange(channel, broker.HEARTBEATS_EXCHANGE)
    boot_id = uuid.uuid4().hex[:8]
    while True:
        # The fake worker acks on receipt: it announces a capacity no relay rate here reaches,
        # so the hybrid policy never sheds for want of it and only the relaying is measured.
        beat = WorkerHeartbeat(worker_id=worker_id, boot_id=boot_id, queue=spec.name,
                               sent_at=time.time(), stopping=stop.is_set(),
                               capacity_per_s=FAKE_CAPACITY_PER_S,
                               heartbeat_interval_s=HEARTBEAT_INTERVAL_S)
        await exchange.publish(
            aio_pika.Message(beat.model_dump_json().encode(), content_type="application/json",
                             expiration=10),
            routing_key="",
        )
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL_S)
    await queue.cancel(tag)


@contextlib.asynccontextmanager
async def open_rig(config: RigConfig, rabbitmq_url: str) -> AsyncIterator[Rig]:
    """The producer's connection and the fake workers' (one channel each), the frames topology
    declared and every queue purged, so a run starts from empty queues."""
    producer = await amqp.connect(rabbitmq_url, "relay-bench-producer")
    workers = await amqp.connect(rabbitmq_url, "relay-bench-workers")
    try:
        channel = await producer.channel(publisher_confirms=True)
        ingress = await amqp.declare_frames_topology(channel)
        await ingress.purge()
        rig = Rig(config, channel)
        stop = asyncio.Event()
        beating = [asyncio.create_task(_fake_worker(await workers.channel(), w, rig, stop))
                   for w in config.worker_ids]
        try:
            yield rig
        finally:
            stop.set()
            await asyncio.gather(*beating)
    finally:
        await workers.close()
        await producer.close()
