"""Connecting to RabbitMQ and declaring the topology named in contracts.broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractQueueIterator,
    AbstractRobustConnection,
)
from pydantic import ValidationError

from contracts import broker
from contracts.messages import WorkerHeartbeat
from infra.runner import cancel_and_wait, shutdown_step

log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A robust connection: it reconnects and re-declares what was declared on it."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})


async def stop_consuming(connection: AbstractConnection, deliveries: AbstractQueueIterator,
                         reader: asyncio.Task[None], what: str) -> None:
    """Shutdown: cancel a queue iterator's consumer and wait for the task reading it.

    With the broker gone, aio_pika's robust iterator keeps waiting (up to a minute) for the
    channel to come back even after close(); the reader is then cancelled instead, and its own
    cleanup still runs (a worker's batch in hand is finished, its ack lost with the broker)."""
    await shutdown_step(deliveries.close(), f"cancelling the {what} consumer")
    if connection.connected.is_set():
        await reader
        return
    log.warning("shutdown: broker unreachable, abandoned waiting for %s deliveries", what)
    await cancel_and_wait(reader)


async def declare_exchange(channel: AbstractChannel, spec: broker.ExchangeSpec) -> AbstractExchange:
    return await channel.declare_exchange(
        spec.name, aio_pika.ExchangeType(spec.type), durable=spec.durable
    )


class TopologyMismatch(RuntimeError):
    """A queue exists with other arguments than this release declares (the broker refuses to
    change them in place): an operator has to move it, and the error says how."""


async def declare_queue(channel: AbstractChannel, spec: broker.QueueSpec) -> AbstractQueue:
    try:
        return await channel.declare_queue(spec.name, durable=spec.durable,
                                           arguments=spec.arguments)
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyMismatch(
            f"queue {spec.name} exists with other arguments than this release declares "
            f"({spec.arguments}): stop its publishers, let it drain, delete it "
            f"(rabbitmqctl delete_queue {spec.name}) and start again. Broker said: {exc}"
        ) from exc


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


async def consume_heartbeats(
    channel: AbstractChannel, on_beat: Callable[[WorkerHeartbeat], Awaitable[None] | None]
) -> tuple[AbstractQueue, str]:
    """Follow the heartbeats fanout on a private queue; malformed beats are logged and dropped.

    Returns the queue and consumer tag (to cancel on shutdown)."""
    exchange = await declare_exchange(channel, broker.HEARTBEATS_EXCHANGE)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            beat = WorkerHeartbeat.model_validate_json(message.body)
        except ValidationError as exc:
            log.warning("ignoring malformed heartbeat: %s", exc.errors()[0]["msg"])
            return
        result = on_beat(beat)
        if result is not None:
            await result

    tag = await queue.consume(on_message, no_ack=True)
    return queue, tag
