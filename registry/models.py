"""API request/response models. Unknown fields are refused (no mass assignment)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.broker import Priority
from contracts.geometry import LineGeometry, Point
from contracts.ids import check_slug
from contracts.secrets import MASK, mask_url
from registry.camera_urls import check_url_shape
from registry.status_models import CameraStatusOut


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineIn(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    a: Point
    b: Point

    def geometry(self) -> LineGeometry:
        return LineGeometry(a=self.a, b=self.b)

    @model_validator(mode="after")
    def _distinct(self) -> LineIn:
        self.geometry()  # raises for a degenerate line
        return self


class ZoneIn(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    points: Annotated[list[Point], Field(min_length=3, max_length=32)]

    @model_validator(mode="after")
    def _has_area(self) -> ZoneIn:
        pts = self.points
        twice_area = sum(
            pts[i].x * pts[(i + 1) % len(pts)].y - pts[(i + 1) % len(pts)].x * pts[i].y
            for i in range(len(pts))
        )
        if abs(twice_area) < 1e-6:
            raise ValueError("zone polygon has no area (points are collinear or repeated)")
        return self


def _check_url(value: str) -> str:
    # The shape only: the allowed ports and networks are settings and resolving the host is
    # I/O, both done by the route (registry/camera_urls.py), as MEDIA_DIR is (registry/media.py).
    check_url_shape(value)
    return value


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _unique_names(items: list[_N]) -> list[_N]:
    names = [item.name for item in items]
    if len(names) != len(set(names)):
        raise ValueError("names must be unique within a camera")
    return items


# A camera's whole set of lines or zones: on creation and when replaced (geometry_api.py).
Lines = Annotated[list[LineIn], Field(max_length=16), AfterValidator(_unique_names)]
Zones = Annotated[list[ZoneIn], Field(max_length=16), AfterValidator(_unique_names)]


def _check_slug(value: str, info: ValidationInfo) -> str:
    return check_slug(value, info.field_name or "id")


# A camera's settings, declared once: creation and partial updates validate them alike.
Slug = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_check_slug)]
CameraName = Annotated[str, Field(min_length=1, max_length=200)]
CameraUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_url)]
Capability = Annotated[Slug, Field(description="worker type that must process it")]
TargetFps = Annotated[float, Field(gt=0, le=120)]
BatchFrames = Annotated[int, Field(ge=1, le=100)]
BatchMs = Annotated[int, Field(ge=50, le=10_000)]
DeadlineS = Annotated[float, Field(gt=0, le=600)]
ObjectClasses = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
    Field(max_length=80, description="classes counted for this camera; null = all"),
]
MinConfidence = Annotated[float | None, Field(gt=0, lt=1)]
ModelName = Annotated[
    str | None,
    Field(max_length=63, description="a model name the workers have in MODEL_DIR; null: default"),
    AfterValidator(lambda value: None if value is None else check_slug(value, "model")),
]


class CameraIn(_Strict):
    id: Slug
    name: CameraName
    url: CameraUrl
    site: Slug | None = Field(default=None, description="the key's own site when left out "
                              "(required for a key of every site: 'default' otherwise)")
    region: Slug = "local"
    priority: Priority = Priority.NORMAL
    target_fps: TargetFps = 5.0
    batch_frames: BatchFrames = 5
    batch_ms: BatchMs = 1000
    deadline_s: DeadlineS = 10.0
    capability: Capability = "motion"
    object_classes: ObjectClasses = None
    min_confidence: MinConfidence = None
    model: ModelName = None
    enabled: bool = True
    lines: Lines = []
    zones: Zones = []


def _not_sent() -> Any:
    """The default of a field left out of a PATCH. Never validated and never dumped (only the
    fields set are), so a field's type stays what the camera allows: a null sent for a
    non-nullable field is refused, not taken for "left out"."""
    return None


# Fields a camera must always have: null is refused for them, unlike leaving them out.
_NOT_NULL = ("name", "url", "region", "priority", "target_fps", "batch_frames", "batch_ms",
             "deadline_s", "capability", "enabled")


class CameraPatch(_Strict):
    """A partial update (PATCH): each field sent is validated as on creation, fields left out
    keep their values. Lines and zones have their own versioned history and are not here.

    `url` may be sent back exactly as GET shows it, password masked (a form that round-trips
    every field): that keeps the stored URL and its credentials. Any other URL is stored as
    sent, so a changed URL must carry its real password.
    """

    # Not nullable: left out, the field keeps its value; sent as null, it is refused.
    name: CameraName = Field(default_factory=_not_sent)
    url: CameraUrl = Field(default_factory=_not_sent)
    region: Slug = Field(default_factory=_not_sent)
    priority: Priority = Field(default_factory=_not_sent)
    target_fps: TargetFps = Field(default_factory=_not_sent)
    batch_frames: BatchFrames = Field(default_factory=_not_sent)
    batch_ms: BatchMs = Field(default_factory=_not_sent)
    deadline_s: DeadlineS = Field(default_factory=_not_sent)
    capability: Capability = Field(default_factory=_not_sent)
    object_classes: ObjectClasses = None
    min_confidence: MinConfidence = None
    model: ModelName = None
    enabled: bool = Field(default_factory=_not_sent)

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null (leave it out to keep it)")
        return value

    def changes_to(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The columns this patch changes in `stored` (a cameras row); a field sent with the
        value it has is no change. Raises ValueError for a url that cannot be stored."""
        sent = self.model_dump(exclude_unset=True)
        if "priority" in sent:
            sent["priority"] = int(sent["priority"])
        if "url" in sent:
            sent["url"] = _url_to_store(sent["url"], stored["url"])
        return {name: value for name, value in sent.items() if stored[name] != value}


