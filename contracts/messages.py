"""Frozen, versioned message models exchanged between roles.

Wall-clock instants are Unix seconds (float) named `*_at`; durations end in `_s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.alerting import AlertKind, AlertState
from contracts.broker import Priority
from contracts.camera_status import CameraStatus
from contracts.ids import BatchId, check_slug

SCHEMA_VERSION: Literal[1] = 1


class MessageError(ValueError):
    """A message that cannot be understood; it goes to the dead-letter queue with this reason."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BatchHeaders(_Frozen):
    """AMQP headers carried by every frame batch. The body is a contracts.batch container."""

    schema_version: Literal[1] = SCHEMA_VERSION
    camera_id: str
    stream_epoch: int = Field(ge=0)
    seq: int = Field(ge=0)
    priority: Priority = Priority.NORMAL
    region: str = "local"
    capability: str = "motion"
    captured_at: float = Field(gt=0, description="capture time of the first frame")
    deadline_at: float = Field(gt=0, description="after this the batch is a gap, not late work")
    frame_count: int = Field(ge=0)
    model: str | None = Field(default=None, description="the camera's model; None: default")
    assignment_epoch: int | None = Field(default=None, ge=0, description="set by the balancer")
    published_at: float | None = Field(default=None, gt=0,
                                       description="when ingest handed it to the broker")

    @field_validator("camera_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        return check_slug(value, "camera_id")

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        # A name, never a path: it is resolved inside the worker's MODEL_DIR.
        return None if value is None else check_slug(value, "model")

    @property
    def batch_id(self) -> BatchId:
        return BatchId(self.camera_id, self.stream_epoch, self.seq)

    def to_amqp(self) -> dict[str, Any]:
        """Header table for the wire. Instants travel as integer microseconds (`*_us`): AMQP
        client libraries encode Python floats in tables as 32-bit floats, which would round a
        Unix time by up to a minute. AMQP tables carry no None: absent reads back as None."""
        table = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        for name in _INSTANTS:
            if name in table:
                table[f"{name}_us"] = round(table.pop(name) * 1_000_000)
        return table

    @classmethod
    def from_amqp(cls, headers: Mapping[str, Any] | None) -> BatchHeaders:
        if not headers:
            raise MessageError("frame batch has no headers")
        known = {k: _plain(v) for k, v in headers.items() if k in cls.model_fields}
        for name in _INSTANTS:
            wire = headers.get(f"{name}_us")
            if isinstance(wire, int) and not isinstance(wire, bool):
                known[name] = wire / 1_000_000
        try:
            return cls.model_validate(known)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise MessageError(f"invalid batch headers: {problems}") from None


_INSTANTS = ("captured_at", "deadline_at", "published_at")


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class WorkerHeartbeat(_Frozen):
    """Published by each worker to the heartbeats fanout exchange; the receiver judges liveness.

    Everything after `stopping` was added within schema version 1 with defaults, so beats from
    older workers still parse. The outcome counters are cumulative for one `boot_id`: the
    balancer feeds each worker's circuit breaker from their deltas between beats."""

    schema_version: Literal[1] = SCHEMA_VERSION
    worker_id: str
    boot_id: str
    worker_type: str = "motion"
    region: str = "local"
    capabilities: tuple[str, ...] = ("motion",)
    queue: str
    in_flight: int = Field(default=0, description="delivered to the worker, not yet settled")
    processed: int = 0
    latency_ema_s: float = Field(default=0.0, description="capture to commit")
    capacity_fps: float = Field(default=0.0, description="superseded by capacity_per_s")
    sent_at: float
    stopping: bool = False
    heartbeat_interval_s: float | None = Field(default=None, gt=0)
    queue_depth: int = Field(default=0, ge=0, description="ready messages in its queue")
    processing_ema_s: float = Field(default=0.0, ge=0, description="decode to commit, per batch")
    capacity_per_s: float = Field(default=0.0, ge=0,
                                  description="batches/s it sustains; 0: not measured yet")
    max_jobs: int = Field(default=1, ge=1)
    batches_ok: int = Field(default=0, ge=0)
    batches_failed: int = Field(default=0, ge=0)
    batches_timed_out: int = Field(default=0, ge=0)
    batches_data_errors: int = Field(default=0, ge=0, description="dead-lettered or corrupt")
    rss_bytes: int | None = Field(default=None, ge=0)
    cpu_percent: float | None = Field(default=None, ge=0, description="of one core, since the "
                                      "previous beat")
    gpu_name: str | None = None
    gpu_memory_used_bytes: int | None = Field(default=None, ge=0)
    gpu_memory_total_bytes: int | None = Field(default=None, ge=0)
    gpu_utilisation_percent: float | None = Field(default=None, ge=0)
    models: tuple[str, ...] = Field(
        default=(), description="model names a camera may ask for (its 'model'); every worker "
        "of the capability serves cameras that name none")
    max_batch: int | None = Field(default=None, ge=1, description="frames per model run")


WorkerEventKind = Literal["worker.up", "worker.suspect", "worker.down", "breaker.open",
                          "breaker.half_open", "breaker.closed"]


class WorkerEventMessage(_Frozen):
    """Published by the active balancer on `registry.events`, routing key = kind, for each
    liveness verdict and breaker transition it records in `worker_events` (row id `id`)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: int
    worker_id: str
    boot_id: str
    kind: WorkerEventKind
    reason: str
    at: float = Field(description="the judging balancer's clock")
    details: dict[str, str | int | float | None] = Field(default_factory=dict)
    judged_by: str


class CameraStatusMessage(_Frozen):
    """Published by the ingest node holding a camera on `registry.events`, routing key
    `camera.<status>`, for each status change it records in `camera_events` (row id `id`)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: int
    camera_id: str
    status: CameraStatus
    previous: CameraStatus | None
    reason: str = Field(description="why, in words; credentials never appear")
    since: float = Field(description="when the camera entered this status")
    node_id: str


class CountKey(_Frozen):
    line_id: int
    line_version: int
    object_class: str
    direction: Literal["in", "out"]


class CountUpdate(_Frozen):
    """One committed batch's effect, relayed from the outbox to `results.counts` and WebSockets."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_seq: int = Field(description="outbox sequence: resumable, gap-free per relay")
    camera_id: str
    region: str
    batch_id: str
    captured_at: float
    committed_at: float
    # Stage times for latency breakdowns (bench/load); None from a writer that predates them.
    published_at: float | None = Field(default=None, description="ingest handed it to the broker")
    started_at: float | None = Field(default=None, description="the worker began decoding it")
    relayed_at: float | None = Field(default=None,
                                     description="the broadcaster took the committed row")
    delta: dict[str, int] = Field(description="'line_id:direction:class' -> crossings in batch")
    totals: dict[str, int] = Field(description="'line_id:direction:class' -> running total")
    occupancy: dict[str, int] = Field(default_factory=dict,
                                      description="'zone_id:class' -> objects inside now")


class AlertEvent(_Frozen):
    """An alert's change of state (fired, acknowledged, resolved), written to the outbox in the
    transaction that changes it (topic 'alerts'), relayed to `results.alerts` and WebSockets.

    The outbox payload is this without `event_seq`, which is the outbox row's id."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_seq: int = Field(description="outbox sequence, shared with count updates")
    alert_id: int
    rule_id: int
    rule_name: str
    kind: AlertKind
    state: AlertState
    site: str | None = Field(description="null: fleet-wide (a worker, a queue)")
    camera_id: str | None
    region: str | None
    subject: str = Field(description="what it is about: a camera, a worker or a queue")
    message: str = Field(description="for people; credentials masked")
    value: float
    threshold: float
    at: float = Field(description="when this state was entered, epoch seconds")
    fired_at: float
    acknowledged_by: str | None = Field(default=None, description="api key id")
