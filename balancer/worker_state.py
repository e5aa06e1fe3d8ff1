"""The balancer's verdicts on the fleet, kept in PostgreSQL for the API and the dashboard.

What is written: every liveness event and breaker transition as a `worker_events` row (also
published to the `registry.events` topic exchange, the kind as routing key), and each worker's
current `liveness`/`breaker` columns on `workers`, at every transition and every `refresh_s`
(a breaker's failure rate moves without transitions).

Who writes: only the active balancer, the one frames.ingress delivers to. A standby judges the
same heartbeats and would write every event a second time. Events a balancer saw while standby
are not replayed when it takes over: the old active one wrote them. A worker the old one
judged up and the new one never hears of is marked down (reason "unheard") once it has gone
unjudged for `SWEEP_REFRESHES` refreshes.

How: the pure part (`record_of`, `refresh_of`, `merge`, `Recorder`) turns the fleet's changes
into `Record`s on a bounded queue, from inside the routing path without awaiting anything;
`Writer` drains the queue in one transaction per batch, off that path. A full queue drops the
record and counts it: the next refresh rewrites the columns, only the events are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import aio_pika
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import AMQPError
from aiormq.exceptions import ChannelInvalidStateError
from sqlalchemy import bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from balancer import metrics
from balancer.breaker import BreakerSnapshot
from balancer.fleet import Changes, Fleet, Judgement
from balancer.liveness import WorkerState
from contracts.messages import WorkerEventKind, WorkerEventMessage
from contracts.tables import worker_events, workers

log = logging.getLogger("camcount.balancer")

# Rows not judged for this many refreshes belong to workers the active balancer does not know.
SWEEP_REFRESHES = 3
_BATCH_MAX = 500  # records merged into one transaction
_PUBLISH_TIMEOUT_S = 5.0
_RETRY_MAX_S = 5.0


@dataclass(frozen=True)
class WorkerEvent:
    worker_id: str
    boot_id: str
    kind: str  # contracts.tables.WORKER_EVENT_KINDS
    reason: str
    at: float  # Unix seconds, the judging balancer's clock
    details: Mapping[str, str | int | float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    worker_id: str
    liveness: WorkerState
    breaker: Mapping[str, Any] | None  # None once down: the balancer has forgotten it
    at: float


@dataclass(frozen=True)
class Record:
    """One unit of work for the writer; several merge into one transaction."""

    events: tuple[WorkerEvent, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    sweep_before: float | None = None  # judged up/suspect before this (Unix s): unheard
    prune_before: float | None = None  # events older than this (Unix s) go

    def __bool__(self) -> bool:
        return bool(self.events or self.verdicts or self.sweep_before or self.prune_before)


def wall(at_mono: float, now_mono: float, now_wall: float) -> float:
    """A monotonic instant on the wall clock, as of now: only wall clocks mean anything to
    another process."""
    return now_wall - (now_mono - at_mono)


def breaker_json(snap: BreakerSnapshot, now_mono: float, now_wall: float) -> dict[str, Any]:
    opened = snap.opened_at_mono
    return {
        "state": snap.state, "failure_rate": round(snap.failure_rate, 4), "calls": snap.calls,
        "failures": snap.failures,
        "opened_at": None if opened is None else round(wall(opened, now_mono, now_wall), 3),
        "probes": {"admitted": snap.probes_admitted, "succeeded": snap.probes_succeeded},
    }


def _verdict(worker_id: str, judged: Mapping[str, Judgement], now_mono: float,
             now_wall: float) -> Verdict:
    j = judged.get(worker_id)
    if j is None:
        return Verdict(worker_id, "down", None, now_wall)
    return Verdict(worker_id, j.liveness, breaker_json(j.breaker, now_mono, now_wall), now_wall)


def record_of(changes: Changes, judged: Mapping[str, Judgement], now_mono: float,
              now_wall: float) -> Record:
    """The events of one batch of changes, and fresh verdicts of the workers they touch."""
    events: list[WorkerEvent] = []
    touched: dict[str, None] = {}  # ordered set
    for e in changes.liveness:
        events.append(WorkerEvent(e.worker_id, e.boot_id, e.kind, e.reason,
                                  wall(e.at_mono, now_mono, now_wall)))
        touched[e.worker_id] = None
    for t in changes.breakers:
        details: dict[str, str | int | float | None] = {"from": t.from_state}
        j = judged.get(t.worker_id)
        if j is not None:
            details |= {"failure_rate": round(j.breaker.failure_rate, 4),
                        "calls": j.breaker.calls, "failures": j.breaker.failures}
        events.append(WorkerEvent(t.worker_id, t.boot_id, f"breaker.{t.to_state}", "",
                                  wall(t.at_mono, now_mono, now_wall), details))
        touched[t.worker_id] = None
    verdicts = tuple(_verdict(w, judged, now_mono, now_wall) for w in touched)
    return Record(tuple(events), verdicts)


def refresh_of(judged: Mapping[str, Judgement], now_mono: float, now_wall: float,
               sweep_before: float | None = None, prune_before: float | None = None) -> Record:
    verdicts = tuple(_verdict(w, judged, now_mono, now_wall) for w in sorted(judged))
    return Record((), verdicts, sweep_before, prune_before)


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge(records: Iterable[Record]) -> Record:
    """Events in order; per worker only the last verdict (each is the whole state)."""
    events: list[WorkerEvent] = []
    verdicts: dict[str, Verdict] = {}
    sweep = prune = None
    for r in records:
        events += r.events
        for v in r.verdicts:
            verdicts.pop(v.worker_id, None)
            verdicts[v.worker_id] = v
        sweep, prune = _latest(sweep, r.sweep_before), _latest(prune, r.prune_before)
    return Record(tuple(events), tuple(verdicts.values()), sweep, prune)


def _clock() -> tuple[float, float]:
    return time.monotonic(), time.time()


class Recorder:
    """Decides what to write and when; never awaits (it runs inside Fleet.observe/poll)."""

    def __init__(self, fleet: Fleet, queue: asyncio.Queue[Record], is_active: Callable[[], bool],
                 refresh_s: float, retention_s: float, prune_s: float,
                 clock: Callable[[], tuple[float, float]] = _clock) -> None:
        self.fleet = fleet
        self.queue = queue
        self.is_active = is_active
        self.refresh_s = refresh_s
        self.retention_s = retention_s
        self.prune_s = prune_s
        self.clock = clock
        self._active_since: float | None = None
        self._refreshed_mono = -math.inf
        self._pruned_mono = -math.inf

    def on_changes(self, changes: Changes) -> None:
        if not self.is_active():
            return  # a standby: the active balancer writes these
        now_mono, now_wall = self.clock()
        touched = {e.worker_id for e in changes.liveness} | {t.worker_id for t in changes.breakers}
        judged = self.fleet.judgements(now_mono, touched)
        self.offer(record_of(changes, judged, now_mono, now_wall))

    def tick(self) -> None:
        """From the balancer's clock task: a refresh every refresh_s while active, and at once
        on becoming active (the columns hold the previous active balancer's verdicts)."""
        if not self.is_active():
            self._active_since = None
            return
        now_mono, now_wall = self.clock()
        if self._active_since is None:
            self._active_since, self._refreshed_mono = now_mono, -math.inf
        if now_mono - self._refreshed_mono < self.refresh_s:
            return
        self._refreshed_mono = now_mono
        sweep_s = SWEEP_REFRESHES * self.refresh_s
        # Only once every live worker has had time to be heard by this balancer.
        sweep = now_wall - sweep_s if now_mono - self._active_since >= sweep_s else None
        prune = None
        if now_mono - self._pruned_mono >= self.prune_s:
            self._pruned_mono, prune = now_mono, now_wall - self.retention_s
        self.offer(refresh_of(self.fleet.judgements(now_mono), now_mono, now_wall, sweep, prune))

    def offer(self, record: Record) -> bool:
        if not record:
            return True
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            metrics.WORKER_STATE_DROPPED.inc()
            log.warning("worker state queue full: dropped %d events, %d verdicts",
                        len(record.events), len(record.verdicts))
            return False
        return True


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def event_body(event_id: int, event: WorkerEvent, judged_by: str) -> bytes:
    """The `registry.events` message: what the row holds, instants as Unix seconds."""
    return WorkerEventMessage(
        id=event_id, worker_id=event.worker_id, boot_id=event.boot_id,
        kind=cast(WorkerEventKind, event.kind), reason=event.reason, at=event.at,
        details=dict(event.details), judged_by=judged_by,
    ).model_dump_json().encode()


class Writer:
    """Drains the recorder's queue: one transaction per batch, then the events published."""

    def __init__(self, engine: AsyncEngine, queue: asyncio.Queue[Record], judged_by: str,
                 exchange: Callable[[], AbstractExchange | None]) -> None:
        self.engine = engine
        self.queue = queue
        self.judged_by = judged_by
        self.exchange = exchange  # None: not connected yet; events then stay in the table only

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop, then what is queued by then (unless the database is unreachable)."""
        while not (stop.is_set() and self.queue.empty()):
            records: list[Record] = []
            if self.queue.empty():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):  # to notice stop
                        records.append(await self.queue.get())
            while len(records) < _BATCH_MAX and not self.queue.empty():
                records.append(self.queue.get_nowait())
            if records:
                await self._flush(merge(records), stop)

    async def _flush(self, record: Record, stop: asyncio.Event) -> None:
        delay_s = 0.1
        while True:
            try:
                async with self.engine.begin() as conn:
                    written = await self._write(conn, record)
                break
            except (SQLAlchemyError, OSError) as exc:
                metrics.WORKER_STATE_ERRORS.labels("database").inc()
                if stop.is_set():
                    metrics.WORKER_STATE_DROPPED.inc()
                    log.warning("worker state not written at shutdown: %s", exc)
                    return
                log.warning("worker state write failed (retrying in %.1f s): %s", delay_s, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay_s)
                delay_s = min(delay_s * 2, _RETRY_MAX_S)
        for _, event in written:
            metrics.WORKER_EVENTS_WRITTEN.labels(event.kind).inc()
        await self._publish(written)

    async def _write(self, conn: AsyncConnection, record: Record
                     ) -> list[tuple[int, WorkerEvent]]:
        me = self.judged_by
        if record.verdicts:
            # Only rows the registry created from heartbeats: a worker without one yet gets its
            # columns at the next refresh.
            stmt = (update(workers).where(workers.c.id == bindparam("wid"))
                    .values(liveness=bindparam("liveness"), breaker=bindparam("breaker"),
                            judged_by=me, judged_at=bindparam("at")))
            await conn.execute(stmt, [
                {"wid": v.worker_id, "liveness": v.liveness,
                 "breaker": None if v.breaker is None else dict(v.breaker), "at": _ts(v.at)}
                for v in record.verdicts
            ])
        events = list(record.events)
        if record.sweep_before is not None:
            now = time.time()
            unheard = await conn.execute(
                update(workers)
                .where(workers.c.liveness.in_(("up", "suspect")),
                       workers.c.judged_at < _ts(record.sweep_before))
                .values(liveness="down", breaker=None, judged_by=me, judged_at=_ts(now))
                .returning(workers.c.id, workers.c.boot_id))
            for row in unheard:
                log.info("worker.down %s boot=%s (unheard: judged by an earlier balancer)",
                         row.id, row.boot_id)
                events.append(WorkerEvent(row.id, row.boot_id, "worker.down", "unheard", now))
        ids: list[int] = []
        if events:
            rows = await conn.execute(
                worker_events.insert().returning(worker_events.c.id,
                                                 sort_by_parameter_order=True),
                [{"worker_id": e.worker_id, "boot_id": e.boot_id, "kind": e.kind,
                  "reason": e.reason, "at": _ts(e.at), "details": dict(e.details),
                  "judged_by": me} for e in events])
            ids = [int(r.id) for r in rows]
        if record.prune_before is not None:
            await conn.execute(worker_events.delete().where(
                worker_events.c.at < _ts(record.prune_before)))
        return list(zip(ids, events, strict=True))

    async def _publish(self, written: list[tuple[int, WorkerEvent]]) -> None:
        exchange = self.exchange()
        if exchange is None:
            return
        for event_id, event in written:
            message = aio_pika.Message(
                event_body(event_id, event, self.judged_by), content_type="application/json",
                message_id=f"worker-event-{event_id}",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            try:
                await exchange.publish(message, routing_key=event.kind,
                                       timeout=_PUBLISH_TIMEOUT_S)
            except (AMQPError, ConnectionError, TimeoutError, ChannelInvalidStateError) as exc:
                # The row is the record; the message is a notification that may be missed.
                # ChannelInvalidStateError: the broker restarted and the robust channel is
                # not reopened yet (it is a RuntimeError, and killed the balancer).
                metrics.WORKER_STATE_ERRORS.labels("publish").inc()
                log.warning("worker event %d not published: %s", event_id, exc)
