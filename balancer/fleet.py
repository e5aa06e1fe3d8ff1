"""The balancer's view of the worker fleet: liveness, a circuit breaker per worker fed from its
heartbeats, and the `WorkerView`s the policy decides on. Pure; the monotonic clock is passed in.

Outcomes reach the breaker as deltas of the cumulative counters in consecutive heartbeats of
one incarnation (`boot_id`). Successes carry the worker's processing time (its EMA), so a
worker that crawls opens its breaker like one that fails. A worker's first beat seen by this
balancer is only a baseline: its counters may hold hours of history that says nothing of now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from balancer.breaker import Breaker, BreakerConfig, BreakerSnapshot, BreakerState, Outcome
from balancer.holdings import Rates
from balancer.liveness import Liveness, LivenessEvent, WorkerState
from balancer.policy import WorkerView
from contracts.messages import WorkerHeartbeat


@dataclass(frozen=True)
class BreakerTransition:
    worker_id: str
    from_state: BreakerState
    to_state: BreakerState
    at_mono: float
    boot_id: str


@dataclass(frozen=True)
class Judgement:
    """The balancer's verdict on one worker it still knows (not down)."""

    boot_id: str
    liveness: WorkerState
    breaker: BreakerSnapshot


@dataclass
class Changes:
    """What observing a beat or the clock changed: to log, count and act on (failover)."""

    liveness: list[LivenessEvent] = field(default_factory=list)
    breakers: list[BreakerTransition] = field(default_factory=list)

    def __iadd__(self, other: Changes) -> Changes:
        self.liveness += other.liveness
        self.breakers += other.breakers
        return self


@dataclass
class _Member:
    breaker: Breaker
    boot_id: str
    counters: tuple[int, int, int]  # ok, failed, timed out at the last beat
    beat_mono: float
    reported: BreakerState = "closed"  # the state last announced as a transition
    routed_since: int = 0  # batches routed to it since its last beat


def _counters(beat: WorkerHeartbeat) -> tuple[int, int, int]:
    return beat.batches_ok, beat.batches_failed, beat.batches_timed_out


