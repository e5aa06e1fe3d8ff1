"""Outbox rows as events: the message for `results.*` and the text for WebSocket clients. Pure.

A row's topic is 'counts' (a committed batch: contracts.messages.CountUpdate) or 'alerts' (an
alert's change of state: AlertEvent). The event_seq of both is the row's id: one sequence, so
one resume point covers counts and alerts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from contracts import broker
from contracts.messages import AlertEvent, CountUpdate

Topic = Literal["counts", "alerts"]


class BadRow(ValueError):
    """An outbox row that cannot be relayed (unknown topic, payload not of its model)."""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    camera_id: str | None
    region: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: Any) -> OutboxRow:
        return cls(int(row.id), row.topic, row.camera_id, row.region, dict(row.payload))


@dataclass(frozen=True)
class Event:
    seq: int
    topic: Topic
    camera_id: str | None
    region: str | None
    site: str | None  # None: fleet-wide, or a camera no longer known (every-site keys only)
    message: CountUpdate | AlertEvent
    text: str  # what WebSocket clients receive, serialised once for all of them

    @property
    def exchange(self) -> str:
        return broker.RESULTS_COUNTS if self.topic == "counts" else broker.RESULTS_ALERTS

    @property
    def routing_key(self) -> str:
        if self.topic == "counts":
            assert self.camera_id is not None and self.region is not None  # checked at build
            return broker.results_routing_key(self.region, self.camera_id)
        return broker.alerts_routing_key(self.region, self.camera_id)


def build(row: OutboxRow, camera_site: str | None, relayed_at: float | None = None) -> Event:
    """The event of a row; `camera_site` is the site of a counts row's camera; `relayed_at`
    when the broadcaster took it (a stage time for latency breakdowns)."""
    try:
        if row.topic == "counts":
            if row.camera_id is None or row.region is None:
                raise BadRow(f"outbox row {row.id}: counts without a camera or region")
            p = row.payload
            update = CountUpdate(
                event_seq=row.id, camera_id=row.camera_id, region=row.region,
                batch_id=p["batch_id"], captured_at=p["captured_at"],
                committed_at=p["committed_at"], published_at=p.get("published_at"),
                started_at=p.get("started_at"), relayed_at=relayed_at, delta=p["delta"],
                totals=p["totals"],
                occupancy=p.get("occupancy", {}))
            return Event(row.id, "counts", row.camera_id, row.region, camera_site, update,
                         _text("counts", update))
        if row.topic == "alerts":
            alert = AlertEvent.model_validate({**row.payload, "event_seq": row.id})
            return Event(row.id, "alerts", alert.camera_id, alert.region, alert.site, alert,
                         _text("alert", alert))
    except (KeyError, TypeError, ValidationError) as exc:
        raise BadRow(f"outbox row {row.id} ({row.topic}): {_reason(exc)}") from None
    raise BadRow(f"outbox row {row.id}: unknown topic {row.topic!r}")


def _text(kind: str, message: CountUpdate | AlertEvent) -> str:
    return json.dumps({"type": kind, **message.model_dump(mode="json")})


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return f"missing or wrong field {exc}"
