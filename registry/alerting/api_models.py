"""Request and response models of the alerts API, and the checks of a rule that need more
than one field (the kind decides what its params, threshold and camera may be). Unknown fields
are refused; every refusal is a 422 naming its field, in FastAPI's own shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from contracts.alerting import AlertKind, AlertState
from contracts.secrets import MASK
from registry.alerting.events import StoredAlert
from registry.alerting.params import CONDITION_KINDS, FLEET_KINDS, parse_params
from registry.alerting.rule_store import StoredRule
from registry.alerting.rules import MAX_COOLDOWN_S
from registry.alerting.webhook import mask_webhook
from registry.models import Slug
from registry.webhook_urls import check_webhook_shape

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_VALUE = 1e15


def refused(loc: tuple[str | int, ...], message: str, value: Any = None) -> RequestValidationError:
    """A 422 of the same shape as the models' own (masked like them, registry/errors.py)."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc),
                                    "msg": message, "input": value}])


def _check_webhook(value: str) -> str:
    # The shape only: the port and the addresses need settings and name resolution, and are
    # checked by the routes (registry/webhook_urls.py).
    check_webhook_shape(value)
    return value


RuleName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Threshold = Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=MAX_COOLDOWN_S, allow_inf_nan=False)]
WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_webhook)]
Params = Annotated[dict[str, Any], Field(description="kind-specific; see the rule kinds")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleIn(_Strict):
    name: RuleName
    kind: AlertKind
    camera_id: Slug | None = Field(default=None, description="camera kinds: this camera only; "
                                   "left out: every enabled camera of the rule's site")
    site: Slug | None = Field(default=None, description="camera kinds: the camera's site, or "
                              "the key's; a key of every site may leave it out for a rule over "
                              "every camera (its alerts then fleet-wide). Fleet kinds: none")
    params: Params = {}
    threshold: Threshold | None = Field(default=None, description="fires while the value is "
                                        "over it; camera_status and worker_down: fixed at 0 "
                                        "(their value is 1 while the condition holds)")
    clear_threshold: Threshold | None = Field(default=None, description="resolves at or "
                                              "below it (hysteresis); null: the threshold")
    for_s: Seconds = Field(default=0.0, description="the condition holds this long first")
    cooldown_s: Seconds = Field(default=300.0, description="no new firing of a subject this "
                                "long after its alert resolved")
    webhook_url: WebhookUrl | None = None
    enabled: bool = True


def _not_sent() -> Any:
    """The default of a field left out of a PATCH: never validated, never dumped."""
    return None


_NOT_NULL = ("name", "params", "threshold", "for_s", "cooldown_s", "enabled")


class RulePatch(_Strict):
    """A partial update: fields left out keep their values. The kind, camera and site of a
    rule are what it is: delete it and create another to change them. `webhook_url` sent back
    exactly as GET shows it keeps the stored one."""

    name: RuleName = Field(default_factory=_not_sent)
    params: Params = Field(default_factory=_not_sent)
    threshold: Threshold = Field(default_factory=_not_sent)
    clear_threshold: Threshold | None = None
    for_s: Seconds = Field(default_factory=_not_sent)
    cooldown_s: Seconds = Field(default_factory=_not_sent)
    webhook_url: WebhookUrl | None = None
    enabled: bool = Field(default_factory=_not_sent)

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null (leave it out to keep it)")
        return value


class RuleOut(BaseModel):
    id: int
    name: str
    kind: str
    site: str | None = Field(description="null: fleet-wide")
    camera_id: str | None
    params: dict[str, Any]
    threshold: float
    clear_threshold: float | None
    for_s: float
    cooldown_s: float
    webhook_url: str | None = Field(description="secrets (password, path, query) masked")
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: StoredRule) -> RuleOut:
        return cls(
            id=rule.id, name=rule.name, kind=rule.kind, site=rule.site, camera_id=rule.camera_id,
            params=rule.params, threshold=rule.threshold, clear_threshold=rule.clear_threshold,
            for_s=rule.for_s, cooldown_s=rule.cooldown_s,
            webhook_url=None if rule.webhook_url is None else mask_webhook(rule.webhook_url),
            enabled=rule.enabled, created_at=rule.created_at, updated_at=rule.updated_at)


class AlertOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    kind: str
    site: str | None = Field(description="null: fleet-wide")
    camera_id: str | None
    subject: str = Field(description="what it is about: a camera, a worker or a queue")
    state: AlertState
    message: str = Field(description="as it fired; credentials masked")
    value: float = Field(description="the measurement when it fired")
    threshold: float
    fired_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="the id of the key that acknowledged it")
    resolved_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, alert: StoredAlert) -> AlertOut:
        return cls.model_validate(alert, from_attributes=True)


StateFilter = Literal["firing", "acknowledged", "resolved", "open"]


def checked_params(kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The params as stored (defaults made explicit); a 422 naming each wrong field."""
    try:
        return parse_params(kind, raw).model_dump(mode="json")
    except ValidationError as exc:
        raise RequestValidationError([
            {"type": e["type"], "loc": ("body", "params", *e["loc"]), "msg": e["msg"],
             "input": e.get("input")} for e in exc.errors()
        ]) from None


def checked_thresholds(kind: str, threshold: float | None, clear: float | None,
                       ) -> tuple[float, float | None]:
    """(threshold, clear threshold) as stored for a rule of `kind`."""
    if kind in CONDITION_KINDS:
        for name, value in (("threshold", threshold), ("clear_threshold", clear)):
            if value not in (None, 0):
                raise refused((name,), f"a {kind} rule is a condition (value 1 while it holds): "
                              f"{name} is 0; leave it out", value)
        return 0.0, None
    if threshold is None:
        if kind != "dlq_not_empty":
            raise refused(("threshold",), f"a {kind} rule needs a threshold")
        threshold = 0.0
    if clear is not None and clear > threshold:
        raise refused(("clear_threshold",), "clear_threshold must be at or below the threshold "
                      f"({threshold:g}): an alert resolves when its value falls to it", clear)
    return threshold, clear


def checked_camera(kind: str, camera_id: str | None, params: Mapping[str, Any]) -> None:
    """Which kinds may, or must, name a camera."""
    if kind in FLEET_KINDS and camera_id is not None:
        raise refused(("camera_id",), f"a {kind} rule is about the fleet, not a camera",
                      camera_id)
    if camera_id is None and kind == "zone_occupancy":
        raise refused(("camera_id",), "a zone_occupancy rule needs the camera of its zone")
    if camera_id is None and params.get("line_id") is not None:
        raise refused(("params", "line_id"), "a rule on one line needs the camera of the line",
                      params.get("line_id"))


def webhook_to_store(sent: str | None, stored: str | None) -> str | None:
    """A PATCH's webhook_url: the masked form GET shows keeps the stored URL."""
    if sent is None:
        return None
    if stored is not None and sent == mask_webhook(stored):
        return stored
    parts = urlsplit(sent)
    if parts.password == MASK or parts.path == f"/{MASK}":
        raise refused(("webhook_url",), "webhook_url carries the mask: send it unchanged to "
                      "keep the stored URL, or the whole new URL", sent)
    return sent
