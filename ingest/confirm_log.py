"""Tests only (CONFIRM_LOG): one JSON line per batch the broker confirmed, for the fault suite's
checker (tests/faults), which must know exactly which batches ingest handed over for good."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from contracts.messages import BatchHeaders
from ingest.cameras import CameraSpec


def confirm_recorder(path: Path, spec: CameraSpec) -> Callable[[BatchHeaders], None]:
    """A callback appending each confirmed batch of `spec` to `path`.

    One write(2) per line on an O_APPEND descriptor, so the pipelines of one node (and several
    nodes) can share the file without interleaving. The write is a few dozen bytes to a local
    file: cheaper than a hop to a thread, and only ever enabled in tests."""
    period_s = 1.0 / spec.target_fps if spec.target_fps > 0 else 0.0

    def record(headers: BatchHeaders) -> None:
        line = json.dumps({
            "camera_id": headers.camera_id, "stream_epoch": headers.stream_epoch,
            "seq": headers.seq, "captured_at": headers.captured_at,
            "ends_at": headers.captured_at + headers.frame_count * period_s,
            "frames": headers.frame_count,
        }) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    return record
