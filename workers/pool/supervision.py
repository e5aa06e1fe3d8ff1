"""The pool's decisions, free of I/O: when each worker is spawned, how long to back off after a
crash, which workers a stop request takes, how many an `ensure` adds, which idle ones to reap.

The service executes these decisions (spawn, SIGTERM) and reports back what happened (spawned,
exited, observed). Time comes from an injected clock and jitter from an injected random source,
so the tests replay crash loops and idle timeouts without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Clock(Protocol):
    def mono(self) -> float: ...
    def wall(self) -> float: ...


class SystemClock:
    def mono(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class WorkerStatus(StrEnum):
    STARTING = "starting"  # spawn scheduled (start stagger) or process up, not yet consuming
    RUNNING = "running"  # its /health says it consumes its queue
    STOPPING = "stopping"  # stopped on purpose, draining
    STOPPED = "stopped"  # stopped on purpose; never restarted
    CRASHED = "crashed"  # exited on its own RESTART_LIMIT times in a row: given up
    BACKOFF = "backoff"  # exited on its own; respawns when its back-off ends


class PoolFull(Exception):
    """More workers asked for than MAX_WORKERS allows."""


class Draining(Exception):
    """The pool is shutting down: it starts nothing new."""


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float
    max_s: float
    multiplier: float = 2.0
    jitter_ratio: float = 0.2
    reset_after_s: float = 60.0
    limit: int = 0  # consecutive crashes before giving up; 0 = never give up

    def delay_s(self, failures: int, unit_random: float) -> float:
        """Delay before the restart that follows crash number `failures` in a row (1 = the
        first). Jitter spreads workers that crashed together (a broker restart) so they do not
        all reconnect in the same instant; it never lifts a delay over the cap."""
        exponent = min(max(0, failures - 1), 200)  # 2.0 ** 200 is still a finite float
        base = min(self.max_s, self.initial_s * self.multiplier**exponent)
        jittered = base * (1.0 + self.jitter_ratio * (2.0 * unit_random - 1.0))
        return max(0.0, min(self.max_s, jittered))

    def failures_after_crash(self, previous: int, uptime_s: float) -> int:
        """A worker that stayed up RESTART_RESET_AFTER_S was healthy: its next crash is
        treated as a first one, not as the next step of an old crash loop."""
        return 1 if uptime_s >= self.reset_after_s else previous + 1

    def gives_up(self, failures: int) -> bool:
        return self.limit > 0 and failures > self.limit


@dataclass
class Slot:
    """One worker id the pool keeps, across the processes that have served it (a restarted
    worker keeps its id, so its queue, assignments and tracker checkpoints stay its own)."""

    worker_id: str
    type_name: str
    created_at: float  # wall clock
    idle_timeout_s: float | None
    gpu: str | None  # CUDA_VISIBLE_DEVICES for its processes; None = not pinned
    ops_port: int | None  # fixed (WORKER_OPS_PORT_BASE) or chosen at each spawn
    last_activity_mono: float
    last_activity_at: float  # wall clock, for the status
    status: WorkerStatus = WorkerStatus.STARTING
    pid: int | None = None
    due_mono: float | None = None  # when the next spawn is due; None while one is under way
    started_mono: float | None = None
    stop_requested: bool = False
    spawns: int = 0
    failures: int = 0  # consecutive crashes, for the back-off
    jobs_before: int = 0  # batches processed by this slot's earlier processes
    processed: int = 0  # by the current process, from its /health
    in_flight: int = 0
    observed_mono: float | None = None  # last successful /health poll
    last_exit_code: int | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.spawns - 1)

    @property
    def job_count(self) -> int:
        return self.jobs_before + self.processed

    @property
    def wanted(self) -> bool:
        """Counts toward its type's size: it runs, or will run again."""
        return not self.stop_requested and self.status in (
            WorkerStatus.STARTING, WorkerStatus.RUNNING, WorkerStatus.BACKOFF)

    @property
    def spawning(self) -> bool:
        return self.pid is None and self.due_mono is None and self.status in (
            WorkerStatus.STARTING, WorkerStatus.STOPPING)


def choose_gpu(gpus: Sequence[str], in_use: Sequence[str | None]) -> str | None:
    """Round robin that survives churn: the GPU serving the fewest workers, the first on ties."""
    if not gpus:
        return None
    return min(gpus, key=lambda gpu: (in_use.count(gpu), gpus.index(gpu)))


