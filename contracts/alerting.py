"""Alert rule kinds and alert states: the vocabulary shared by the evaluator, the API, the
broadcaster and the dashboard; no I/O."""

from __future__ import annotations

from typing import Literal, get_args

AlertKind = Literal[
    "count_over",  # crossings on a camera (optionally a line/class/direction) over a window
    "zone_occupancy",  # objects inside a zone over a limit
    "camera_status",  # a camera offline, stalled, frozen, ... (ingest's status) for a while
    "worker_down",  # a worker judged down
    "queue_lag",  # messages waiting in a queue over a budget
    "latency",  # processing latency (capture to commit) over a budget
    "dlq_not_empty",  # the dead-letter queue holds messages
]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)

AlertState = Literal["firing", "acknowledged", "resolved"]
ALERT_STATES: tuple[str, ...] = get_args(AlertState)
OPEN_STATES: tuple[str, ...] = ("firing", "acknowledged")
