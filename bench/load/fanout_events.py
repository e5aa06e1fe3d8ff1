"""The events both fan-out contestants send: one shape, one pace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from contracts.messages import CountUpdate

CAMERA = "fanout-1"
REGION = "local"


def payload(seq: int, at: float) -> dict[str, Any]:
    """An outbox row's payload (what a worker writes), stamped `at`."""
    return {"batch_id": f"{CAMERA}:1:{seq}", "captured_at": at, "committed_at": at,
            "delta": {"1:in:motion": 1}, "totals": {"1:in:motion": seq}, "occupancy": {}}


def count_text(seq: int, at: float) -> str:
    """The broadcaster's WebSocket text for that row (broadcaster/events.py's shape)."""
    update = CountUpdate(event_seq=seq, camera_id=CAMERA, region=REGION, **payload(seq, at))
    return json.dumps({"type": "counts", **update.model_dump(mode="json")})


async def paced(events: int, rate_per_s: float) -> AsyncIterator[int]:
    """1..events, the n-th due n/rate seconds after the first (no drift)."""
    start = time.monotonic()
    for n in range(events):
        delay = start + n / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n + 1
