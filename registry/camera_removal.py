"""Deleting a camera: everything that names it goes in one transaction.

Counts, lines, zones, progress, lease, status and snapshot go by the foreign keys' cascade.
Rows without one go explicitly, so that an id registered again later (perhaps by another
site) inherits nothing: its status history (camera_events) and its relayed events (outbox,
which a WebSocket client could otherwise replay). Its open alerts are resolved first, each with
its event, so dashboards and webhooks see them end instead of vanishing with the cascade.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.alerting import OPEN_STATES
from contracts.tables import alert_rules, alerts, camera_events, cameras, outbox
from registry.alerting.alert_store import resolve_for_deleted_camera
from registry.alerting.events import Change
from registry.repository import visible


async def delete_camera(engine: AsyncEngine, camera_id: str, site: str | None,
                        ) -> list[Change] | None:
    """The alert changes to send as webhooks; None for a camera the site does not see."""
    async with engine.begin() as conn:
        found = (await conn.execute(select(cameras.c.id).where(visible(camera_id, site))
                                    .with_for_update())).first()
        if found is None:
            return None
        webhooks = dict((await conn.execute(
            select(alert_rules.c.id, alert_rules.c.webhook_url).where(alert_rules.c.id.in_(
                select(alerts.c.rule_id).where(alerts.c.camera_id == camera_id,
                                               alerts.c.state.in_(OPEN_STATES)))))).all())
        await conn.execute(outbox.delete().where(outbox.c.camera_id == camera_id,
                                                 outbox.c.topic == "counts"))
        await conn.execute(camera_events.delete().where(camera_events.c.camera_id == camera_id))
        changes = await resolve_for_deleted_camera(conn, camera_id, webhooks)
        await conn.execute(cameras.delete().where(cameras.c.id == camera_id))
    return changes
