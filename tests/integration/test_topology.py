"""Declaring the broker topology over one left by an older release: the broker refuses to
change a queue's arguments in place, and the operator gets an error that says what to do."""

from __future__ import annotations

import pytest

from contracts import broker
from infra import amqp
from tests.conftest import Isolated


async def test_an_ingress_queue_with_other_arguments_is_a_clear_error(isolated: Isolated) -> None:
    connection = await amqp.connect(isolated.rabbitmq_url, "test")
    async with connection:
        old = await connection.channel()
        await old.declare_queue(broker.FRAMES_INGRESS, durable=True,
                                arguments={"x-max-priority": broker.MAX_PRIORITY})
        with pytest.raises(amqp.TopologyMismatch,
                           match=r"rabbitmqctl delete_queue frames\.ingress"):
            await amqp.declare_frames_topology(await connection.channel())
        await (await connection.channel()).queue_delete(broker.FRAMES_INGRESS)
        ingress = await amqp.declare_frames_topology(await connection.channel())
        assert ingress.name == broker.FRAMES_INGRESS
