"""Prometheus metrics of a worker process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("camcount_worker_batches_total", "Batches handled, by outcome", ["outcome"])
FRAMES = Counter("camcount_worker_frames_total", "Frames detected on")
CORRUPT_FRAMES = Counter("camcount_worker_corrupt_frames_total", "Frames skipped: undecodable")
DEAD_LETTERED = Counter("camcount_worker_dead_lettered_total", "Messages sent to the DLQ")
CROSSINGS = Counter("camcount_worker_crossings_total", "Line crossings committed")
IN_FLIGHT = Gauge("camcount_worker_in_flight", "Batches being processed")
LATENCY = Histogram(
    "camcount_worker_capture_to_commit_seconds",
    "From the first frame's capture to the commit of its batch",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
STAGE = Histogram(
    "camcount_worker_stage_seconds",
    "Time per batch in each stage: decode (JPEG), detect, commit (track, count, transaction)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RETRY_VERDICTS = Counter(
    "camcount_worker_retry_verdicts_total",
    "Failed batches handed back to the balancer or given up (dead-lettered)", ["verdict"],
)
OUTSTANDING = Gauge("camcount_worker_outstanding", "Batches delivered and not yet settled")
BACKGROUNDS = Counter(
    "camcount_worker_motion_backgrounds_total",
    "Motion backgrounds stored for a camera, and cameras this worker started primed from a "
    "stored one or unprimed (none stored yet)", ["event"],
)