class PoolState:
    """Every slot of the pool and the rules that move them between statuses."""

    def __init__(
        self, pool_id: str, policy: BackoffPolicy, *, stagger_s: float, max_workers: int,
        clock: Clock, gpus: Sequence[str] = (), ops_port_base: int = 0,
        unit_random: Callable[[], float] = random.random, history_limit: int = 100,
    ) -> None:
        self.pool_id = pool_id
        self.policy = policy
        self.stagger_s = stagger_s
        self.max_workers = max_workers
        self.clock = clock
        self.gpus = tuple(gpus)
        self.ops_port_base = ops_port_base
        self.unit_random = unit_random
        self.history_limit = history_limit
        self.slots: dict[str, Slot] = {}
        self.draining = False
        self._next_spawn_mono = float("-inf")

    # -- queries ---------------------------------------------------------------------------

    def get(self, worker_id: str) -> Slot | None:
        return self.slots.get(worker_id)

    def wanted(self, type_name: str | None = None) -> list[Slot]:
        return [s for s in self.slots.values()
                if s.wanted and (type_name is None or s.type_name == type_name)]

    def live(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.pid is not None]

    def busy_spawning(self) -> bool:
        return any(s.spawning for s in self.slots.values())

    def due_spawns(self) -> list[Slot]:
        """Slots whose spawn (first start or restart) is due now; each is marked as under way,
        and the caller reports `spawned` or `spawn_failed` for it."""
        if self.draining:
            return []
        now = self.clock.mono()
        due = sorted((s for s in self.slots.values() if s.wanted and s.pid is None
                      and s.due_mono is not None and s.due_mono <= now),
                     key=lambda s: s.due_mono or 0.0)
        for slot in due:
            slot.due_mono = None
        return due

    def next_due_mono(self) -> float | None:
        dues = [s.due_mono for s in self.slots.values()
                if s.wanted and s.pid is None and s.due_mono is not None]
        return min(dues) if dues and not self.draining else None

    # -- requests --------------------------------------------------------------------------

    def start(self, type_name: str, count: int, idle_timeout_s: float | None = None,
              gpu: str | None = None) -> list[str]:
        """Add `count` workers of a type; their spawns are spaced START_STAGGER_S apart (so
        model loads and broker connections do not all land at once). `gpu` pins them; else
        they are spread over the GPUs present."""
        if self.draining:
            raise Draining("the pool is draining; it starts no workers")
        if count < 0:
            raise ValueError("count must not be negative")
        if len(self.wanted()) + count > self.max_workers:
            raise PoolFull(f"{count} more would exceed MAX_WORKERS={self.max_workers} "
                           f"({len(self.wanted())} running or starting)")
        now, wall = self.clock.mono(), self.clock.wall()
        started = []
        for _ in range(count):
            worker_id = self._free_id(type_name)
            due = max(now, self._next_spawn_mono + self.stagger_s)
            self._next_spawn_mono = due
            self.slots.pop(worker_id, None)  # an old stopped slot of that id: history only
            self.slots[worker_id] = Slot(
                worker_id, type_name, wall, idle_timeout_s,
                gpu if gpu is not None else choose_gpu(self.gpus, self._gpus_in_use()),
                self._free_ops_port(), now, wall, due_mono=due,
            )
            started.append(worker_id)
        return started

    def ensure(self, type_name: str, count: int, idle_timeout_s: float | None = None,
               gpu: str | None = None) -> list[str]:
        """At least `count` of the type running or about to: starts only the difference, never
        more, and never stops any (shrinking is an explicit stop)."""
        if self.draining:
            raise Draining("the pool is draining; it starts no workers")
        missing = max(0, count - len(self.wanted(type_name)))
        return self.start(type_name, missing, idle_timeout_s, gpu) if missing else []

    def choose_to_stop(self, type_name: str, count: int) -> list[str]:
        """Which workers of a type a `stop {type, count}` takes: those with no process first
        (nothing to drain), then those still starting, then running ones longest idle first,
        busy ones last."""
        now = self.clock.mono()

        def cost(slot: Slot) -> tuple[int, int, float]:
            if slot.pid is None:
                return (0, 0, 0.0)
            if slot.status is WorkerStatus.STARTING:
                return (1, 0, 0.0)
            return (2, slot.in_flight, -(now - slot.last_activity_mono))

        ranked = sorted(self.wanted(type_name), key=cost)
        return [s.worker_id for s in ranked[:max(0, count)]]

    def request_stop(self, worker_id: str) -> bool:
        """Stop a worker on purpose; it is never restarted. True when it has a process to
        SIGTERM (the worker then drains: it finishes the batch in hand and deregisters)."""
        slot = self.slots[worker_id]
        if slot.status is WorkerStatus.STOPPED:
            return False
        slot.stop_requested = True
        if slot.pid is None and not slot.spawning:
            self._stopped(slot)
            return False
        slot.status = WorkerStatus.STOPPING
        return slot.pid is not None

    def drain(self) -> list[str]:
        """Stop every worker for shutdown; the ids with a process to SIGTERM."""
        self.draining = True
        # request_stop may prune old history: iterate over a copy and skip what it removed.
        return [worker_id for worker_id in list(self.slots)
                if worker_id in self.slots and self.request_stop(worker_id)]

    # -- reports from the I/O side ---------------------------------------------------------

    def spawned(self, worker_id: str, pid: int, ops_port: int | None) -> bool:
        """A process now serves the slot. False when a stop came in during the spawn: the
        caller SIGTERMs it at once."""
        slot = self.slots[worker_id]
        now = self.clock.mono()
        slot.spawns += 1
        slot.pid, slot.ops_port, slot.started_mono, slot.due_mono = pid, ops_port, now, None
        slot.processed = slot.in_flight = 0
        slot.observed_mono = None
        slot.last_activity_mono, slot.last_activity_at = now, self.clock.wall()
        if slot.stop_requested:
            slot.status = WorkerStatus.STOPPING
            return False
        slot.status = WorkerStatus.STARTING
        return True

    def spawn_failed(self, worker_id: str) -> None:
        self.exited(worker_id, None)

    def exited(self, worker_id: str, returncode: int | None) -> None:
        """A process ended. Stopped on purpose (or draining): the slot is done. Otherwise it is
        a crash, whatever the exit code: the pool wants that worker, so it comes back after its
        back-off."""
        slot = self.slots[worker_id]
        now = self.clock.mono()
        uptime_s = now - slot.started_mono if slot.started_mono is not None else 0.0
        slot.jobs_before += slot.processed
        slot.pid, slot.processed, slot.in_flight, slot.started_mono = None, 0, 0, None
        slot.last_exit_code = returncode
        if slot.stop_requested or self.draining:
            slot.stop_requested = True
            self._stopped(slot)
            return
        slot.failures = self.policy.failures_after_crash(slot.failures, uptime_s)
        if self.policy.gives_up(slot.failures):
            slot.status, slot.due_mono = WorkerStatus.CRASHED, None
            return
        slot.status = WorkerStatus.BACKOFF
        slot.due_mono = now + self.policy.delay_s(slot.failures, self.unit_random())

    def observed(self, worker_id: str, *, ok: bool, processed: int, in_flight: int) -> bool:
        """A /health poll of the slot's process. True when this made it `running`."""
        slot = self.slots.get(worker_id)
        if slot is None or slot.pid is None:
            return False
        now = self.clock.mono()
        if processed != slot.processed or in_flight > 0:
            slot.last_activity_mono, slot.last_activity_at = now, self.clock.wall()
        slot.processed, slot.in_flight, slot.observed_mono = processed, in_flight, now
        if ok and slot.status is WorkerStatus.STARTING and not slot.stop_requested:
            # Idle time counts from readiness: a slow model load is not idleness.
            slot.status = WorkerStatus.RUNNING
            slot.last_activity_mono, slot.last_activity_at = now, self.clock.wall()
            return True
        return False

    def reap_due(self, fresh_within_s: float) -> list[str]:
        """On-demand workers idle for their idle timeout. Only on a recent poll that showed
        nothing in flight: a worker the pool cannot see is never assumed idle."""
        now = self.clock.mono()
        return [
            s.worker_id for s in self.slots.values()
            if s.idle_timeout_s is not None and s.status is WorkerStatus.RUNNING
            and not s.stop_requested and s.in_flight == 0 and s.observed_mono is not None
            and now - s.observed_mono <= fresh_within_s
            and now - s.last_activity_mono >= s.idle_timeout_s
        ]

    # -- internals -------------------------------------------------------------------------

    def _stopped(self, slot: Slot) -> None:
        slot.status, slot.due_mono = WorkerStatus.STOPPED, None
        stopped = [s.worker_id for s in self.slots.values()
                   if s.status is WorkerStatus.STOPPED and s is not slot]
        for worker_id in stopped[: max(0, len(stopped) + 1 - self.history_limit)]:
            del self.slots[worker_id]

    def _taken(self) -> list[Slot]:
        return [s for s in self.slots.values()
                if s.status is not WorkerStatus.STOPPED or s.pid is not None]

    def _free_id(self, type_name: str) -> str:
        """The lowest free index of the type: a worker started again after a stop takes the
        old id back, and with it whatever batches were left in its queue."""
        taken = {s.worker_id for s in self._taken()}
        index = 0
        while f"{self.pool_id}-{type_name}-{index}" in taken:
            index += 1
        return f"{self.pool_id}-{type_name}-{index}"

    def _gpus_in_use(self) -> list[str | None]:
        return [s.gpu for s in self._taken()]

    def _free_ops_port(self) -> int | None:
        if not self.ops_port_base:
            return None
        taken = {s.ops_port for s in self._taken()}
        port = self.ops_port_base
        while port in taken:
            port += 1
        return port
