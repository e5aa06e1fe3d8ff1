"""Corrupt, malformed, poison, duplicate and out-of-order batches, mixed with normal traffic in
one real worker process's queue. The test is the producer (publisher confirms), so it knows
every batch the broker took; afterwards each is sorted into applied once, recorded as a gap or
parked in the dead-letter queue with its reason, and each camera's counts are held against the
simulator's truth over the time its batches covered.

What the design promises (workers/ordering.py, reorder.py, retry.py, service.py):
- a frame that will not decode is skipped and the batch counted; a body or headers that cannot
  be understood go to the DLQ with the reason, and a batch they still name is a gap;
- a batch whose transaction always fails is retried MAX_ATTEMPTS times, then dead-lettered as a
  gap, while the camera's later batches wait at most the reorder window, never for ever;
- a duplicate is acked without effect; a batch a little out of order is put back in order by
  the reorder window, one far out of order becomes a 'missing' gap and, when it finally
  arrives, a duplicate inside that gap: applied in order, never twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts import broker
from contracts.messages import BatchHeaders
from infra import amqp
from simulator.scenes import SyntheticScene
from tests.conftest import Isolated
from tests.faults.checker import check
from tests.faults.f2_messages import (
    dead_letters,
    fail_progress_at,
    flip_jpeg_start,
    flip_magic,
    flip_metadata,
    producer_history,
    publish_raw,
    truncate,
)
from tests.faults.history import applied, gaps
from tests.integration.roles import Fleet
from tests.support import eventually, progress, scene_batches, seed_camera

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKER = "w-msgfault"
QUEUE = broker.worker_queue_name(WORKER)
POISON_SEQ = 5


@dataclass
class Stream:
    """One camera's messages in the order the test publishes them, and what must follow."""

    camera_id: str
    scene: SyntheticScene
    good: list[tuple[BatchHeaders, bytes]]
    # (message id, header table, body, the batch it stands for: None for no batch at all)
    messages: list[tuple[str, dict[str, Any], bytes, BatchHeaders | None]] = field(
        default_factory=list)
    gaps: dict[int, set[str]] = field(default_factory=dict)  # seq -> acceptable reasons
    dead: dict[str, str] = field(default_factory=dict)  # message id -> words of its reason

    @property
    def last_seq(self) -> int:
        return len(self.good) - 1

    def send(self, seq: int, body: bytes | None = None,
             headers: dict[str, Any] | None = None) -> None:
        h, b = self.good[seq]
        self.messages.append((str(h.batch_id), h.to_amqp() if headers is None else headers,
                              b if body is None else body, h))

    def send_all(self, seqs: list[int] | range) -> None:
        for seq in seqs:
            self.send(seq)


def streams(cameras: dict[str, SyntheticScene]) -> dict[str, Stream]:
    made = {cam: Stream(cam, scene, scene_batches(scene, camera_id=cam, tail_s=2.0))
            for cam, scene in cameras.items()}
    clean, corrupt, malformed = made["cam-clean"], made["cam-corrupt"], made["cam-malformed"]
    poison, dup, shuffled = made["cam-poison"], made["cam-dup"], made["cam-shuffled"]
    clean.send_all(range(clean.last_seq + 1))

    for seq in range(corrupt.last_seq + 1):
        body = corrupt.good[seq][1]
        damage = {3: lambda b: flip_jpeg_start(b, 1), 6: flip_magic, 9: flip_metadata,
                  12: truncate}.get(seq)
        corrupt.send(seq, damage(body) if damage else None)
    corrupt.gaps = {6: {"dead_lettered"}, 9: {"dead_lettered"}, 12: {"dead_lettered"}}
    corrupt.dead = {str(corrupt.good[6][0].batch_id): "unknown magic",
                    str(corrupt.good[9][0].batch_id): "metadata is malformed",
                    str(corrupt.good[12][0].batch_id): "exceed the body"}

    for seq in range(malformed.last_seq + 1):
        table = malformed.good[seq][0].to_amqp()
        if seq == 4:
            del table["assignment_epoch"]  # never went through a balancer
        elif seq == 7:
            table["schema_version"] = 2  # a release this worker does not know
        elif seq == 10:
            table["captured_at_us"] = "soon"  # the wrong type: the instant is lost
        malformed.send(seq, headers=table)
        if seq == 8:
            malformed.messages.append(("f2-no-headers", {}, malformed.good[seq][1], None))
    # A batch whose headers still name it is a dead-lettered gap; one whose headers do not
    # parse leaves a hole that the next batch records as 'missing'.
    malformed.gaps = {4: {"dead_lettered"}, 7: {"missing"}, 10: {"missing"}}
    ids = [str(malformed.good[s][0].batch_id) for s in (4, 7, 10)]
    malformed.dead = {ids[0]: "assignment_epoch", ids[1]: "schema_version",
                      ids[2]: "captured_at", "f2-no-headers": "no headers"}

    poison.send_all(range(poison.last_seq + 1))
    # Dead-lettered after its attempts, or overtaken by the batches behind it once the
    # reorder window gave up on it (then its last attempt is a duplicate): a gap either way.
    poison.gaps = {POISON_SEQ: {"dead_lettered", "missing"}}

    for seq in range(dup.last_seq + 1):
        dup.send(seq)
        if seq % 2 == 0:
            dup.send(seq)  # back to back, as a publisher resending after a lost confirm
    dup.send_all(range(4))  # long after, as a redelivery of old work

    order = list(range(shuffled.last_seq + 1))
    for a in (2, 6, 10):
        order[a], order[a + 1] = order[a + 1], order[a]
    order.remove(4)
    shuffled.send_all([*order, 4])  # seq 4 arrives last of all
    shuffled.gaps = {4: {"missing"}}
    return made


