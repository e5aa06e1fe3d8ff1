"""A Hypothesis state machine drives the real apply transaction (real PostgreSQL) through
publish, duplicate, crash before commit, crash after commit before ack (redelivery to a fresh
process), reorder and reassignment (epoch change), and checks after every step that each batch
is counted exactly once or lies inside a recorded gap, and that the totals equal a model."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select, text

from contracts.messages import BatchHeaders
from contracts.tables import assignments, coverage_gaps
from infra.db import create_engine
from tests.conftest import Isolated
from tests.support import progress, seed_camera
from workers.detection import Detection
from workers.repository import ApplyResult, CachedState, Outcome, apply_batch
from workers.tracking import TrackerConfig

CAMERA, WORKER, OTHER = "cam-sm", "w-sm", "w-other"
CONFIG = TrackerConfig()


class Crash(Exception):
    pass


def crossing(direction: str) -> list[list[Detection]]:
    """One object crossing the centre line entirely inside one batch, then leaving: every
    applied batch adds exactly one count, so the model is a simple sum."""
    xs = [0.1 + 0.08 * i for i in range(11)]
    if direction == "out":
        xs.reverse()
    frames = [[Detection(x - 0.08, 0.4, x + 0.08, 0.6, 1.0, "motion")] for x in xs]
    return frames + [[] for _ in range(CONFIG.lost_track_buffer + 2)]


class ApplyMachine(RuleBasedStateMachine):
    database_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database_url, pool_size=2)
        self.line_id = 0
        self.next_seq = 0
        self.epoch = 1  # assignment epoch held by WORKER
        self.directions: dict[int, str] = {}
        self.applied: set[int] = set()
        self.unacked: list[int] = []  # delivered, committed or not, never acked
        self.cache: CachedState | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    @initialize()
    def seed(self) -> None:
        async def reset() -> int:
            async with self.engine.begin() as conn:
                await conn.execute(text("TRUNCATE cameras, outbox, workers CASCADE"))
            return await seed_camera(self.engine, CAMERA, worker_id=WORKER, epoch=1)

        self.line_id = self.run(reset())

    def headers(self, seq: int, epoch: int | None = None) -> BatchHeaders:
        now = time.time()
        return BatchHeaders(camera_id=CAMERA, stream_epoch=1, seq=seq, captured_at=now,
                            deadline_at=now + 60, frame_count=17,
                            assignment_epoch=self.epoch if epoch is None else epoch)

    def deliver(self, seq: int, *, crash_before_commit: bool = False,
                epoch: int | None = None) -> ApplyResult:
        async def fail() -> None:
            raise Crash

        detections = crossing(self.directions[seq])
        times = [time.time()] * len(detections)
        try:
            result: ApplyResult = self.run(apply_batch(
                self.engine, WORKER, self.headers(seq, epoch), times, detections, self.cache,
                CONFIG, before_commit=fail if crash_before_commit else None,
            ))
        except Crash:
            self.cache = None  # the process died: its memory is gone, the message not acked
            self.unacked.append(seq)
            raise
        if result.outcome is Outcome.APPLIED:
            assert result.state is not None and result.progress is not None
            self.cache = CachedState(result.progress, result.state)
            self.applied.add(seq)
        return result

    @rule(direction=st.sampled_from(["in", "out"]))
    def publish(self, direction: str) -> None:
        seq = self.next_seq
        self.next_seq += 1
        self.directions[seq] = direction
        self.deliver(seq)

    @precondition(lambda self: self.applied)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.applied)))
        assert self.deliver(seq).outcome is Outcome.DUPLICATE

    @rule(direction=st.sampled_from(["in", "out"]))
    def crash_before_commit(self, direction: str) -> None:
        seq = self.next_seq
        self.next_seq += 1
        self.directions[seq] = direction
        with pytest.raises(Crash):
            self.deliver(seq, crash_before_commit=True)
        assert seq not in self.applied

    @rule(direction=st.sampled_from(["in", "out"]))
    def crash_after_commit_before_ack(self, direction: str) -> None:
        seq = self.next_seq
        self.next_seq += 1
        self.directions[seq] = direction
        self.deliver(seq)
        self.cache = None  # died before the ack: RabbitMQ will redeliver to a fresh process
        self.unacked.append(seq)

    @precondition(lambda self: self.unacked)
    @rule()
    def redeliver(self) -> None:
        seq = self.unacked.pop(0)
        outcome = self.deliver(seq).outcome
        assert outcome in (Outcome.APPLIED, Outcome.DUPLICATE)

    @rule(first=st.sampled_from(["in", "out"]), second=st.sampled_from(["in", "out"]))
    def reorder(self, first: str, second: str) -> None:
        """Two batches arrive in the wrong order."""
        a, b = self.next_seq, self.next_seq + 1
        self.next_seq += 2
        self.directions[a], self.directions[b] = first, second
        self.deliver(b)
        assert self.deliver(a).outcome is Outcome.DUPLICATE  # inside the recorded gap

    @rule()
    def reassign_and_back(self) -> None:
        """The camera moves away (epoch+1) and back (epoch+2): a batch still carrying an old
        epoch is fenced and changes nothing."""
        async def move(worker: str) -> None:
            async with self.engine.begin() as conn:
                await conn.execute(assignments.update().values(
                    worker_id=worker, epoch=assignments.c.epoch + 1))

        self.run(move(OTHER))
        self.run(move(WORKER))
        stale = self.epoch
        self.epoch += 2
        seq = self.next_seq
        self.next_seq += 1
        self.directions[seq] = "in"
        assert self.deliver(seq, epoch=stale).outcome is Outcome.FENCED
        self.unacked.append(seq)  # handed back for re-routing, to arrive again later

    @invariant()
    def counted_once_or_in_a_gap(self) -> None:
        async def read() -> tuple[Any, Any]:
            stored = await progress(self.engine, CAMERA)
            async with self.engine.connect() as conn:
                gaps = (await conn.execute(select(coverage_gaps))).all()
            return stored, gaps

        stored, gaps = self.run(read())
        expected: dict[str, int] = {}
        for seq in self.applied:
            key = f"{self.line_id}:{self.directions[seq]}:motion"
            expected[key] = expected.get(key, 0) + 1
        assert (stored[1] if stored else {}) == expected
        in_gap = {s for g in gaps for s in range(g.seq_from, g.seq_to + 1)}
        assert not (in_gap & self.applied)
        settled = set(range(self.next_seq)) - set(self.unacked)
        lost = settled - self.applied - in_gap
        assert not lost, f"batches neither counted nor recorded as a gap: {sorted(lost)}"


@pytest.mark.slow
def test_apply_state_machine(isolated: Isolated) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    ApplyMachine.database_url = isolated.database_url
    run_state_machine_as_test(ApplyMachine, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    ))
