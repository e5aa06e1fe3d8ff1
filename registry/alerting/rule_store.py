"""Alert rules in PostgreSQL: what the API writes and the evaluator reads.

A rule of site NULL is fleet-wide: only keys of every site see it, and its alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.tables import alert_rules, cameras, counting_lines, zones
from registry.alerting.params import KindParams, parse_params
from registry.alerting.rules import Policy


@dataclass(frozen=True)
class StoredRule:
    id: int
    site: str | None
    name: str
    kind: str
    camera_id: str | None
    params: dict[str, Any]
    threshold: float
    clear_threshold: float | None
    for_s: float
    cooldown_s: float
    webhook_url: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def parsed(self) -> KindParams:
        """The params through the kind's model (raises pydantic.ValidationError)."""
        return parse_params(self.kind, self.params)

    def policy(self) -> Policy:
        return Policy(threshold=self.threshold, clear_threshold=self.clear_threshold,
                      for_s=self.for_s, clear_for_s=self.parsed().clear_for_s,
                      cooldown_s=self.cooldown_s)

    @property
    def clear_at(self) -> float:
        return Policy(self.threshold, self.clear_threshold).clear_at


def _stored(row: Any) -> StoredRule:
    m = row._mapping
    return StoredRule(**{name: m[name] for name in StoredRule.__dataclass_fields__})


def visible(site: str | None) -> ColumnElement[bool]:
    """Rules a key of `site` sees (None: a key of every site sees all)."""
    return true() if site is None else alert_rules.c.site == site


async def create_rule(engine: AsyncEngine, values: Mapping[str, Any]) -> StoredRule:
    async with engine.begin() as conn:
        row = (await conn.execute(alert_rules.insert().values(**values)
                                  .returning(*alert_rules.c))).one()
    return _stored(row)


def _query(site: str | None) -> Select[Any]:
    return select(alert_rules).where(visible(site))


async def get_rule(engine: AsyncEngine, rule_id: int, site: str | None) -> StoredRule | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_query(site).where(alert_rules.c.id == rule_id))).first()
    return None if row is None else _stored(row)


async def list_rules(engine: AsyncEngine, site: str | None, *, limit: int, offset: int,
                     kind: str | None = None, camera_id: str | None = None,
                     ) -> list[StoredRule]:
    query = _query(site).order_by(alert_rules.c.id).limit(limit).offset(offset)
    if kind is not None:
        query = query.where(alert_rules.c.kind == kind)
    if camera_id is not None:
        query = query.where(alert_rules.c.camera_id == camera_id)
    async with engine.connect() as conn:
        return [_stored(r) for r in await conn.execute(query)]


async def update_rule(engine: AsyncEngine, rule_id: int, site: str | None,
                      plan: Callable[[StoredRule], dict[str, Any]]) -> StoredRule | None:
    """Apply the changes `plan` makes of the stored rule (locked meanwhile, so concurrent
    updates each plan against what the other left); None for a rule the key does not see."""
    async with engine.begin() as conn:
        # FOR NO KEY UPDATE: the id never changes, so the evaluator's new alerts (which
        # reference the rule) need not wait.
        row = (await conn.execute(_query(site).where(alert_rules.c.id == rule_id)
                                  .with_for_update(key_share=True))).first()
        if row is None:
            return None
        changes = plan(_stored(row))
        if changes:
            row = (await conn.execute(
                alert_rules.update().where(alert_rules.c.id == rule_id)
                .values(**changes, updated_at=func.now()).returning(*alert_rules.c))).one()
    return _stored(row)


async def all_rules(conn: AsyncConnection) -> list[StoredRule]:
    """Every rule, enabled or not (the evaluator resolves the alerts of disabled ones)."""
    return [_stored(r) for r in await conn.execute(select(alert_rules)
                                                   .order_by(alert_rules.c.id))]


@dataclass(frozen=True)
class CameraRef:
    id: str
    site: str


async def find_camera(engine: AsyncEngine, camera_id: str, site: str | None) -> CameraRef | None:
    """The camera a rule may name: one the key sees (else None, as for one that is not)."""
    query = select(cameras.c.id, cameras.c.site).where(cameras.c.id == camera_id)
    if site is not None:
        query = query.where(cameras.c.site == site)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else CameraRef(row.id, row.site)


async def camera_has(engine: AsyncEngine, camera_id: str, *, line_id: int | None = None,
                     zone_id: int | None = None) -> bool:
    """Whether a line or zone id (any version) belongs to the camera."""
    table = counting_lines if line_id is not None else zones
    wanted = line_id if line_id is not None else zone_id
    async with engine.connect() as conn:
        row = (await conn.execute(select(table.c.id).where(
            and_(table.c.id == wanted, table.c.camera_id == camera_id)))).first()
    return row is not None