class Fleet:
    def __init__(self, liveness: Liveness, breaker_config: BreakerConfig,
                 default_capacity_per_s: float = 10.0) -> None:
        self.liveness = liveness
        self.breaker_config = breaker_config
        self.default_capacity_per_s = default_capacity_per_s
        self._members: dict[str, _Member] = {}
        # Told every non-empty Changes, whoever caused it (a beat, the clock): where the
        # balancer records transitions without every caller of observe/poll having to.
        self.listener: Callable[[Changes], None] | None = None

    def observe(self, beat: WorkerHeartbeat, now_mono: float) -> Changes:
        return self._tell(self._observe(beat, now_mono))

    def _observe(self, beat: WorkerHeartbeat, now_mono: float) -> Changes:
        changes = Changes(self.liveness.observe(beat, now_mono))
        wid = beat.worker_id
        if beat.stopping:
            self._members.pop(wid, None)
            return changes
        member = self._members.get(wid)
        if member is None:
            self._members[wid] = _Member(Breaker(self.breaker_config), beat.boot_id,
                                         _counters(beat), now_mono)
            return changes
        now = _counters(beat)
        # A new incarnation counts from zero; counters that went down mean the same.
        before = (0, 0, 0) if member.boot_id != beat.boot_id else member.counters
        if any(n < b for n, b in zip(now, before, strict=True)):
            before = (0, 0, 0)
        ok, failed, timed_out = (n - b for n, b in zip(now, before, strict=True))
        window = self.breaker_config.window  # older outcomes would only be trimmed again
        # Failures first: within one beat the order is unknown, and a half-open breaker
        # should not close on successes of a worker that also failed meanwhile.
        for _ in range(min(failed, window)):
            member.breaker.record(Outcome.FAILURE, 0.0, now_mono)
        for _ in range(min(timed_out, window)):
            member.breaker.record(Outcome.TIMEOUT, 0.0, now_mono)
        for _ in range(min(ok, window)):
            member.breaker.record(Outcome.SUCCESS, beat.processing_ema_s, now_mono)
        member.boot_id, member.counters = beat.boot_id, now
        member.beat_mono, member.routed_since = now_mono, 0
        changes.breakers += self._transitions(now_mono, (wid,))
        return changes

    def poll(self, now_mono: float) -> Changes:
        """Apply the clock: liveness suspect/down, breaker open -> half-open (and a probe that
        never answered -> open). The dead are forgotten, breaker included."""
        changes = Changes(self.liveness.poll(now_mono))
        for event in changes.liveness:
            if event.kind == "worker.down":
                self._members.pop(event.worker_id, None)
        changes.breakers += self._transitions(now_mono, tuple(self._members))
        return self._tell(changes)

    def _tell(self, changes: Changes) -> Changes:
        if self.listener is not None and (changes.liveness or changes.breakers):
            self.listener(changes)
        return changes

    def views(self, now_mono: float, held: Callable[[str], Rates]) -> dict[str, WorkerView]:
        """Every live (up or suspect) worker as the policy sees it now."""
        out: dict[str, WorkerView] = {}
        for wid, state in self.liveness.states(now_mono).items():
            member = self._members.get(wid)
            beat = self.liveness.beat(wid)
            if state == "down" or member is None or beat is None:
                continue
            capacity = beat.capacity_per_s or self.default_capacity_per_s
            drained = capacity * max(0.0, now_mono - member.beat_mono)
            backlog = beat.queue_depth + beat.in_flight + member.routed_since - drained
            breaker = member.breaker
            out[wid] = WorkerView(
                wid, beat.region, frozenset(beat.capabilities), capacity,
                backlog=max(0, round(backlog)), latency_ema_s=beat.processing_ema_s,
                held_per_s=held(wid), liveness=state, breaker=breaker.state(now_mono),
                probe_slots=breaker.probe_slots(now_mono), models=frozenset(beat.models),
            )
        return out

    def routed(self, worker_id: str, now_mono: float, probe: bool = False) -> None:
        member = self._members.get(worker_id)
        if member is None:
            return
        member.routed_since += 1
        if probe:
            # The policy chose it from a view with a free slot, in the same step: taken.
            member.breaker.allow(now_mono)

    def breaker_states(self, now_mono: float) -> dict[str, BreakerState]:
        return {wid: m.breaker.state(now_mono) for wid, m in self._members.items()}

    def judgements(self, now_mono: float, only: Iterable[str] | None = None
                   ) -> dict[str, Judgement]:
        """Workers not yet judged down (all, or those of `only`): liveness and breaker, for
        the database."""
        wanted = self._members if only is None else {w for w in only if w in self._members}
        out = {}
        for wid in wanted:
            member = self._members[wid]
            out[wid] = Judgement(member.boot_id, self.liveness.state(wid, now_mono),
                                 member.breaker.snapshot(now_mono))
        return out

    def snapshot(self, now_mono: float) -> list[dict[str, Any]]:
        """Per worker, for /health and the dashboard: liveness (with phi) and the breaker."""
        states = self.liveness.states(now_mono)
        out: list[dict[str, Any]] = []
        for wid in sorted(self._members):
            member = self._members[wid]
            beat = self.liveness.beat(wid)
            snap = asdict(member.breaker.snapshot(now_mono))
            snap.pop("opened_at_mono")
            out.append({
                "worker_id": wid, "liveness": states.get(wid, "down"),
                "phi": round(min(self.liveness.phi(wid, now_mono), 1e6), 3),
                "breaker": snap,
                "queue_depth": beat.queue_depth if beat else None,
                "in_flight": beat.in_flight if beat else None,
                "capacity_per_s": beat.capacity_per_s if beat else None,
                "processing_ema_s": beat.processing_ema_s if beat else None,
            })
        return out

    def _transitions(self, now_mono: float, worker_ids: tuple[str, ...]
                     ) -> list[BreakerTransition]:
        out = []
        for wid in worker_ids:
            member = self._members[wid]
            state = member.breaker.state(now_mono)
            if state != member.reported:
                out.append(BreakerTransition(wid, member.reported, state, now_mono,
                                             member.boot_id))
                member.reported = state
        return out
