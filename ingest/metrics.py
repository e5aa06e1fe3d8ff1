"""Prometheus metrics of an ingest node."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_DECODED = Counter("camcount_ingest_frames_decoded_total", "Frames decoded", ["camera"])
FRAMES_SAMPLED = Counter("camcount_ingest_frames_sampled_total", "Frames kept", ["camera"])
BATCHES = Counter("camcount_ingest_batches_published_total", "Batches confirmed", ["camera"])
RECONNECTS = Counter("camcount_ingest_reconnects_total", "Stream restarts", ["camera", "reason"])
CAMERAS = Gauge("camcount_ingest_cameras", "Cameras this node pulls")
PUBLISH_LATENCY = Histogram(
    "camcount_ingest_capture_to_publish_seconds",
    "From a batch's first capture to its publisher confirm",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
STATUS_CHANGES = Counter("camcount_ingest_camera_status_changes_total",
                         "Camera status changes recorded", ["status"])
STATUS_WRITES_LOST = Counter("camcount_ingest_status_writes_lost_total",
                             "Status, gap or stats writes dropped: the write queue was full")
FRAMES_DROPPED = Counter("camcount_ingest_frames_dropped_total",
                         "Sampled frames dropped before publishing", ["camera", "why"])
REPUBLISHED = Counter("camcount_ingest_batches_republished_total",
                      "Batches sent again after a lost channel or a nack", ["camera"])
QUEUED = Gauge("camcount_ingest_outbox_batches", "Batches queued or unconfirmed", ["camera"])
