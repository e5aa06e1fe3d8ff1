"""Collecting a fault scenario's history for the checker (tests/faults/checker.py): what the
broker confirmed (ingest's CONFIRM_LOG), what the workers applied (batch_ledger, written with
BATCH_LEDGER=true), the coverage gaps and counted crossings (PostgreSQL), and the simulator's
truth (synthetic scenes played from each RTSP session's start).

Each piece is a function of its own, so a scenario that publishes batches itself (and so knows
what was confirmed) builds a History from the parts it has:

    History(confirmed=[confirmed_batch(h) for h in published], applied=await applied(engine),
            gaps=await gaps(engine), counted=await counted(engine),
            truth=scene_truth(scene, "cam", start_at=h0.captured_at, until_s=...),
            windows={"cam": [(start, end)]})
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.messages import BatchHeaders
from contracts.tables import batch_ledger, coverage_gaps, crossing_events
from simulator.scenes import SyntheticScene
from tests.faults.checker import Applied, BatchKey, Confirmed, Crossing, Gap, History, Span


def confirmed_from_log(path: Path) -> list[Confirmed]:
    """The batches ingest's CONFIRM_LOG recorded (a missing file: none yet). A torn last line
    (the writer killed mid-write) is ignored: that confirm never completed its record."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out.append(Confirmed(BatchKey(row["camera_id"], int(row["stream_epoch"]),
                                      int(row["seq"])),
                             float(row["captured_at"]), float(row["ends_at"])))
    return out


def confirmed_batch(headers: BatchHeaders, frame_period_s: float = 0.1) -> Confirmed:
    """A batch a test published itself and saw confirmed."""
    return Confirmed(BatchKey(headers.camera_id, headers.stream_epoch, headers.seq),
                     headers.captured_at,
                     headers.captured_at + headers.frame_count * frame_period_s)


async def applied(engine: AsyncEngine) -> list[Applied]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(batch_ledger).order_by(batch_ledger.c.id))
        return [Applied(BatchKey(r.camera_id, r.stream_epoch, r.seq), r.worker_id, r.crossings)
                for r in rows]


async def gaps(engine: AsyncEngine) -> list[Gap]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(coverage_gaps).order_by(coverage_gaps.c.id))
        return [Gap(r.camera_id, r.stream_epoch, r.reason, r.seq_from, r.seq_to,
                    r.started_at.timestamp() if r.started_at is not None else None,
                    r.ended_at.timestamp() if r.ended_at is not None else None)
                for r in rows]


async def counted(engine: AsyncEngine) -> list[Crossing]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(crossing_events.c.camera_id,
                                         crossing_events.c.occurred_at,
                                         crossing_events.c.direction))
        return [Crossing(r.camera_id, r.occurred_at.timestamp(), r.direction) for r in rows]


def direction_of(scene_direction: str) -> str:
    """The counted direction of a scene's crossing of the centre line (tests/support.py)."""
    return "in" if scene_direction == "left_to_right" else "out"


def scene_truth(scene: SyntheticScene, camera_id: str, start_at: float,
                until_s: float | None = None) -> list[Crossing]:
    """The scene's crossings as wall-clock times, for a scene played from `start_at` for
    `until_s` seconds (None: one pass)."""
    return [Crossing(camera_id, start_at + c.t_s, direction_of(c.direction))
            for c in scene.truth(until_s)]


def sessions_truth(scenes: Mapping[str, SyntheticScene],
                   sessions: Mapping[str, Sequence[Span]]) -> list[Crossing]:
    """Truth of every RTSP session: each session plays its camera's scene from scene time 0
    (the simulator starts a stream per session), from its start to its end."""
    return [crossing
            for camera, spans in sessions.items()
            for start, end in spans
            for crossing in scene_truth(scenes[camera], camera, start, max(0.0, end - start))]


async def collect(engine: AsyncEngine, confirm_log: Path, scenes: Mapping[str, SyntheticScene],
                  sessions: Mapping[str, Sequence[Span]],
                  events: Sequence[tuple[float, str]] = ()) -> History:
    """A full-stack scenario's history: `sessions` per camera in wall-clock time, each closed
    (its end no later than the moment ingest stopped)."""
    return History(
        confirmed=confirmed_from_log(confirm_log), applied=await applied(engine),
        gaps=await gaps(engine), counted=await counted(engine),
        truth=sessions_truth(scenes, sessions), events=tuple(events),
        windows={camera: list(spans) for camera, spans in sessions.items()},
    )
