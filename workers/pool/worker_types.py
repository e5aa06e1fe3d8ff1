"""Worker types: named sets of worker settings the pool can start on demand.

The default type is the manager's own environment (its WORKER_TYPE names it). More come from
WORKER_TYPES_FILE, YAML or JSON, mapping a type name to the worker settings it overrides:

    yolo-gpu:
      DETECTOR: onnx
      MODEL_PATH: /models/yolov8n.onnx
      USE_GPU: true
      IDLE_TIMEOUT_S: 300      # the pool's own key: reap on-demand workers idle this long

Every type is checked at start-up against the settings its workers will really get (the
manager's environment plus the overrides), so a typo fails the manager, not a worker later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.ids import check_slug
from workers.settings import WorkerSettings

POOL_KEYS = frozenset({"IDLE_TIMEOUT_S"})
# The manager sets these per process: a type cannot.
ASSIGNED_BY_POOL = frozenset({"WORKER_ID", "OPS_PORT"})
WORKER_SETTINGS = frozenset(name.upper() for name in WorkerSettings.model_fields)

Scalar = StrictStr | StrictBool | StrictInt | StrictFloat
_FILE = TypeAdapter(dict[str, dict[str, Scalar]])


class WorkerTypesError(Exception):
    """A worker type that cannot run; the message says which and why."""


def _env_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class WorkerType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    env: dict[str, str] = Field(default_factory=dict, description="worker settings overridden")
    idle_timeout_s: float | None = Field(default=None, gt=0,
                                         description="default for on-demand starts")
    _max_jobs: int = PrivateAttr(default=1)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return check_slug(value, "a worker type name")

    @field_validator("env", mode="before")
    @classmethod
    def _known_settings(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        env = {str(k).upper(): v for k, v in value.items()}
        assigned = sorted(ASSIGNED_BY_POOL & env.keys())
        if assigned:
            raise ValueError(f"{', '.join(assigned)} cannot be set: the pool assigns it to "
                             "each worker")
        unknown = sorted(env.keys() - WORKER_SETTINGS)
        if unknown:
            raise ValueError(f"unknown worker setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(WORKER_SETTINGS - ASSIGNED_BY_POOL))}, and "
                             f"{', '.join(sorted(POOL_KEYS))}")
        return {k: _env_value(v) for k, v in env.items()}

    @model_validator(mode="after")
    def _runs(self) -> WorkerType:
        """Build the settings a worker of this type would get: their own validators (a
        detector needing a model, prefetch bounds) speak now rather than in a crash loop."""
        values: dict[str, Any] = {k.lower(): v for k, v in self.env.items()}
        try:
            settings = WorkerSettings(**values, worker_id="check")
        except ValidationError as exc:
            raise ValueError(_describe(exc)) from None
        self._max_jobs = settings.max_concurrent_jobs
        return self

    @property
    def max_jobs(self) -> int:
        """MAX_CONCURRENT_JOBS its workers run with."""
        return self._max_jobs

    @property
    def capability(self) -> str:
        """What its workers advertise (WORKER_TYPE): the type's name unless it overrides it."""
        return self.env.get("WORKER_TYPE", self.name)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]).upper()
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def _read(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: not valid JSON: {exc}") from None
    if suffix not in (".yaml", ".yml"):
        raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: name it .json, .yaml or .yml")
    try:
        import yaml
    except ImportError:
        raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: reading YAML needs PyYAML "
                               "(pip install pyyaml); or write it as JSON") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: not valid YAML: {exc}") from None


def load_worker_types(
    default_name: str, path: Path | None, *, pool_id: str, max_workers: int
) -> dict[str, WorkerType]:
    """The default type plus the file's (a file type of the default's name replaces it). All
    problems are reported at once, each with its type's name."""
    problems: list[str] = []
    types: dict[str, WorkerType] = {}
    entries: dict[str, dict[str, Scalar]] = {default_name: {}}
    if path is not None:
        try:
            entries |= _FILE.validate_python(_read(path))
        except ValidationError as exc:
            raise WorkerTypesError(f"WORKER_TYPES_FILE {path}: expected a mapping of type name "
                                   f"to settings: {_describe(exc)}") from None
    for name, entry in entries.items():
        upper = {k.upper(): v for k, v in entry.items()}
        idle = upper.pop("IDLE_TIMEOUT_S", None)
        source = f"WORKER_TYPES_FILE {path}" if entry or name != default_name else "environment"
        try:
            types[name] = WorkerType.model_validate(
                {"name": name, "env": upper, "idle_timeout_s": idle})
            # The last id a type can get must still be a valid worker id (queue names).
            check_slug(f"{pool_id}-{name}-{max_workers - 1}", "worker ids")
        except (ValidationError, ValueError) as exc:
            detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
            problems.append(f"{source}: worker type {name!r}: {detail}")
    if problems:
        raise WorkerTypesError("\n".join(problems))
    return types
