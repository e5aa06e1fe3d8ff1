"""The ingest outbox against a real RabbitMQ: order with pipelined confirms, a memory alarm
(bounded queue, dropped span recorded, resumes when it clears), and a lost connection
(unconfirmed batches sent again with the same ids)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aio_pika.abc import AbstractRobustConnection

from camcount import services
from contracts import broker
from contracts.batch import EncodedFrame
from contracts.messages import BatchHeaders
from infra import amqp
from infra.runner import cancel_and_wait
from ingest.cameras import CameraSpec
from ingest.publisher import Batch, ConnectionLink, Outbox, OutboxEvents
from tests.conftest import Isolated
from tests.support import broker_memory_alarm

pytestmark = pytest.mark.timeout(120)

SPEC = CameraSpec("cam-o", "rtsp://example/cam", "local", broker.Priority.NORMAL, 5.0, 5, 1000,
                  10.0, "motion", None)


@dataclass
class Recorder:
    pressure: list[str] = field(default_factory=list)
    cleared: int = 0
    dropped: list[tuple[int, float, float, str]] = field(default_factory=list)

    def events(self) -> OutboxEvents:
        return OutboxEvents(self.pressure.append, self._cleared,
                            lambda *args: self.dropped.append(args))

    def _cleared(self) -> None:
        self.cleared += 1


T0 = time.time()


@pytest.fixture(autouse=True)
def _fresh_timeline() -> None:
    """Batches are stamped from the test's start: older ones would be past their deadline."""
    global T0
    T0 = time.time()


def batch(epoch: int, index: int) -> Batch:
    """Batch `index` of a camera at 5 fps: five frames covering [T0 + index, T0 + index + 1)."""
    jpeg = bytes([index % 256]) * 20_000
    start = T0 + index
    return Batch(epoch, [EncodedFrame(start + i * 0.2, 64, 36, jpeg) for i in range(5)])


@pytest.fixture
async def connection(isolated: Isolated) -> AsyncIterator[AbstractRobustConnection]:
    conn = await amqp.connect(isolated.rabbitmq_url, "outbox-test")
    channel = await conn.channel()
    await amqp.declare_frames_topology(channel)
    await channel.close()
    yield conn
    await conn.close()


async def published(conn: AbstractRobustConnection) -> list[BatchHeaders]:
    channel = await conn.channel()
    queue = await channel.declare_queue(broker.FRAMES_INGRESS, passive=True)
    out = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        out.append(BatchHeaders.from_amqp(message.headers))
    await channel.close()
    return out


async def start(conn: AbstractRobustConnection, recorder: Recorder, *, max_queued: int,
                window: int) -> tuple[Outbox, asyncio.Task[None]]:
    channel = await conn.channel(publisher_confirms=True)
    outbox = Outbox(SPEC, ConnectionLink(conn, channel.default_exchange), recorder.events(),
                    max_queued=max_queued, window=window)
    return outbox, asyncio.create_task(outbox.run())


async def test_batches_arrive_in_seq_order_with_many_confirms_in_flight(
    connection: AbstractRobustConnection,
) -> None:
    recorder = Recorder()
    outbox, task = await start(connection, recorder, max_queued=100, window=8)
    for i in range(30):
        outbox.offer(batch(7, i))
    await outbox.drain(30)
    await cancel_and_wait(task)
    headers = await published(connection)
    assert [(h.stream_epoch, h.seq) for h in headers] == [(7, i) for i in range(30)]
    assert recorder.dropped == [] and recorder.pressure == []


async def test_memory_alarm_drops_the_oldest_records_the_span_and_resumes(
    connection: AbstractRobustConnection,
) -> None:
    recorder = Recorder()
    outbox, task = await start(connection, recorder, max_queued=4, window=2)
    for i in range(5):
        outbox.offer(batch(1, i))
        await asyncio.sleep(0.05)
    await outbox.drain(10)
    assert recorder.dropped == []
    with broker_memory_alarm():
        offered_while_blocked = []
        for i in range(5, 45):
            b = batch(1, i)
            offered_while_blocked.append(b)
            outbox.offer(b)
            assert outbox.queued <= 4 and outbox.in_flight <= 2  # bounded, whatever happens
            await asyncio.sleep(0.05)
        assert recorder.pressure, "dropping frames never raised backpressure"
        # The broker says Connection.Blocked on the first publish after the alarm; drops
        # before that notice are put down to slow confirms.
        assert any("blocks publishers" in reason for reason in recorder.pressure)
    outbox.offer(batch(1, 99))
    await outbox.drain(30)
    await cancel_and_wait(task)

    headers = await published(connection)
    seqs = [h.seq for h in headers]
    assert seqs == list(range(len(seqs))), "a dropped batch must leave no hole in the seqs"
    assert 5 < len(seqs) < 46
    # The recorded spans cover exactly the batches that never reached the broker.
    kept = [h.captured_at for h in headers]
    lost = [b for b in offered_while_blocked
            if not any(abs(b.captured_at - at) < 1e-3 for at in kept)]
    assert lost and recorder.dropped
    assert all(epoch == 1 for epoch, *_ in recorder.dropped)
    for b in offered_while_blocked:
        covered = any(start <= b.captured_at <= end for _, start, end, _ in recorder.dropped)
        assert covered == (b in lost), f"batch at {b.captured_at} covered={covered}"
    frames = sum(int(detail.split(" frames")[0]) for *_, detail in recorder.dropped)
    assert frames == 5 * len(lost)
    assert recorder.cleared > 0


async def test_a_lost_connection_resends_unconfirmed_batches_with_the_same_ids(
    connection: AbstractRobustConnection,
) -> None:
    cfg = services.ServicesConfig.from_env("test")
    recorder = Recorder()
    outbox, task = await start(connection, recorder, max_queued=100, window=8)
    for i in range(10):
        outbox.offer(batch(3, i))
    await asyncio.sleep(0)  # some are on the wire, none confirmed yet
    services.rabbitmqctl(cfg, "close_all_connections", "outbox test: connection cut")
    for i in range(10, 20):
        outbox.offer(batch(3, i))
        await asyncio.sleep(0.05)
    await outbox.drain(60)
    await cancel_and_wait(task)
    headers = await published(connection)
    first_seen: list[int] = []
    for h in headers:
        if h.seq not in first_seen:
            first_seen.append(h.seq)
    assert first_seen == list(range(20)), "every batch arrives, first copies in seq order"
    assert recorder.dropped == []


async def test_batches_still_queued_when_the_camera_stops_are_recorded_as_a_gap(
    connection: AbstractRobustConnection,
) -> None:
    recorder = Recorder()
    outbox, task = await start(connection, recorder, max_queued=10, window=1)
    with broker_memory_alarm():
        for i in range(5):
            outbox.offer(batch(2, i))
            await asyncio.sleep(0.05)
        assert outbox.queued == 4 and outbox.in_flight == 1  # the broker takes nothing
        await cancel_and_wait(task)  # the camera is handed over or disabled now
    assert len(recorder.dropped) == 1
    epoch, started_at, ended_at, detail = recorder.dropped[0]
    assert (epoch, started_at, ended_at) == (2, batch(2, 1).captured_at,
                                             batch(2, 4).last_captured_at)
    assert detail == "20 frames in 4 batches: the camera stopped before the broker took it"
