"""The relay's order of outbox rows (broadcaster/sequencer.py): table cases, then a Hypothesis
state machine of transactions that take ids, commit or roll back in any order, interleaved
with the three reads of a relay round."""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broadcaster.sequencer import Sequencer

NOBODY: frozenset[int] = frozenset()


def test_contiguous_ids_go_out_at_once_in_order() -> None:
    seq = Sequencer(watermark=10, gap_timeout_s=5)
    step = seq.advance([13, 11, 12], None, now=0)
    assert (step.late, step.ready, step.blocked) == ([], [11, 12, 13], False)
    assert not seq.waiting and not seq.needs_running_after


def test_a_gap_holds_later_rows_until_its_transaction_commits() -> None:
    seq = Sequencer(watermark=10, gap_timeout_s=5)
    step = seq.advance([11, 13, 14], None, now=0)
    assert (step.ready, step.blocked) == ([11], True) and seq.needs_running_after
    seq.wait_for(frozenset({7, 8}), now=0)  # 12 may belong to either
    step = seq.advance([13, 14], frozenset({8, 9}), now=1)  # 8 still running
    assert (step.ready, step.blocked) == ([], True) and not seq.needs_running_after
    step = seq.advance([12, 13, 14], frozenset({8, 9}), now=2)  # 12 committed after all
    assert (step.ready, step.blocked, seq.waiting) == ([12, 13, 14], False, False)


def test_a_gap_whose_transactions_ended_never_comes() -> None:
    seq = Sequencer(watermark=10, gap_timeout_s=5)
    seq.advance([13], None, now=0)
    seq.wait_for(frozenset({7}), now=0)
    step = seq.advance([13, 15], frozenset({9}), now=0.1)  # 7 rolled back: 11, 12 never come
    # 13 goes; 14 was taken after the wait began (cover 13): it needs a wait of its own.
    assert (step.ready, step.blocked, seq.needs_running_after) == ([13], True, True)
    seq.wait_for(frozenset({9}), now=0.1)
    assert seq.advance([15], NOBODY, now=0.2).ready == [15]
    assert seq.advance([12], None, now=0.3).late == [12]  # a settled id after all: late


def test_a_wait_covers_only_the_rows_seen_when_it_began() -> None:
    seq = Sequencer(watermark=0, gap_timeout_s=5)
    seq.advance([2], None, now=0)
    seq.wait_for(frozenset({1}), now=0)  # id 1: transaction 1, if anyone
    # Transaction 3 takes id 3 and is still running; 4 commits; transaction 1 goes on.
    assert seq.advance([2, 4], frozenset({1, 3}), now=1).ready == []
    step = seq.advance([2, 4], frozenset({3}), now=2)  # 1 rolled back; 3 still running
    assert (step.ready, step.blocked, seq.needs_running_after) == ([2], True, True)
    seq.wait_for(frozenset({3}), now=2)
    assert seq.advance([3, 4], frozenset({3}), now=3).ready == [3, 4]


def test_a_wait_gives_up_after_the_timeout() -> None:
    seq = Sequencer(watermark=0, gap_timeout_s=5)
    seq.advance([2], None, now=0)
    seq.wait_for(frozenset({1}), now=0)
    assert seq.advance([2], frozenset({1}), now=4.9).ready == []
    step = seq.advance([2], frozenset({1}), now=5.0)
    assert (step.ready, step.gave_up) == ([2], True)


def test_a_wait_is_dropped_when_its_gap_fills() -> None:
    seq = Sequencer(watermark=0, gap_timeout_s=5)
    seq.advance([2], None, now=0)
    seq.wait_for(frozenset({1}), now=0)
    assert seq.advance([1, 2], frozenset({1}), now=1).ready == [1, 2]
    assert not seq.waiting
    assert not seq.advance([3], None, now=10).gave_up


class Outbox(RuleBasedStateMachine):
    """Ids are taken in order by transactions holding a transaction id; the relay's round is
    three separate reads, any number of commits apart. With no timeout the relay must send
    every committed row exactly once, in rising order, and never one not committed."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = Sequencer(watermark=0, gap_timeout_s=math.inf)
        self.next_xid, self.next_id = 100, 1
        self.running: dict[int, int | None] = {}  # xid -> outbox id it took (if any)
        self.committed: set[int] = set()
        self.sent: list[int] = []
        self.phase = "before"  # the relay's next read: before -> rows (-> after)
        self.before: frozenset[int] | None = None

    def _now_running(self) -> frozenset[int]:
        return frozenset(self.running)

    @rule(takes_id=st.booleans())
    def begin(self, takes_id: bool) -> None:
        """A transaction starts writing; most take an outbox id (after their xid)."""
        self.running[self.next_xid] = None
        if takes_id:
            self.running[self.next_xid] = self.next_id
            self.next_id += 1
        self.next_xid += 1

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), commit=st.booleans())
    def end(self, data: st.DataObject, commit: bool) -> None:
        xid = data.draw(st.sampled_from(sorted(self.running)))
        taken = self.running.pop(xid)
        if commit and taken is not None:
            self.committed.add(taken)

    @precondition(lambda self: self.phase == "before")
    @rule()
    def read_running_before(self) -> None:
        self.before = self._now_running() if self.seq.waiting else None
        self.phase = "rows"

    @precondition(lambda self: self.phase == "rows")
    @rule(limit=st.integers(min_value=1, max_value=6))
    def read_rows(self, limit: int) -> None:
        visible = sorted(self.committed - set(self.sent))[:limit]
        step = self.seq.advance(visible, self.before, now=0)
        assert set(step.late + step.ready) <= set(visible)
        self.sent += step.late + step.ready
        self.phase = "after" if self.seq.needs_running_after else "before"

    @precondition(lambda self: self.phase == "after")
    @rule()
    def read_running_after(self) -> None:
        self.seq.wait_for(self._now_running(), now=0)
        self.phase = "before"

    def teardown(self) -> None:
        """Every transaction ends; the relay catches up and has sent every committed row."""
        for taken in self.running.values():
            if taken is not None:
                self.committed.add(taken)
        self.running.clear()
        for _ in range(3 * len(self.committed) + 6):
            if self.phase == "before":
                self.read_running_before()
            elif self.phase == "rows":
                self.read_rows(limit=6)
            else:
                self.read_running_after()
        assert sorted(self.sent) == sorted(self.committed), "a committed row was never sent"
        self.sent_once_in_rising_order()

    @invariant()
    def sent_once_in_rising_order(self) -> None:
        assert self.sent == sorted(set(self.sent)), self.sent


TestOutbox = Outbox.TestCase
TestOutbox.settings = settings(max_examples=800, stateful_step_count=40, deadline=None)
