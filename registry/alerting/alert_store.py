"""Alerts in PostgreSQL. Every change of state writes its outbox row (topic 'alerts') in the
same transaction and NOTIFYs the relay; the partial unique index `uq_alerts_open` keeps one
open alert per (rule, subject) whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.alerting import OPEN_STATES, AlertState
from contracts.messages import AlertEvent
from contracts.tables import OUTBOX_CHANNEL, alert_rules, alerts, cameras, outbox
from registry.alerting.events import (
    Change,
    StoredAlert,
    ack_message,
    event_for,
    fire_message,
    outbox_values,
    resolve_message,
)
from registry.alerting.measures import SubjectReadings
from registry.alerting.rule_store import StoredRule
from registry.alerting.rules import MAX_COOLDOWN_S, AckOutcome, Key, OpenAlert, Transition
from registry.alerting.rules import acknowledge as ack_transition

_COLUMNS = (*alerts.c, alert_rules.c.name.label("rule_name"), alert_rules.c.kind)


def _stored(row: Any) -> StoredAlert:
    m = row._mapping
    return StoredAlert(**{name: m[name] for name in StoredAlert.__dataclass_fields__})


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def visible(site: str | None) -> ColumnElement[bool]:
    """Alerts a key of `site` sees: a fleet-wide alert (site NULL) only keys of every site."""
    return true() if site is None else alerts.c.site == site


def _query(site: str | None) -> Select[Any]:
    return (select(*_COLUMNS).join(alert_rules, alert_rules.c.id == alerts.c.rule_id)
            .where(visible(site)))


async def _emit(conn: AsyncConnection, event: AlertEvent) -> AlertEvent:
    seq = (await conn.execute(outbox.insert().values(**outbox_values(event))
                              .returning(outbox.c.id))).scalar_one()
    return event.model_copy(update={"event_seq": int(seq)})


async def _notify(conn: AsyncConnection) -> None:
    await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


async def _regions(conn: AsyncConnection, camera_ids: set[str]) -> dict[str, str]:
    if not camera_ids:
        return {}
    rows = await conn.execute(select(cameras.c.id, cameras.c.region)
                              .where(cameras.c.id.in_(sorted(camera_ids))))
    return {r.id: r.region for r in rows}


# --- the evaluator's side ---

async def open_alerts(conn: AsyncConnection) -> tuple[dict[Key, OpenAlert], dict[str, int]]:
    """The open alerts by (rule, subject), and how many there are in each open state."""
    rows = await conn.execute(
        select(alerts.c.id, alerts.c.rule_id, alerts.c.subject, alerts.c.state,
               alerts.c.fired_at).where(alerts.c.state.in_(OPEN_STATES)))
    found: dict[Key, OpenAlert] = {}
    states = dict.fromkeys(OPEN_STATES, 0)
    for r in rows:
        found[(r.rule_id, r.subject)] = OpenAlert(r.id, r.fired_at.timestamp())
        states[r.state] += 1
    return found, states


async def last_resolutions(conn: AsyncConnection, now: float) -> dict[Key, float]:
    """When each (rule, subject) last resolved, within the longest possible cooldown."""
    rows = await conn.execute(
        select(alerts.c.rule_id, alerts.c.subject, func.max(alerts.c.resolved_at).label("at"))
        .where(alerts.c.state == "resolved",
               alerts.c.resolved_at > _at(now) - timedelta(seconds=MAX_COOLDOWN_S))
        .group_by(alerts.c.rule_id, alerts.c.subject))
    return {(r.rule_id, r.subject): r.at.timestamp() for r in rows}


async def write_transitions(
    conn: AsyncConnection, transitions: Sequence[Transition], rules: Mapping[int, StoredRule],
    readings: Mapping[int, SubjectReadings | None],
) -> list[Change]:
    """Write each transition with its outbox row, inside the caller's transaction. A firing
    that meets an open alert of the same (rule, subject) writes nothing (the index decides)."""
    changes: list[Change] = []
    for t in transitions:
        rule = rules[t.rule_id]
        reading = (readings.get(t.rule_id) or {}).get(t.subject)
        if t.verdict == "fire":
            assert reading is not None and t.value is not None  # fired on a measurement
            message = fire_message(rule.name, rule.kind, t.subject, reading.text, rule.threshold)
            row = (await conn.execute(
                insert(alerts).values(
                    rule_id=rule.id, site=rule.site, camera_id=reading.camera_id,
                    subject=t.subject, state="firing", message=message, value=t.value,
                    threshold=rule.threshold, fired_at=_at(t.at), updated_at=func.now())
                .on_conflict_do_nothing(index_elements=["rule_id", "subject"],
                                        index_where=alerts.c.state.in_(OPEN_STATES))
                .returning(alerts.c.id))).first()
            if row is None:
                continue
            alert = await _get(conn, int(row.id))
            event = event_for(alert, state="firing", at=t.at, value=t.value, message=message,
                              region=reading.region)
        else:
            if t.alert_id is None:
                continue
            updated = (await conn.execute(
                alerts.update().where(alerts.c.id == t.alert_id,
                                      alerts.c.state.in_(OPEN_STATES))
                .values(state="resolved", resolved_at=_at(t.at), updated_at=func.now())
                .returning(alerts.c.id))).first()
            if updated is None:
                continue
            alert = await _get(conn, t.alert_id)
            region = reading.region if reading is not None else (
                await _regions(conn, {alert.camera_id} if alert.camera_id else set())
            ).get(alert.camera_id or "")
            message = resolve_message(rule.name, rule.kind, t.subject, t.reason,
                                      None if reading is None else reading.text, rule.clear_at)
            event = event_for(alert, state="resolved", at=t.at,
                              value=alert.value if t.value is None else t.value,
                              message=message, region=region)
        changes.append(Change(await _emit(conn, event), rule.webhook_url))
    if changes:
        await _notify(conn)
    return changes


async def _get(conn: AsyncConnection, alert_id: int) -> StoredAlert:
    return _stored((await conn.execute(_query(None).where(alerts.c.id == alert_id))).one())


# --- the API's side ---

async def get_alert(engine: AsyncEngine, alert_id: int, site: str | None) -> StoredAlert | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_query(site).where(alerts.c.id == alert_id))).first()
    return None if row is None else _stored(row)


async def list_alerts(engine: AsyncEngine, site: str | None, *, limit: int, offset: int,
                      states: Sequence[str] | None = None, camera_id: str | None = None,
                      rule_id: int | None = None) -> list[StoredAlert]:
    """Newest first."""
    query = _query(site).order_by(alerts.c.fired_at.desc(), alerts.c.id.desc())
    if states is not None:
        query = query.where(alerts.c.state.in_(states))
    if camera_id is not None:
        query = query.where(alerts.c.camera_id == camera_id)
    if rule_id is not None:
        query = query.where(alerts.c.rule_id == rule_id)
    async with engine.connect() as conn:
        return [_stored(r) for r in await conn.execute(query.limit(limit).offset(offset))]


async def acknowledge(engine: AsyncEngine, alert_id: int, site: str | None, key_id: str,
                      ) -> tuple[StoredAlert, AckOutcome, Change | None] | None:
    """An operator's acknowledgement; None for an alert the key does not see. The row is
    locked, so an acknowledgement and the evaluator's resolution never cross."""
    async with engine.begin() as conn:
        row = (await conn.execute(_query(site).where(alerts.c.id == alert_id)
                                  .with_for_update(of=alerts))).first()
        if row is None:
            return None
        alert = _stored(row)
        state, outcome = ack_transition(alert.state)  # type: ignore[arg-type]
        if outcome != "acknowledged":
            return alert, outcome, None
        now = time.time()
        await conn.execute(alerts.update().where(alerts.c.id == alert_id).values(
            state=state, acknowledged_at=_at(now), acknowledged_by=key_id,
            updated_at=func.now()))
        alert = await _get(conn, alert_id)
        rule = (await conn.execute(select(alert_rules.c.webhook_url)
                                   .where(alert_rules.c.id == alert.rule_id))).one()
        region = (await _regions(conn, {alert.camera_id} if alert.camera_id else set())
                  ).get(alert.camera_id or "")
        event = event_for(alert, state="acknowledged", at=now, value=alert.value,
                          message=ack_message(alert.rule_name, alert.subject, key_id),
                          region=region)
        change = Change(await _emit(conn, event), rule.webhook_url)
        await _notify(conn)
    return alert, outcome, change


