"""`python -m bench.relay.forwarder`: the baseline the balancer is measured against.

The least a relay can do: consume frames.ingress with the balancer's prefetch on a channel
with publisher confirms (aio-pika's default, as the balancer's), republish body and headers
untouched to one worker queue picked by a hash of the camera id, ack after the publish is
confirmed, one message at a time in queue order. No header parsing, no liveness, no policy,
no PostgreSQL: whatever the balancer costs beyond this is the price of its decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import zlib
from collections.abc import AsyncIterator, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts import broker
from infra import amqp, logs
from infra.runner import run_until_signalled

log = logging.getLogger("camcount.bench.forwarder")


class Forwarder:
    def __init__(self, rabbitmq_url: str, prefetch: int, worker_ids: Sequence[str]) -> None:
        self.rabbitmq_url, self.prefetch = rabbitmq_url, prefetch
        self.specs = [broker.worker_queue(w) for w in worker_ids]
        self.queues = [spec.name for spec in self.specs]

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.rabbitmq_url, "relay-forwarder")
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            ingress = await amqp.declare_frames_topology(channel)
            for spec in self.specs:
                await amqp.declare_queue(channel, spec)
            async with asyncio.TaskGroup() as tg, ingress.iterator() as batches:
                consumer = tg.create_task(self._forward_all(channel, batches))
                log.info("forwarder ready prefetch=%d queues=%s", self.prefetch,
                         ",".join(self.queues))
                await stop.wait()
                await batches.close()
                await consumer
        finally:
            await connection.close()

    async def _forward_all(
        self, channel: AbstractChannel, batches: AsyncIterator[AbstractIncomingMessage]
    ) -> None:
        async for message in batches:
            camera = str((message.headers or {}).get("camera_id", ""))
            queue = self.queues[zlib.crc32(camera.encode()) % len(self.queues)]
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body, headers=message.headers, message_id=message.message_id,
                    priority=message.priority, content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )
            await message.ack()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay.forwarder", description=__doc__)
    parser.add_argument("--rabbitmq-url", default=os.environ.get("RABBITMQ_URL", ""))
    parser.add_argument("--prefetch", type=int, required=True)
    parser.add_argument("--worker-ids", required=True, help="comma-separated")
    args = parser.parse_args(argv)
    if not args.rabbitmq_url:
        parser.error("--rabbitmq-url or RABBITMQ_URL is required")
    logs.setup("INFO", "relay-forwarder")
    forwarder = Forwarder(args.rabbitmq_url, args.prefetch, args.worker_ids.split(","))
    return run_until_signalled(forwarder.run)


if __name__ == "__main__":
    sys.exit(main())
