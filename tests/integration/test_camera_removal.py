"""Deleting a camera takes everything that names it: an id registered again later (perhaps by
another site) inherits no status history and no replayable events, and its open alerts are
resolved with an event instead of vanishing with the cascade."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.messages import AlertEvent
from contracts.tables import alert_rules, alerts, camera_events, outbox

CAMERA = {"id": "door", "name": "door", "url": "rtsp://u:secret@10.0.0.9/stream",
          "site": "shop-a"}


async def test_delete_resolves_open_alerts_and_leaves_nothing_to_inherit(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    assert (await api.post("/api/cameras", json=CAMERA)).status_code == 201
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        rule_id = (await conn.execute(alert_rules.insert().values(
            site="shop-a", name="dark", kind="camera_status", camera_id="door", threshold=0.5,
        ).returning(alert_rules.c.id))).scalar_one()
        await conn.execute(alerts.insert().values(
            rule_id=rule_id, site="shop-a", camera_id="door", subject="door", state="firing",
            message="dark: door is stalled", value=1, threshold=0.5, fired_at=now))
        await conn.execute(camera_events.insert().values(
            camera_id="door", status="live", reason="frames arriving", at=now))
        await conn.execute(outbox.insert().values(
            camera_id="door", region="local", topic="counts", payload={"batch_id": "x"}))

    assert (await api.delete("/api/cameras/door")).status_code == 204

    async with engine.connect() as conn:
        leftover = {
            "events": (await conn.execute(sa.select(sa.func.count()).select_from(camera_events)
                                          )).scalar_one(),
            "counts": (await conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                          .where(outbox.c.topic == "counts"))).scalar_one(),
            "alerts": (await conn.execute(sa.select(sa.func.count()).select_from(alerts))
                       ).scalar_one(),
        }
        relayed = (await conn.execute(sa.select(outbox.c.id, outbox.c.payload)
                                      .where(outbox.c.topic == "alerts"))).all()
    assert leftover == {"events": 0, "counts": 0, "alerts": 0}
    (row,) = relayed
    event = AlertEvent.model_validate({**row.payload, "event_seq": row.id})
    assert (event.state, event.camera_id, event.site) == ("resolved", "door", "shop-a")

    # The same id registered again starts with a clean history.
    again = await api.post("/api/cameras", json={**CAMERA, "site": "shop-b"})
    assert again.status_code == 201
    assert (await api.get("/api/cameras/door/events")).json() == []