async def delete_rule(engine: AsyncEngine, rule_id: int, site: str | None,
                      ) -> list[Change] | None:
    """Delete a rule and its alerts; its open alerts are resolved first, each with its event,
    so live views see them go. None for a rule the key does not see."""
    query = select(alert_rules).where(alert_rules.c.id == rule_id)
    if site is not None:
        query = query.where(alert_rules.c.site == site)
    async with engine.begin() as conn:
        rule_row = (await conn.execute(query)).first()
        if rule_row is None:
            return None
        # The alerts before the rule: the order the evaluator locks them in (an alert row,
        # then the rule through the foreign key), so the two never deadlock.
        now = time.time()
        resolved = await conn.execute(
            alerts.update().where(alerts.c.rule_id == rule_id, alerts.c.state.in_(OPEN_STATES))
            .values(state="resolved", resolved_at=_at(now), updated_at=func.now())
            .returning(alerts.c.id))
        changes = []
        for alert_id in sorted(r.id for r in resolved):
            alert = await _get(conn, alert_id)
            region = (await _regions(conn, {alert.camera_id} if alert.camera_id else set())
                      ).get(alert.camera_id or "")
            message = resolve_message(alert.rule_name, alert.kind, alert.subject,
                                      "rule_deleted", None, alert.threshold)
            event = event_for(alert, state="resolved", at=now, value=alert.value,
                              message=message, region=region)
            changes.append(Change(await _emit(conn, event), rule_row.webhook_url))
        gone = await conn.execute(alert_rules.delete().where(alert_rules.c.id == rule_id)
                                  .returning(alert_rules.c.id))
        if gone.first() is None:
            return None  # deleted meanwhile by another request: the same answer as for it
        if changes:
            await _notify(conn)
    return changes


