"""The per-batch apply transaction (invariants 1-3), thin I/O around the pure cores.

One transaction: lock the camera's assignment row (serialises appliers of one camera), check
the fencing epoch, read progress, decide, run tracking/counting, write crossing events, count
buckets, gaps, progress with the tracker checkpoint and an outbox row, NOTIFY the relay.
The AMQP ack happens only after this commits.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.geometry import LineGeometry
from contracts.messages import BatchHeaders
from contracts.tables import (
    OUTBOX_CHANNEL,
    assignments,
    camera_progress,
    count_buckets,
    counting_lines,
    crossing_events,
    outbox,
)
from infra.gaps import record_gaps
from workers.camera_state import CameraState, advance, count_key
from workers.counting import CountingLine, Crossing
from workers.detection import Detection
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


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _minute(ts: float) -> datetime:
    return _dt(ts - ts % 60)


async def load_lines(conn: AsyncConnection, camera_id: str) -> list[CountingLine]:
    rows = await conn.execute(
        select(counting_lines.c.id, counting_lines.c.version, counting_lines.c.geometry)
        .where(counting_lines.c.camera_id == camera_id, counting_lines.c.active)
        .order_by(counting_lines.c.id)
    )
    return [
        CountingLine(r.id, r.version, LineGeometry.model_validate(r.geometry)) for r in rows
    ]


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
) -> ApplyResult:
    """Apply one batch. `before_commit` runs inside the transaction after every write: the
    fault-injection point for a crash before the commit."""
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
        if cached is not None and cached.progress == progress:
            before = cached.state
        elif row is not None:
            # Another worker applied this camera since (failover): resume from its checkpoint.
            before = CameraState.from_checkpoint(row.tracker_checkpoint, row.totals,
                                                 tracker_config)
        else:
            before = CameraState(Tracker(tracker_config))
        state, crossings = advance(before, detections, lines)
        await record_gaps(conn, camera_id, decision.gaps)
        await _write_effects(conn, worker_id, headers, frame_times, state, crossings, row is None)
        if before_commit is not None:
            await before_commit()
    return ApplyResult(
        Outcome.APPLIED, tuple(crossings), state, Progress(headers.stream_epoch, headers.seq)
    )


async def _write_effects(
    conn: AsyncConnection,
    worker_id: str,
    headers: BatchHeaders,
    frame_times: Sequence[float],
    state: CameraState,
    crossings: Sequence[Crossing],
    first: bool,
) -> None:
    camera_id = headers.camera_id

    def at(c: Crossing) -> float:
        return frame_times[min(c.frame_index, len(frame_times) - 1)]

    if crossings:
        await conn.execute(
            insert(crossing_events).values([
                {"camera_id": camera_id, "line_id": c.line_id, "line_version": c.line_version,
                 "track_id": c.track_id, "object_class": c.object_class,
                 "direction": c.direction, "occurred_at": _dt(at(c)),
                 "stream_epoch": headers.stream_epoch, "seq": headers.seq}
                for c in crossings
            ])
        )
        buckets = Counter(
            (c.line_id, c.line_version, c.object_class, c.direction, _minute(at(c)))
            for c in crossings
        )
        stmt = insert(count_buckets).values([
            {"camera_id": camera_id, "line_id": k[0], "line_version": k[1],
             "object_class": k[2], "direction": k[3], "bucket_start": k[4], "count": n}
            for k, n in buckets.items()
        ])
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["camera_id", "line_id", "line_version", "object_class",
                                "direction", "bucket_start"],
                set_={"count": count_buckets.c.count + stmt.excluded.count},
            )
        )
    values = {
        "stream_epoch": headers.stream_epoch, "last_seq": headers.seq,
        "tracker_checkpoint": state.to_checkpoint(), "totals": state.totals,
        "worker_id": worker_id, "updated_at": func.now(),
    }
    if first:
        await conn.execute(insert(camera_progress).values(camera_id=camera_id, **values))
    else:
        await conn.execute(
            camera_progress.update().where(camera_progress.c.camera_id == camera_id).values(values)
        )
    delta = Counter(count_key(c.line_id, c.direction, c.object_class) for c in crossings)
    await conn.execute(
        insert(outbox).values(
            camera_id=camera_id, region=headers.region, topic="counts",
            payload={"batch_id": str(headers.batch_id), "captured_at": headers.captured_at,
                     "committed_at": time.time(), "delta": dict(delta),
                     "totals": state.totals},
        )
    )
    await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
