"""The outbox relay: committed rows -> `results.counts` / `results.alerts` and the WebSocket hub.

At least once towards AMQP (a crash between publish and commit republishes; consumers dedupe
by event_seq). Rows go out in id order (broadcaster/sequencer.py), so event_seq only rises for
every client and a resume point leaves nothing behind it. One relay per database: the hub of a
broadcaster is fed by its own relay only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractExchange
from sqlalchemy import ColumnElement, Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broadcaster import metrics
from broadcaster.cameras import CameraDirectory
from broadcaster.events import BadRow, Event, OutboxRow, build
from broadcaster.hub import Hub
from broadcaster.sequencer import Sequencer
from broadcaster.subscription import Subscription
from contracts.messages import CountUpdate
from contracts.tables import outbox

log = logging.getLogger("camcount.broadcaster")

_COLUMNS = (outbox.c.id, outbox.c.topic, outbox.c.camera_id, outbox.c.region, outbox.c.payload)
_RUNNING = text("SELECT coalesce(array_agg(x::text::bigint), '{}') "
                "FROM pg_snapshot_xip(pg_current_snapshot()) AS x")


async def running_transactions(conn: AsyncConnection) -> frozenset[int]:
    return frozenset((await conn.execute(_RUNNING)).scalar_one())


async def to_event(row: OutboxRow, cameras: CameraDirectory) -> Event:
    site = await cameras.site_of(row.camera_id) if row.topic == "counts" and row.camera_id \
        else None
    return build(row, site, time.time())


async def first_watermark(engine: AsyncEngine) -> int:
    """Everything below the oldest unpublished row (else every row) counts as relayed. A row
    with a lower id still being committed at this moment is relayed late (out of order)."""
    async with engine.connect() as conn:
        oldest = (await conn.execute(select(func.min(outbox.c.id))
                                     .where(outbox.c.published_at.is_(None)))).scalar_one()
        if oldest is not None:
            return int(oldest) - 1
        newest = (await conn.execute(select(func.max(outbox.c.id)))).scalar_one()
        return int(newest or 0)


@dataclass(frozen=True)
class Round:
    relayed: int
    full: bool  # the batch was full: more rows are probably waiting
    blocked: bool  # rows wait behind a gap: look again soon


class Relay:
    def __init__(self, engine: AsyncEngine, exchanges: dict[str, AbstractExchange], hub: Hub,
                 cameras: CameraDirectory, sequencer: Sequencer, batch: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.exchanges, self.hub, self.cameras = engine, exchanges, hub, cameras
        self.sequencer, self.batch, self.clock = sequencer, batch, clock

    async def round(self) -> Round:
        events: list[Event] = []
        seq = self.sequencer
        try:
            async with self.engine.begin() as conn:
                before = await running_transactions(conn) if seq.waiting else None
                rows = [OutboxRow.of(r) for r in await conn.execute(
                    select(*_COLUMNS).where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id).limit(self.batch).with_for_update(skip_locked=True))]
                step = seq.advance([r.id for r in rows], before, self.clock())
                if seq.needs_running_after:
                    seq.wait_for(await running_transactions(conn), self.clock())
                if step.gave_up:
                    metrics.GAPS_GIVEN_UP.inc()
                    log.warning("an outbox id stayed missing for %ss: relaying past it (should "
                                "it still commit, it is relayed late)", seq.gap_timeout_s)
                if step.late:
                    metrics.LATE.inc(len(step.late))
                by_id = {r.id: r for r in rows}
                chosen = step.late + step.ready
                for row_id in chosen:
                    try:
                        events.append(await to_event(by_id[row_id], self.cameras))
                    except BadRow as exc:
                        metrics.BAD_ROWS.inc()
                        log.error("not relayed: %s", exc)
                for event in events:
                    await self.exchanges[event.exchange].publish(
                        aio_pika.Message(event.message.model_dump_json().encode(),
                                         content_type="application/json",
                                         message_id=str(event.seq),
                                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=event.routing_key)
                self.hub.begin(e.seq for e in events)
                if chosen:
                    await conn.execute(outbox.update().where(outbox.c.id.in_(chosen))
                                       .values(published_at=func.now()))
            # Committed: hand the events to the clients before anything else can run, so a
            # replay never sees a row published that the live path has not queued yet.
            metrics.DROPPED.inc(len(self.hub.publish(events)))
        finally:
            self.hub.end(e.seq for e in events)
        now = time.time()
        for event in events:
            if isinstance(event.message, CountUpdate):
                metrics.RELAY_LAG.observe(max(0.0, now - event.message.committed_at))
        metrics.RELAYED.inc(len(events))
        return Round(len(events), len(rows) == self.batch, step.blocked)


async def newest_seq(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.max(outbox.c.id)))).scalar_one() or 0)


def _replay_query(after: int, subscription: Subscription, limit: int) -> Select[tuple[object, ...]]:
    query = (select(*_COLUMNS)
             .where(outbox.c.id > after, outbox.c.published_at.is_not(None))
             .order_by(outbox.c.id).limit(limit))
    wanted: list[ColumnElement[bool]] = []
    if subscription.cameras is not None:
        wanted += [outbox.c.camera_id.in_(subscription.cameras),
                   outbox.c.region.in_(subscription.regions)]
        if subscription.alerts:
            wanted.append(outbox.c.topic == "alerts")
        query = query.where(or_(*wanted))
    elif not subscription.alerts:
        query = query.where(outbox.c.topic == "counts")
    return query


async def replay_page(engine: AsyncEngine, after: int, subscription: Subscription,
                      limit: int) -> list[OutboxRow]:
    """Published rows after `after` that may match the subscription (its site is checked on
    the events), oldest first."""
    async with engine.connect() as conn:
        return [OutboxRow.of(r) for r in
                await conn.execute(_replay_query(after, subscription, limit))]