async def test_bad_duplicate_and_shuffled_batches_are_counted_once_or_recorded_as_gaps(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path
) -> None:
    cameras = {f"cam-{name}": SyntheticScene(seed=seed, crossings=5, warmup_s=1.5)
               for name, seed in (("clean", 11), ("corrupt", 12), ("malformed", 13),
                                  ("poison", 14), ("dup", 15), ("shuffled", 16))}
    for cam in cameras:
        await seed_camera(engine, cam, worker_id=WORKER)
    await fail_progress_at(engine, "cam-poison", POISON_SEQ)
    plan = streams(cameras)
    fleet = Fleet(isolated, tmp_path)
    connection = await amqp.connect(isolated.rabbitmq_url, "f2-producer")
    try:
        async with connection:
            channel = await connection.channel()  # publisher confirms: publish returns on ack
            await amqp.declare_frames_topology(channel)
            queue = await amqp.declare_queue(channel, broker.worker_queue(WORKER))
            # The default prefetch (4): held batches stay unacked, so the holds of several
            # cameras share it. Before workers/sequencer.Skipped, batches held behind a
            # dead-lettered one waited out the window for nothing, filled the prefetch with
            # the other cameras' holds, stalled the worker and cost cam-shuffled a gap.
            fleet.worker(WORKER, BATCH_LEDGER="true", PREFETCH_COUNT="4", MAX_ATTEMPTS="3",
                         MAX_TOTAL_ATTEMPTS="3")
            await eventually(lambda: fleet.health(WORKER), lambda h: h.get("ok") is True,
                             timeout_s=60)
            confirmed: list[BatchHeaders] = []
            # Round robin over the cameras: every fault sits between other cameras' traffic.
            for row in itertools.zip_longest(*(s.messages for s in plan.values())):
                for item in row:
                    if item is not None:
                        message_id, table, body, batch = item
                        await publish_raw(channel, QUEUE, body, table, message_id)
                        if batch is not None:
                            confirmed.append(batch)

            async def settled() -> tuple[int | None, dict[str, Any]]:
                return (await queue.declare()).message_count, await fleet.health(WORKER)

            await eventually(settled, lambda s: s[0] == 0 and s[1].get("outstanding") == 0,
                             timeout_s=180, interval_s=0.25)
            parked = await dead_letters(channel)
            corrupt_frames = await fleet.metric(WORKER, "camcount_worker_corrupt_frames_total")
            assert fleet.children[WORKER].alive, "the worker died on a bad message"
    finally:
        processes.stop(list(fleet.children.values()))
    verdict = check(await producer_history(engine, confirmed, cameras))
    print(f"message faults: {len(confirmed)} batches confirmed, {len(parked)} dead-lettered, "
          f"{corrupt_frames:.0f} corrupt frames skipped")
    print(verdict.summary())
    verdict.assert_ok()
    assert not verdict.unexpected and verdict.confirmed == sum(s.last_seq + 1
                                                               for s in plan.values())

    ledger = await applied(engine)
    by_reason = {(g.camera_id, seq): g.reason for g in await gaps(engine)
                 for seq in range(g.seq_from or 0, (g.seq_to or -1) + 1)}
    for cam, stream in plan.items():
        order = [a.key.seq for a in ledger if a.key.camera_id == cam]
        assert order == sorted(order), f"{cam} applied out of order: {order}"
        got = {seq: reason for (c, seq), reason in by_reason.items() if c == cam}
        assert set(got) == set(stream.gaps), (cam, got)
        for seq, allowed in stream.gaps.items():
            assert got[seq] in allowed, (cam, seq, got[seq])
        for message_id, words in stream.dead.items():
            assert words in parked.get(message_id, ""), (cam, message_id, parked.get(message_id))
        done = await progress(engine, cam)
        assert done is not None and done[0] == stream.last_seq, (cam, done)
        print(f"{cam}: {len(order)} applied, gaps {got}, counted {sum(done[1].values())}")
    assert corrupt_frames == 1
    poisoned = str(plan["cam-poison"].good[POISON_SEQ][0].batch_id)
    if by_reason[("cam-poison", POISON_SEQ)] == "dead_lettered":
        assert "failed 3 attempts" in parked[poisoned], parked.get(poisoned)
    unexplained = set(parked) - {m for s in plan.values() for m in s.dead} - {poisoned}
    assert not unexplained, f"dead-lettered without a reason to: {unexplained}"
