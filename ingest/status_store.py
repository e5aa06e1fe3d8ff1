"""Camera status, its history and ingest's coverage gaps, written to PostgreSQL off the frame
path, and each status change published on `registry.events` for alerts and dashboards.

The pipeline never waits on the database: `StatusBoard` queues each write (bounded) and one
writer task applies them in order, retrying while PostgreSQL is away. A write for a camera that
was deleted meanwhile is dropped; a full queue drops the newest stats refresh first and counts
every write it loses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractExchange
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.camera_status import CameraStatus
from contracts.messages import CameraStatusMessage
from contracts.tables import camera_events, camera_snapshots, camera_status, coverage_gaps
from ingest import metrics
from ingest.health import Effect, GapClosed, GapOpened, StatusChange

log = logging.getLogger("camcount.ingest")

MAX_PENDING_WRITES = 4096
RETRY_MAX_S = 5.0
EVENT_PUBLISH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Adopted:
    """What a node learns when it starts pulling a camera: where the last holder left off."""

    last_frame_at: float | None
    gap_open: bool


@dataclass(frozen=True)
class _Status:
    camera_id: str
    change: StatusChange


@dataclass(frozen=True)
class _Gap:
    camera_id: str
    stream_epoch: int
    started_at: float
    ended_at: float | None
    reason: str
    detail: str


@dataclass(frozen=True)
class _Close:
    camera_id: str
    ended_at: float


@dataclass(frozen=True)
class _Stats:
    camera_id: str
    last_frame_at: float | None
    stats: dict[str, float]


@dataclass(frozen=True)
class _Snapshot:
    camera_id: str
    jpeg: bytes
    width: int
    height: int
    captured_at: float


_Write = _Status | _Gap | _Close | _Stats | _Snapshot


def _ts(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


@dataclass
class StatusBoard:
    engine: AsyncEngine
    node_id: str
    events: AbstractExchange | None = None  # registry.events; None: record without publishing
    _queue: asyncio.Queue[_Write] = field(
        default_factory=lambda: asyncio.Queue(MAX_PENDING_WRITES))

    async def adopt(self, camera_id: str) -> Adopted:
        async with self.engine.connect() as conn:
            last = (await conn.execute(
                sa.select(camera_status.c.last_frame_at)
                .where(camera_status.c.camera_id == camera_id))).scalar_one_or_none()
            open_gap = (await conn.execute(
                sa.select(sa.func.count()).select_from(coverage_gaps).where(
                    coverage_gaps.c.camera_id == camera_id,
                    coverage_gaps.c.reason == "camera_down",
                    coverage_gaps.c.ended_at.is_(None)))).scalar_one()
        return Adopted(last.timestamp() if last is not None else None, bool(open_gap))

    def apply(self, camera_id: str, stream_epoch: int, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, StatusChange):
                log.info("camera %s: %s (%s)", camera_id, effect.status, effect.reason)
                self._put(_Status(camera_id, effect))
            elif isinstance(effect, GapOpened):
                self._put(_Gap(camera_id, stream_epoch, effect.started_at, None, "camera_down",
                               effect.detail))
            elif isinstance(effect, GapClosed):
                self._put(_Close(camera_id, effect.ended_at))

    def announce(self, camera_id: str, status: CameraStatus, reason: str) -> None:
        """A status judged without holding the camera (e.g. `unassigned`): written, and an
        event recorded, only when it differs from the stored one."""
        self._put(_Status(camera_id, StatusChange(status, None, reason, time.time())))

    def dropped(self, camera_id: str, stream_epoch: int, started_at: float, ended_at: float,
                detail: str) -> None:
        self._put(_Gap(camera_id, stream_epoch, started_at, ended_at, "dropped", detail))

    def refresh(self, camera_id: str, last_frame_at: float | None,
                stats: dict[str, float]) -> None:
        if self._queue.qsize() < MAX_PENDING_WRITES // 2:  # stats are the first to go
            self._put(_Stats(camera_id, last_frame_at, stats))

    def snapshot(self, camera_id: str, jpeg: bytes, width: int, height: int,
                 captured_at: float) -> None:
        """The camera's latest frame, for drawing lines on; dropped first, like stats."""
        if self._queue.qsize() < MAX_PENDING_WRITES // 2:
            self._put(_Snapshot(camera_id, jpeg, width, height, captured_at))

    def _put(self, write: _Write) -> None:
        try:
            self._queue.put_nowait(write)
        except asyncio.QueueFull:
            metrics.STATUS_WRITES_LOST.inc()

    async def run(self) -> None:
        """The writer: applies queued writes in order; runs until cancelled."""
        delay = 0.1
        while True:
            write = await self._queue.get()
            while True:
                try:
                    await self._write(write)
                    delay = 0.1
                    break
                except IntegrityError:
                    break  # the camera was deleted meanwhile: nothing left to describe
                except (OSError, sa.exc.SQLAlchemyError) as exc:
                    log.warning("status write failed, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            self._queue.task_done()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until what was queued so far is written (tests, graceful stop)."""
        await asyncio.wait_for(self._queue.join(), timeout_s)

    async def _write(self, write: _Write) -> None:
        async with self.engine.begin() as conn:
            if isinstance(write, _Status):
                message = await self._write_status(conn, write)
            else:
                message = None
                await self._write_other(conn, write)
        if message is not None and self.events is not None:
            try:
                # Bounded: during a broker alarm this publish would block, and with it every
                # camera's status and gap writes queued behind it.
                async with asyncio.timeout(EVENT_PUBLISH_TIMEOUT_S):
                    await self.events.publish(
                        aio_pika.Message(message.model_dump_json().encode(),
                                         content_type="application/json"),
                        routing_key=f"camera.{message.status}")
            except Exception as exc:  # the row is the record; the event is a hint
                log.warning("camera %s: status event not published: %s", message.camera_id, exc)

    async def _write_status(
        self, conn: AsyncConnection, write: _Status
    ) -> CameraStatusMessage | None:
        change = write.change
        previous = (await conn.execute(
            sa.select(camera_status.c.status).where(camera_status.c.camera_id == write.camera_id)
            .with_for_update())).scalar_one_or_none()
        values: dict[str, Any] = {"status": change.status, "reason": change.reason,
                                  "node_id": self.node_id, "updated_at": sa.func.now()}
        stmt = pg_insert(camera_status).values(
            camera_id=write.camera_id, since=_ts(change.since), **values)
        if previous != change.status:
            values["since"] = _ts(change.since)  # a new reason alone keeps "since when"
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[camera_status.c.camera_id], set_=values))
        if previous == change.status:
            return None
        event_id = (await conn.execute(camera_events.insert().values(
            camera_id=write.camera_id, status=change.status, previous=previous,
            reason=change.reason, at=_ts(change.since), node_id=self.node_id,
        ).returning(camera_events.c.id))).scalar_one()
        metrics.STATUS_CHANGES.labels(change.status).inc()
        return CameraStatusMessage(
            id=event_id, camera_id=write.camera_id, status=change.status,
            previous=previous, reason=change.reason, since=change.since, node_id=self.node_id)

    async def _write_other(self, conn: AsyncConnection, write: _Write) -> None:
        if isinstance(write, _Gap):
            await conn.execute(coverage_gaps.insert().values(
                camera_id=write.camera_id, stream_epoch=write.stream_epoch,
                seq_from=None, seq_to=None, started_at=_ts(write.started_at),
                ended_at=_ts(write.ended_at) if write.ended_at is not None else None,
                reason=write.reason, detail=write.detail))
        elif isinstance(write, _Close):
            await conn.execute(coverage_gaps.update().where(
                coverage_gaps.c.camera_id == write.camera_id,
                coverage_gaps.c.reason == "camera_down",
                coverage_gaps.c.ended_at.is_(None),
            ).values(ended_at=_ts(write.ended_at)))
        elif isinstance(write, _Snapshot):
            frame = {"jpeg": write.jpeg, "width": write.width, "height": write.height,
                     "captured_at": _ts(write.captured_at), "node_id": self.node_id}
            await conn.execute(pg_insert(camera_snapshots).values(
                camera_id=write.camera_id, **frame).on_conflict_do_update(
                index_elements=[camera_snapshots.c.camera_id], set_=frame))
        elif isinstance(write, _Stats):
            values: dict[str, Any] = {"stats": write.stats, "updated_at": sa.func.now()}
            if write.last_frame_at is not None:
                values["last_frame_at"] = _ts(write.last_frame_at)
            await conn.execute(camera_status.update().where(
                camera_status.c.camera_id == write.camera_id).values(**values))
