"""Alert events and their words; no I/O.

Every change of an alert's state becomes an AlertEvent, written to the outbox (topic 'alerts')
in the transaction that makes the change, and after the commit optionally to a webhook.
Messages are for people and pass through mask_credentials: rule names and camera status
reasons are free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.alerting import AlertKind, AlertState
from contracts.messages import AlertEvent
from contracts.secrets import mask_credentials
from registry.alerting.params import CONDITION_KINDS, UNITS
from registry.alerting.rules import Reason


@dataclass(frozen=True)
class StoredAlert:
    id: int
    rule_id: int
    rule_name: str
    kind: str
    site: str | None
    camera_id: str | None
    subject: str
    state: str
    message: str
    value: float
    threshold: float
    fired_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Change:
    """A committed change: its event (with its outbox sequence) and where to send it."""

    event: AlertEvent
    webhook_url: str | None


def _limit(kind: str, value: float) -> str:
    unit = UNITS.get(kind, "")
    return f"{value:g} {unit}".rstrip() if unit != "s" else f"{value:g} s"


def fire_message(rule_name: str, kind: str, subject: str, text: str, threshold: float) -> str:
    if kind in CONDITION_KINDS:
        return mask_credentials(f"{rule_name}: {subject} {text}")
    return mask_credentials(f"{rule_name}: {subject} {text} (over {_limit(kind, threshold)})")


def resolve_message(rule_name: str, kind: str, subject: str, reason: Reason | str,
                    text: str | None, clear_at: float) -> str:
    if reason == "gone":
        said = f"{subject} is no longer measured (disabled, deleted or gone); resolved"
    elif reason == "rule_disabled":
        said = f"{subject}: the rule was disabled; resolved"
    elif reason == "rule_deleted":
        said = f"{subject}: the rule was deleted; resolved"
    elif kind in CONDITION_KINDS:
        said = f"{subject} {text}; resolved"
    else:
        said = f"{subject} {text}; resolved (at or below {_limit(kind, clear_at)})"
    return mask_credentials(f"{rule_name}: {said}")


def ack_message(rule_name: str, subject: str, key_id: str) -> str:
    return mask_credentials(f"{rule_name}: {subject} acknowledged by key {key_id}")


def event_for(alert: StoredAlert, *, state: AlertState, at: float, value: float, message: str,
              region: str | None) -> AlertEvent:
    """The event of `alert` entering `state` (event_seq 0 until its outbox row exists)."""
    kind: AlertKind = alert.kind  # type: ignore[assignment]  # the table's check constraint
    return AlertEvent(
        event_seq=0, alert_id=alert.id, rule_id=alert.rule_id, rule_name=alert.rule_name,
        kind=kind, state=state, site=alert.site, camera_id=alert.camera_id, region=region,
        subject=alert.subject, message=message, value=value, threshold=alert.threshold, at=at,
        fired_at=alert.fired_at.timestamp(), acknowledged_by=alert.acknowledged_by,
    )


def outbox_values(event: AlertEvent) -> dict[str, Any]:
    return {"camera_id": event.camera_id, "region": event.region, "topic": "alerts",
            "payload": event.model_dump(mode="json", exclude={"event_seq"})}
