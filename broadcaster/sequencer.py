"""In which order outbox rows may be relayed, so that event_seq only ever rises. Pure.

Outbox ids are handed out when a transaction inserts its row, but transactions commit in any
order: id 101 may be visible while 100 is still being committed. Relaying 101 at once and 100
later would send a client 100 after 101; a client resuming from 101 would then never get 100.
So rows are relayed in id order, and a missing id (a gap) holds back the rows above it until
the gap is settled: its id is either committed (and relayed) or known never to come (its
transaction rolled back, or a sequence value was skipped).

A gap is known never to come once every transaction that was running just after a row above
it became visible has ended: a missing id was taken before that row's id, so by a transaction
that had begun by then (every outbox writer writes something before its outbox row, so it
holds a transaction id). The caller reads the running transaction ids from PostgreSQL
(`pg_current_snapshot()`), once after reading the rows when a new wait starts, and once before
reading the rows while a wait is open. A transaction running for longer than `gap_timeout_s`
(a bulk import, a session left idle in a transaction) only delays the relay that long: after
it the gap is given up, and should its row still come it is relayed late, out of order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    late: list[int]  # ids at or below the watermark: relay at once (they can only come late)
    ready: list[int]  # ids to relay now, rising
    blocked: bool  # rows above a gap are held back
    gave_up: bool = False  # a wait ended by timeout


@dataclass(frozen=True)
class _Wait:
    cover: int  # the gap's ids are at most this: taken before a row already seen
    running: frozenset[int]  # transactions that may still hold one of them
    since: float


@dataclass
class Sequencer:
    watermark: int  # every id up to here is relayed or settled as never coming
    gap_timeout_s: float
    _settled_to: int = field(default=0, init=False)  # ids up to here not seen: never coming
    _wait: _Wait | None = field(default=None, init=False)
    _needs_wait: bool = field(default=False, init=False)
    _seen_max: int = field(default=0, init=False)

    @property
    def waiting(self) -> bool:
        """A gap's wait is open: read the running transactions before the rows."""
        return self._wait is not None

    @property
    def needs_running_after(self) -> bool:
        """The last step found a gap nothing waits on yet: call `wait_for` with the
        transactions running now (read after the rows were)."""
        return self._needs_wait

    def advance(self, visible: Iterable[int], running_before: frozenset[int] | None,
                now: float) -> Step:
        """The unpublished ids visible now (the smallest ones, any order) -> what to relay."""
        ids = sorted(set(visible))
        late = [i for i in ids if i <= self.watermark]
        ahead = [i for i in ids if i > self.watermark]
        gave_up = False
        if self._wait is not None:
            ended = running_before is not None and not self._wait.running & running_before
            gave_up = not ended and now - self._wait.since >= self.gap_timeout_s
            if ended or gave_up:
                self._settled_to = max(self._settled_to, self._wait.cover)
                self._wait = None
        ready: list[int] = []
        blocked = False
        for i in ahead:
            if i - 1 > max(self.watermark, self._settled_to):
                blocked = True
                break
            ready.append(i)
            self.watermark = i
        if ahead:
            self._seen_max = max(self._seen_max, ahead[-1])
        if self._wait is not None and self.watermark >= self._wait.cover:
            self._wait = None  # its gap was filled after all
        self._needs_wait = blocked and self._wait is None
        return Step(late, ready, blocked, gave_up)

    def wait_for(self, running: frozenset[int], now: float) -> None:
        self._wait = _Wait(self._seen_max, running, now)
        self._needs_wait = False
