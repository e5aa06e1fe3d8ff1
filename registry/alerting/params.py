"""Each rule kind's parameters (the `params` column) and what its value means; no I/O.

Shared by the API, which refuses what does not fit with a 422 naming the field, and the
evaluator, which reads a stored rule's params through the same models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.alerting import AlertKind
from contracts.camera_status import DOWN_STATUSES, CameraStatus

MAX_WINDOW_S = 86_400.0
MAX_DB_ID = 2**63 - 1  # ids are BIGINT: anything larger could only fail in the database

DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
ObjectClass = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]

# Kinds about the shared fleet (workers, queues): rules of every site only. The others are
# about cameras: a rule names one camera, or covers every enabled camera of its site.
FLEET_KINDS: frozenset[str] = frozenset({"worker_down", "queue_lag", "latency", "dlq_not_empty"})
# Kinds whose value is 1 while a condition holds and 0 otherwise: their threshold is fixed.
CONDITION_KINDS: frozenset[str] = frozenset({"camera_status", "worker_down"})

UNITS: Mapping[str, str] = {
    "count_over": "crossings", "zone_occupancy": "objects", "camera_status": "",
    "worker_down": "", "queue_lag": "messages", "latency": "s", "dlq_not_empty": "messages",
}


class KindParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clear_for_s: float = Field(
        default=0.0, ge=0, le=MAX_WINDOW_S, allow_inf_nan=False,
        description="an open alert resolves only after its value stayed at or below the clear "
                    "threshold this long (against flapping on a value that dips briefly)")


class CountOverParams(KindParams):
    """Crossings of a camera's lines within the last `window_s`."""

    window_s: float = Field(gt=0, le=MAX_WINDOW_S, allow_inf_nan=False)
    line_id: DbId | None = Field(default=None, description="only this line (any version of "
                                 "it: a line keeps its name when it is edited); needs camera_id")
    object_class: ObjectClass | None = None
    direction: Literal["in", "out"] | None = None


class ZoneOccupancyParams(KindParams):
    """Objects inside a zone now (any version of it); needs camera_id."""

    zone_id: DbId
    object_class: ObjectClass | None = None


AlertableStatus = Literal["connecting", "stalled", "frozen", "auth_failed", "unreachable",
                          "backpressure", "unassigned"]


class CameraStatusParams(KindParams):
    """1 while the camera is in one of `statuses`; a disabled camera is not measured."""

    statuses: list[AlertableStatus] = Field(
        default_factory=lambda: sorted(DOWN_STATUSES),  # type: ignore[arg-type]
        min_length=1, max_length=16)

    @field_validator("statuses")
    @classmethod
    def _unique(cls, value: list[CameraStatus]) -> list[CameraStatus]:
        if len(set(value)) != len(value):
            raise ValueError("statuses must not repeat")
        return value


class WorkerDownParams(KindParams):
    """1 while a worker is judged down (by the active balancer, or by its heartbeat age)."""


class QueueLagParams(KindParams):
    """Ready messages waiting in a queue."""

    queue: str | None = Field(default=None, min_length=1, max_length=255,
                              pattern=r"^[\x21-\x7e]+$",
                              description="one queue; default: frames.ingress and every "
                                          "frames.worker.* queue, each its own subject")


class LatencyParams(KindParams):
    """Each live worker's capture-to-commit latency (its heartbeat's moving average), s."""


class DlqParams(KindParams):
    """Messages in the dead-letter queue (frames.dead), ready or not."""


PARAMS: Mapping[str, type[KindParams]] = {
    "count_over": CountOverParams,
    "zone_occupancy": ZoneOccupancyParams,
    "camera_status": CameraStatusParams,
    "worker_down": WorkerDownParams,
    "queue_lag": QueueLagParams,
    "latency": LatencyParams,
    "dlq_not_empty": DlqParams,
}


def parse_params(kind: AlertKind | str, raw: Mapping[str, Any]) -> KindParams:
    """Raises pydantic.ValidationError, each error located inside params."""
    return PARAMS[kind].model_validate(dict(raw))
