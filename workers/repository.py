"""The per-batch apply transaction (invariants 1-3), thin I/O around the pure cores.

One transaction: lock the camera's assignment row (serialises appliers of one camera), check
the fencing epoch, read progress, decide, run tracking/counting, write crossing events, count
buckets, gaps, progress with the tracker checkpoint and an outbox row, NOTIFY the relay.
The AMQP ack happens only after this commits.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.gaps import GapSpan
from contracts.messages import BatchHeaders
from contracts.tables import (
    assignments,
    batch_ledger,
    camera_progress,
)
from infra.gaps import record_gaps
from workers import backgrounds
from workers.camera_config import load_filter, load_lines, load_zones
from workers.camera_state import CameraState, advance
from workers.counting import Crossing
from workers.detection import Detection
from workers.effects import write_effects
from workers.ordering import Progress, decide
from workers.tracking import Tracker, TrackerConfig


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    FENCED = "fenced"


@dataclass(frozen=True)
class ApplyResult:
    outcome: Outcome
    crossings: tuple[Crossing, ...] = ()
    state: CameraState | None = None
    progress: Progress | None = None


@dataclass(frozen=True)
class CachedState:
    """The worker's in-memory state for a camera and the progress it corresponds to."""

    progress: Progress
    state: CameraState


async def apply_batch(
    engine: AsyncEngine,
    worker_id: str,
    headers: BatchHeaders,
    frame_times: Sequence[float],
    detections: Sequence[list[Detection]],
    cached: CachedState | None,
    tracker_config: TrackerConfig,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    ledger: bool = False,
    started_at: float | None = None,
    background: bytes | None = None,
) -> ApplyResult:
    """Apply one batch. `before_commit` runs inside the transaction after every write: the
    fault-injection point for a crash before the commit. `ledger` (BATCH_LEDGER) also writes a
    batch_ledger row in this transaction, so the fault suite sees every apply exactly.
    `background`: the camera's motion background (JPEG) to store, when one is due."""
    camera_id = headers.camera_id
    async with engine.begin() as conn:
        owner = (
            await conn.execute(
                select(assignments.c.worker_id, assignments.c.epoch)
                .where(assignments.c.camera_id == camera_id)
                .with_for_update()
            )
        ).first()
        if owner is None or owner.worker_id != worker_id or owner.epoch != headers.assignment_epoch:
            return ApplyResult(Outcome.FENCED)

        row = (
            await conn.execute(
                select(camera_progress).where(camera_progress.c.camera_id == camera_id)
            )
        ).first()
        progress = Progress(row.stream_epoch, row.last_seq) if row else None
        decision = decide(progress, headers.stream_epoch, headers.seq)
        if decision.action == "duplicate":
            return ApplyResult(Outcome.DUPLICATE, progress=progress)
        if decision.action == "late":
            await record_gaps(conn, camera_id, decision.gaps)
            return ApplyResult(Outcome.LATE, progress=progress)

        lines = await load_lines(conn, camera_id)
        zones = await load_zones(conn, camera_id)
        wanted = await load_filter(conn, camera_id)
        if cached is not None and cached.progress == progress:
            before = cached.state
        elif row is not None:
            # Another worker applied this camera since (failover): resume from its checkpoint.
            before = CameraState.from_checkpoint(row.tracker_checkpoint, row.totals,
                                                 tracker_config)
        else:
            before = CameraState(Tracker(tracker_config))
        state, effects = advance(before, wanted.apply(detections), lines, zones, frame_times)
        await record_gaps(conn, camera_id, decision.gaps)
        await write_effects(conn, worker_id, headers, frame_times, state, effects, row is None,
                            started_at)
        if background is not None:
            await backgrounds.save(conn, camera_id, background, headers.captured_at, worker_id)
        if ledger:
            await conn.execute(batch_ledger.insert().values(
                camera_id=camera_id, stream_epoch=headers.stream_epoch, seq=headers.seq,
                worker_id=worker_id, crossings=len(effects.crossings)))
        if before_commit is not None:
            await before_commit()
    return ApplyResult(
        Outcome.APPLIED, tuple(effects.crossings), state,
        Progress(headers.stream_epoch, headers.seq),
    )


async def record_stale(engine: AsyncEngine, headers: BatchHeaders) -> bool:
    """A batch past its deadline is not processed (real time first) and becomes a 'stale'
    gap — unless it was applied already: a redelivery of a batch whose commit made it but
    whose ack did not (the worker died between the two). A gap over an applied batch would
    make reports understate coverage. False: a duplicate, nothing recorded."""
    async with engine.begin() as conn:
        row = (await conn.execute(
            select(camera_progress.c.stream_epoch, camera_progress.c.last_seq)
            .where(camera_progress.c.camera_id == headers.camera_id))).first()
        progress = Progress(row.stream_epoch, row.last_seq) if row else None
        if decide(progress, headers.stream_epoch, headers.seq).action == "duplicate":
            return False
        await record_gaps(conn, headers.camera_id,
                          [GapSpan(headers.stream_epoch, headers.seq, headers.seq, "stale")])
        return True
