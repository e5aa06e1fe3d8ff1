"""Worker settings, from the environment (the names operators of AI worker fleets expect)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from contracts.ids import check_slug
from contracts.settings import CommonSettings
from workers.retry import RetryPolicy


def default_streams(use_gpu: bool) -> int:
    """INFERENCE_STREAMS unless set: a stream per core, up to 4, on a CPU; 2 on a GPU."""
    return 2 if use_gpu else max(1, min(os.cpu_count() or 1, 4))


def _new_worker_id() -> str:
    return f"w-{secrets.token_hex(4)}"


class WorkerSettings(CommonSettings):
    worker_id: str = Field(default_factory=_new_worker_id)
    worker_type: str = "motion"
    prefetch_count: int = Field(default=4, ge=1, le=1000)
    max_concurrent_jobs: int = Field(
        default=2, ge=1, le=64,
        description="batches decoded and detected at once; commits stay one at a time, in "
        "order, so 2 lets the next batch's detection overlap this one's commit",
    )
    inference_streams: int | None = Field(
        default=None, ge=1, le=64,
        description="model runs at once (see workers/onnx_detector.py); default: one per "
        "core up to 4 on a CPU, 2 on a GPU",
    )
    intra_op_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="cores per model run; default: the cores divided among the streams",
    )
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    job_timeout_s: float = Field(default=30.0, gt=0)
    retry_delay_s: float = Field(default=1.0, ge=0,
                                 description="back-off before the first retry; doubles after")
    retry_max_delay_s: float = Field(default=10.0, ge=0)
    max_attempts: int = Field(default=3, ge=1, description="failures of a batch here before "
                              "it goes back to frames.ingress for another worker")
    max_total_attempts: int = Field(default=9, ge=1, description="failures over all workers "
                                    "before it is dead-lettered (and recorded as a gap)")
    reorder_window_batches: int = Field(default=3, ge=0, description="held per camera")
    reorder_window_s: float = Field(default=2.0, ge=0)
    background_every_s: float = Field(
        default=5.0, gt=0, description="how often (capture time) a camera's motion background "
        "is stored, for the worker that takes the camera over (workers/backgrounds.py)")
    detector: Literal["motion", "onnx", "ultralytics"] = "motion"
    model_path: Path | None = None
    model_dir: Path | None = Field(
        default=None, description="models cameras may name: MODEL_DIR/<name>.onnx (or .pt)"
    )
    use_gpu: bool = False
    gpu_device: int = Field(default=0, ge=0)
    trt_cache_dir: Path | None = Field(
        default=None, description="TensorRT engine cache: engines survive worker restarts"
    )
    confidence: float = Field(default=0.3, gt=0, lt=1)
    detect_classes: str = Field(default="", description="comma-separated; empty = all classes")
    model_cache_size: int = Field(default=2, ge=1)
    max_redeliveries: int = Field(
        default=5, ge=1, le=1000,
        description="a batch the broker redelivered this often (its holders died or gave it "
        "back) is dead-lettered as a likely poison batch (workers/redeliveries.py)",
    )
    batch_ledger: bool = Field(
        default=False,
        description="tests only: write a batch_ledger row (camera, epoch, seq, worker) in each "
        "apply transaction, so the fault suite (tests/faults) sees every apply, doubles too",
    )
    fault_injection: str = Field(
        default="",
        description="tests only: 'before_commit@SEQ' or 'after_commit@SEQ' makes this process "
        "SIGKILL itself at that point of the batch with that seq; 'fail_once@SEQ' makes that "
        "batch's first transaction fail (it is requeued); 'fail_until@S' fails every batch "
        "until S seconds after start; 'beat_jitter@S' delays each heartbeat by up to S more",
        pattern=r"^((((before|after)_commit|fail_once)@\d+)"
        r"|((fail_until|beat_jitter)@\d+(\.\d+)?))?$",
    )

    def kills_at(self, point: str, seq: int) -> bool:
        return self.fault_injection == f"{point}@{seq}"

    def fault_seconds(self, mode: str) -> float:
        """The S of 'mode@S' when that fault is injected, else 0."""
        name, _, value = self.fault_injection.partition("@")
        return float(value) if name == mode else 0.0

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.max_total_attempts, self.retry_delay_s,
                           max(self.retry_delay_s, self.retry_max_delay_s))

    @property
    def class_filter(self) -> frozenset[str] | None:
        names = frozenset(c.strip() for c in self.detect_classes.split(",") if c.strip())
        return names or None

    @property
    def streams(self) -> int:
        return self.inference_streams or default_streams(self.use_gpu)

    @model_validator(mode="after")
    def _attempts_ordered(self) -> WorkerSettings:
        if self.max_attempts > self.max_total_attempts:
            raise ValueError("MAX_ATTEMPTS cannot exceed MAX_TOTAL_ATTEMPTS")
        return self

    @model_validator(mode="after")
    def _jobs_fit_prefetch(self) -> WorkerSettings:
        if self.max_concurrent_jobs > self.prefetch_count:
            raise ValueError("MAX_CONCURRENT_JOBS cannot exceed PREFETCH_COUNT: a job is a "
                             "delivered batch")
        return self

    @model_validator(mode="after")
    def _window_fits_prefetch(self) -> WorkerSettings:
        if self.reorder_window_batches >= self.prefetch_count:
            # Held batches stay unacked: a full prefetch would leave no room for the one
            # they are waiting for.
            raise ValueError("REORDER_WINDOW_BATCHES must be below PREFETCH_COUNT")
        return self

    @model_validator(mode="after")
    def _model_for_detector(self) -> WorkerSettings:
        if self.detector != "motion" and self.model_path is None:
            raise ValueError(f"DETECTOR={self.detector} needs MODEL_PATH (.onnx, or .pt/.yaml "
                             "for ultralytics)")
        if self.model_path is not None and not self.model_path.is_file():
            raise ValueError(f"MODEL_PATH {self.model_path} is not a file")
        return self

    @field_validator("worker_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        return check_slug(value, "WORKER_ID")