async def resolve_for_deleted_camera(conn: AsyncConnection, camera_id: str,
                                     rule_webhooks: dict[int, str | None]) -> list[Change]:
    """Inside the transaction that deletes a camera: resolve its open alerts, each with its
    event, before the cascade removes them (live views and webhooks see them go).
    `rule_webhooks`: rule id -> webhook url, read before the rules go."""
    now = time.time()
    resolved = await conn.execute(
        alerts.update().where(alerts.c.camera_id == camera_id,
                              alerts.c.state.in_(OPEN_STATES))
        .values(state="resolved", resolved_at=_at(now), updated_at=func.now())
        .returning(alerts.c.id))
    changes = []
    for alert_id in sorted(r.id for r in resolved):
        alert = await _get(conn, alert_id)
        message = resolve_message(alert.rule_name, alert.kind, alert.subject, "gone", None,
                                  alert.threshold)
        event = event_for(alert, state="resolved", at=now, value=alert.value,
                          message=message, region=None)
        changes.append(Change(await _emit(conn, event), rule_webhooks.get(alert.rule_id)))
    if changes:
        await _notify(conn)
    return changes


def state_filter(state: AlertState | str | None) -> tuple[str, ...] | None:
    """`open` means firing or acknowledged."""
    if state is None:
        return None
    return OPEN_STATES if state == "open" else (state,)