def _url_to_store(sent: str, stored: str) -> str:
    if sent == mask_url(stored):
        return stored  # the masked round trip: the dashboard never had the password
    # Carrying the stored password over to a URL that differs would hand it to whatever host
    # that URL names; storing the mask itself as a password would only fail later, at ingest.
    parts = urlsplit(sent)
    if parts.password == MASK or (parts.password is None and parts.username == MASK):
        raise ValueError(f"camera url carries the masked password {MASK!r}: send the url "
                         "unchanged to keep the stored credentials, or the real password")
    return sent


class LineOut(BaseModel):
    id: int
    name: str
    version: int
    a: Point
    b: Point


class ZoneOut(BaseModel):
    id: int
    name: str
    version: int
    points: list[Point]


class CameraOut(BaseModel):
    id: str
    name: str
    url: str = Field(description="credentials masked")
    site: str
    region: str
    priority: int
    target_fps: float
    batch_frames: int
    batch_ms: int
    deadline_s: float
    capability: str
    object_classes: list[str] | None
    min_confidence: float | None
    model: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime = Field(description="last change through the API")
    lines: list[LineOut]
    zones: list[ZoneOut]
    totals: dict[str, int] = Field(description="'line_id:direction:class' -> count")
    occupancy: dict[str, int] = Field(description="'zone_id:class' -> objects inside now")
    status: CameraStatusOut = Field(description="as ingest last reported it; a disabled camera "
                                    "always reads disabled")


class WorkerLoad(BaseModel):
    """The last heartbeat's load, as stored in workers.load. The field list is the allowlist:
    `from_attributes` over a heartbeat copies these and nothing else."""

    in_flight: int = 0
    queue_depth: int = 0
    processing_ema_s: float = 0.0
    latency_ema_s: float = 0.0
    capacity_per_s: float = Field(default=0.0, description="batches/s; 0: not measured yet")
    max_jobs: int = 1
    processed: int = 0
    batches_ok: int = 0
    batches_failed: int = 0
    batches_timed_out: int = 0
    batches_data_errors: int = 0
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    gpu_name: str | None = None
    gpu_memory_used_bytes: int | None = None
    gpu_memory_total_bytes: int | None = None
    gpu_utilisation_percent: float | None = None
    heartbeat_interval_s: float | None = None
    models: list[str] = Field(default_factory=list, description="named models it serves")
    max_batch: int | None = Field(default=None, description="frames per model run")


class BreakerProbes(BaseModel):
    admitted: int
    succeeded: int


class BreakerOut(BaseModel):
    state: Literal["closed", "open", "half_open"]
    failure_rate: float
    calls: int
    failures: int
    opened_at: datetime | None
    probes: BreakerProbes


class WorkerOut(BaseModel):
    id: str
    worker_type: str
    region: str
    capabilities: list[str]
    boot_id: str
    queue: str
    status: str = Field(description="the registry's view from the heartbeat age: up, "
                        "stopping or down")
    liveness: Literal["up", "suspect", "down"] | None = Field(
        description="the active balancer's verdict; null until one has judged the worker")
    breaker: BreakerOut | None = Field(description="null while no balancer knows the worker")
    judged_by: str | None
    judged_at: datetime | None
    load: WorkerLoad
    # Also in `load`; kept at the top level for dashboard/app.js.
    in_flight: int
    processed: int
    latency_ema_s: float
    first_seen_at: datetime
    last_heartbeat_at: datetime
    heartbeat_age_s: float


class WorkerEventOut(BaseModel):
    id: int
    worker_id: str
    boot_id: str
    kind: str = Field(description="worker.up|suspect|down, breaker.open|half_open|closed")
    reason: str
    at: datetime
    details: dict[str, str | int | float | None]
    judged_by: str


class CountRow(BaseModel):
    line_id: int
    line_version: int
    object_class: str
    direction: str
    bucket_start: datetime
    count: int


class GapRow(BaseModel):
    stream_epoch: int
    seq_from: int | None = Field(description="null for a span of time with no batches")
    seq_to: int | None
    started_at: datetime | None
    ended_at: datetime | None = Field(description="null while the gap is still open")
    reason: str
    detail: str
    recorded_at: datetime


class ZoneRow(BaseModel):
    zone_id: int
    zone_version: int
    object_class: str
    bucket_start: datetime
    entries: int
    exits: int
    peak_occupancy: int
    dwell_total_s: float
    dwell_count: int


class CountsOut(BaseModel):
    camera_id: str
    totals: dict[str, int]
    occupancy: dict[str, int]
    buckets: list[CountRow]
    zones: list[ZoneRow]
    gaps: list[GapRow]
