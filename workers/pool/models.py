"""The pool API's request and response bodies. Requests refuse unknown keys: a misspelt
`idle_timeout` must be an error, not a worker that is never reaped."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.pool.supervision import WorkerStatus


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartIn(_Request):
    type: str = Field(description="a worker type: the default one or one of WORKER_TYPES_FILE")
    count: int = Field(default=1, ge=1, le=1024)
    idle_timeout_s: float | None = Field(
        default=None, gt=0,
        description="reap these workers after this long idle; absent: the type's default; "
        "null: never",
    )


class EnsureIn(_Request):
    type: str
    count: int = Field(ge=0, le=1024, description="at least this many of the type")
    idle_timeout_s: float | None = Field(default=None, gt=0,
                                         description="for the workers it starts, as in start")


class StopIn(_Request):
    worker_id: str | None = None
    type: str | None = None
    count: int | None = Field(default=None, ge=1, le=1024)

    @model_validator(mode="after")
    def _one_target(self) -> StopIn:
        by_id = self.worker_id is not None
        by_type = self.type is not None or self.count is not None
        if by_id == by_type:
            raise ValueError("give either worker_id, or type and count")
        if by_type and (self.type is None or self.count is None):
            raise ValueError("stopping by type needs both type and count")
        return self


class ChangeOut(BaseModel):
    worker_ids: list[str] = Field(description="the workers started or stopped")


class WorkerOut(BaseModel):
    worker_id: str
    type: str
    pid: int | None
    status: WorkerStatus
    created_at: datetime
    last_activity: datetime
    job_count: int = Field(description="batches processed, over all its processes")
    in_flight: int = Field(description="batches it holds: being handled, prefetched or held")
    max_jobs: int = Field(description="its MAX_CONCURRENT_JOBS")
    restarts: int
    gpu: str | None = Field(description="its CUDA_VISIBLE_DEVICES; null: not pinned")
    ops_port: int | None
    idle_timeout_s: float | None
    last_exit_code: int | None


class TypeCounts(BaseModel):
    total: int = Field(description="workers kept: all but the stopped ones")
    active: int = Field(description="workers running (consuming their queue)")


class StatusOut(BaseModel):
    total: int
    active: int
    draining: bool
    by_type: dict[str, TypeCounts]
    workers: list[WorkerOut]
