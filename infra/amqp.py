"""Connecting to RabbitMQ and declaring the topology named in contracts.broker."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from contracts import broker


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A robust connection: it reconnects and re-declares what was declared on it."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})


async def declare_exchange(channel: AbstractChannel, spec: broker.ExchangeSpec) -> AbstractExchange:
    return await channel.declare_exchange(
        spec.name, aio_pika.ExchangeType(spec.type), durable=spec.durable
    )


async def declare_queue(channel: AbstractChannel, spec: broker.QueueSpec) -> AbstractQueue:
    return await channel.declare_queue(spec.name, durable=spec.durable, arguments=spec.arguments)


async def declare_frames_topology(channel: AbstractChannel) -> AbstractQueue:
    """Exchanges, the ingress queue and the dead-letter queue; returns the ingress queue."""
    for spec in broker.EXCHANGES:
        await declare_exchange(channel, spec)
    dead = await declare_queue(channel, broker.DEAD_QUEUE)
    await dead.bind(broker.FRAMES_DLX, routing_key=broker.FRAMES_DEAD)
    return await declare_queue(channel, broker.INGRESS_QUEUE)


async def dead_letter(
    channel: AbstractChannel, message: AbstractIncomingMessage, reason: str, stage: str
) -> None:
    """Park a message we cannot understand in the DLQ with the reason, then ack the original.

    Publishing explicitly (rather than rejecting into the DLX) is what lets the reason travel.
    """
    headers = dict(message.headers or {})
    headers[broker.HEADER_ERROR] = reason[:1000]
    headers[broker.HEADER_ERROR_STAGE] = stage
    exchange = await channel.get_exchange(broker.FRAMES_DLX)
    await exchange.publish(
        aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                         content_type=message.content_type,
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=broker.FRAMES_DEAD,
    )
    await message.ack()
