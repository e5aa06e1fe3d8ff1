"""The outbox relay: committed results -> `results.counts` exchange and the WebSocket hub.

At least once towards AMQP (a crash between publish and commit republishes; consumers dedupe
by event_seq). Rows are claimed with SKIP LOCKED so several relays can run.
"""

from __future__ import annotations

import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broadcaster import metrics
from broadcaster.hub import Hub
from contracts.broker import results_routing_key
from contracts.messages import CountUpdate
from contracts.tables import outbox


def to_update(row: Any) -> CountUpdate:
    p = row.payload
    return CountUpdate(
        event_seq=row.id, camera_id=row.camera_id, region=row.region, batch_id=p["batch_id"],
        captured_at=p["captured_at"], committed_at=p["committed_at"], delta=p["delta"],
        totals=p["totals"], occupancy=p.get("occupancy", {}),
    )


async def relay_once(
    engine: AsyncEngine, exchange: AbstractExchange, hub: Hub, limit: int
) -> list[CountUpdate]:
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return []
        updates = [to_update(r) for r in rows]
        for update in updates:
            await exchange.publish(
                aio_pika.Message(update.model_dump_json().encode(),
                                 content_type="application/json",
                                 message_id=str(update.event_seq),
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=results_routing_key(update.region, update.camera_id),
            )
        await conn.execute(
            outbox.update()
            .where(outbox.c.id.in_([r.id for r in rows]))
            .values(published_at=func.now())
        )
    now = time.time()
    for update in updates:
        metrics.RELAY_LAG.observe(max(0.0, now - update.committed_at))
        event = {"type": "counts", **update.model_dump(mode="json")}
        dropped = hub.publish(update.camera_id, event)
        metrics.DROPPED.inc(len(dropped))
    metrics.RELAYED.inc(len(updates))
    return updates


async def replay(
    engine: AsyncEngine, after_seq: int, cameras: set[str] | None, limit: int
) -> list[CountUpdate]:
    """Already-published events after `after_seq`, for a client resuming after a reconnect."""
    query = (
        select(outbox)
        .where(outbox.c.id > after_seq, outbox.c.published_at.is_not(None))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    if cameras is not None:
        query = query.where(outbox.c.camera_id.in_(cameras))
    async with engine.connect() as conn:
        return [to_update(r) for r in await conn.execute(query)]
