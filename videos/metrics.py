"""Prometheus metrics of the video runner (served on OPS_PORT with /health)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# Read from the database, so every runner reports the same figures: aggregate with max().
JOBS = Gauge("camcount_videos_jobs", "Video jobs in the database by state", ["state"])
JOB_STATES = ("pending", "running", "done", "failed")
JOBS_CLAIMED = Counter("camcount_videos_jobs_claimed_total",
                       "Jobs this runner claimed (new ones and ones taken over)")
JOBS_FAILED = Counter("camcount_videos_jobs_failed_total", "Jobs this runner failed",
                      ["reason"])  # unreadable | gap | publish
JOBS_LOST = Counter("camcount_videos_jobs_lost_total",
                    "Jobs that stopped being this runner's (taken over, or settled elsewhere)")
FINALIZE = Counter("camcount_videos_finalize_total", "This runner's finalizes by outcome",
                   ["outcome"])
SEGMENTS_DONE = Counter("camcount_videos_segments_done_total",
                        "Segments seen fully applied while this runner held their job")
BATCHES_PUBLISHED = Counter("camcount_videos_batches_published_total",
                            "Segment batches published to frames.ingress")
FRAMES_PUBLISHED = Counter("camcount_videos_frames_published_total",
                           "Frames published to frames.ingress")
# One series per job this runner is running (one at a time): removed when the job ends.
PROGRESS = Gauge("camcount_videos_job_progress_ratio",
                 "Share of a running job's frames processed", ["job"])
