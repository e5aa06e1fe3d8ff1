"""What each rule kind measures, read once per evaluation (thin I/O over PostgreSQL and the
broker's management API). Every reading maps a subject to its value; see rules.py for how
values and missing values are judged.

- count_over: crossing_events of the camera within the last `window_s` (not the per-minute
  buckets, too coarse for short windows), optionally one line (any version), class, direction.
- zone_occupancy: camera_progress.occupancy of the zone (any version), one class or all;
  unknown while the camera has no progress or its progress is older than ALERT_STALE_AFTER_S.
- camera_status: 1 while the camera's status (as the API reports it) is one of `statuses`. A
  status written by an ingest node that is no longer alive counts as `unassigned`: nobody
  watches the camera, whatever its last row said.
- worker_down: 1 while a worker that did not announce its stop is judged down by the active
  balancer or sent no heartbeat for WORKER_DOWN_AFTER_S (the registry's own clock).
- latency: each live worker's capture-to-commit latency (latency_ema_s of its last heartbeat):
  it names the slow worker. A worker that is down or stopping is not measured.
- queue_lag: ready messages of one queue, or of frames.ingress and every frames.worker.*.
- dlq_not_empty: messages in frames.dead, ready or not.

Camera kinds cover the rule's camera, or every enabled camera of the rule's site (of every
site for a fleet-wide rule). A disabled or deleted camera is not measured: its alert resolves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.broker import FRAMES_DEAD, FRAMES_INGRESS
from contracts.secrets import mask_credentials
from contracts.tables import (
    camera_progress,
    cameras,
    counting_lines,
    crossing_events,
    workers,
    zones,
)
from registry.alerting.params import (
    CameraStatusParams,
    CountOverParams,
    KindParams,
    QueueLagParams,
    ZoneOccupancyParams,
)
from registry.alerting.queues import QueueDepth, QueueStats
from registry.alerting.rule_store import StoredRule
from registry.status_repository import effective_status, status_rows


@dataclass(frozen=True)
class Reading:
    value: float | None  # None: could not be known this time
    text: str  # the measurement in words, for alert messages (credentials masked)
    camera_id: str | None = None
    region: str | None = None


SubjectReadings = dict[str, Reading]


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


class Measures:
    """The readings of one evaluation. Tables several rules need are read once."""

    def __init__(self, conn: AsyncConnection, queues: QueueStats | None, now: float, *,
                 worker_down_after_s: float, stale_after_s: float) -> None:
        self._conn, self._queues, self._now = conn, queues, now
        self._down_after_s, self._stale_after_s = worker_down_after_s, stale_after_s
        self._cache: dict[str, Any] = {}
        self._readers: Mapping[str, Callable[[StoredRule, Any],
                                             Awaitable[SubjectReadings | None]]] = {
            "count_over": self._count_over, "zone_occupancy": self._zone_occupancy,
            "camera_status": self._camera_status, "worker_down": self._worker_down,
            "latency": self._latency, "queue_lag": self._queue_lag,
            "dlq_not_empty": self._dlq,
        }

    async def read(self, rule: StoredRule, params: KindParams) -> SubjectReadings | None:
        """Each subject's reading; None when the rule could not be measured at all."""
        return await self._readers[rule.kind](rule, params)

    async def _once(self, name: str, load: Callable[[], Awaitable[Any]]) -> Any:
        if name not in self._cache:
            self._cache[name] = await load()
        return self._cache[name]

    # --- cameras ---

    async def _cameras(self) -> list[Row[Any]]:
        async def load() -> list[Row[Any]]:
            return list(await self._conn.execute(
                select(cameras.c.id, cameras.c.site, cameras.c.region, cameras.c.enabled,
                       cameras.c.updated_at).where(cameras.c.enabled).order_by(cameras.c.id)))
        found: list[Row[Any]] = await self._once("cameras", load)
        return found

    async def _cameras_of(self, rule: StoredRule) -> list[Row[Any]]:
        return [c for c in await self._cameras()
                if (rule.camera_id is None or c.id == rule.camera_id)
                and (rule.site is None or c.site == rule.site)]

    async def _count_over(self, rule: StoredRule, params: CountOverParams) -> SubjectReadings:
        covered = await self._cameras_of(rule)
        if not covered:
            return {}
        ev = crossing_events.c
        since = _at(self._now) - timedelta(seconds=params.window_s)
        query = (select(ev.camera_id, func.count().label("n"))
                 .where(ev.camera_id.in_([c.id for c in covered]), ev.occurred_at > since)
                 .group_by(ev.camera_id))
        if params.line_id is not None:
            named = counting_lines.alias("named")
            query = query.where(ev.line_id.in_(
                select(counting_lines.c.id).join(named, and_(
                    named.c.camera_id == counting_lines.c.camera_id,
                    named.c.name == counting_lines.c.name))
                .where(named.c.id == params.line_id)))
        if params.object_class is not None:
            query = query.where(ev.object_class == params.object_class)
        if params.direction is not None:
            query = query.where(ev.direction == params.direction)
        counted = {r.camera_id: int(r.n) for r in await self._conn.execute(query)}
        window = f"{params.window_s:g} s"
        return {c.id: Reading(float(counted.get(c.id, 0)),
                              f"{_plural(counted.get(c.id, 0), 'crossing')} in the last {window}",
                              c.id, c.region)
                for c in covered}

    async def _zone_occupancy(self, rule: StoredRule, params: ZoneOccupancyParams,
                              ) -> SubjectReadings:
        covered = await self._cameras_of(rule)
        if not covered:
            return {}
        named = zones.alias("named")
        versions = {str(r.id) for r in await self._conn.execute(
            select(zones.c.id).join(named, and_(named.c.camera_id == zones.c.camera_id,
                                                named.c.name == zones.c.name))
            .where(named.c.id == params.zone_id))}
        progress = {r.camera_id: r for r in await self._conn.execute(
            select(camera_progress.c.camera_id, camera_progress.c.occupancy,
                   camera_progress.c.updated_at)
            .where(camera_progress.c.camera_id.in_([c.id for c in covered])))}
        fresh_after = _at(self._now) - timedelta(seconds=self._stale_after_s)
        out: SubjectReadings = {}
        for camera in covered:
            row = progress.get(camera.id)
            if row is None or row.updated_at < fresh_after:
                out[camera.id] = Reading(None, "occupancy unknown (no recent progress)",
                                         camera.id, camera.region)
                continue
            inside = 0
            for key, n in (row.occupancy or {}).items():
                zone, _, cls = str(key).partition(":")
                if zone in versions and params.object_class in (None, cls):
                    inside += int(n)
            out[camera.id] = Reading(float(inside), f"{_plural(inside, 'object')} in zone "
                                     f"{params.zone_id}", camera.id, camera.region)
        return out

    async def _camera_status(self, rule: StoredRule, params: CameraStatusParams,
                             ) -> SubjectReadings:
        covered = await self._cameras_of(rule)
        every = [c.id for c in await self._cameras()]
        rows = await self._once("status", lambda: status_rows(self._conn, every))
        out: SubjectReadings = {}
        for camera in covered:
            seen = effective_status(camera, rows.get(camera.id))
            status, reason = seen.status, seen.reason
            if seen.node_alive is False:
                status, reason = "unassigned", f"its ingest node {seen.node_id} is gone"
            value = 1.0 if status in params.statuses else 0.0
            out[camera.id] = Reading(value, mask_credentials(f"is {status}: {reason}"),
                                     camera.id, camera.region)
        return out

    # --- workers ---

    async def _workers(self) -> list[Row[Any]]:
        async def load() -> list[Row[Any]]:
            return list(await self._conn.execute(
                select(workers.c.id, workers.c.status, workers.c.liveness, workers.c.judged_by,
                       workers.c.last_heartbeat_at, workers.c.latency_ema_s)
                .order_by(workers.c.id)))
        found: list[Row[Any]] = await self._once("workers", load)
        return found

    def _age_s(self, worker: Row[Any]) -> float:
        return self._now - float(worker.last_heartbeat_at.timestamp())

    async def _worker_down(self, rule: StoredRule, params: KindParams) -> SubjectReadings:
        out: SubjectReadings = {}
        for w in await self._workers():
            age = self._age_s(w)
            if w.status == "stopping":
                out[w.id] = Reading(0.0, "stopped on purpose")
            elif w.liveness == "down":
                out[w.id] = Reading(1.0, f"is down (judged by {w.judged_by}; last heartbeat "
                                         f"{age:.0f} s ago)")
            elif age > self._down_after_s:
                out[w.id] = Reading(1.0, f"is down: no heartbeat for {age:.0f} s")
            else:
                out[w.id] = Reading(0.0, "is up")
        return out

    async def _latency(self, rule: StoredRule, params: KindParams) -> SubjectReadings:
        return {w.id: Reading(float(w.latency_ema_s),
                              f"capture-to-commit latency {w.latency_ema_s:.2f} s")
                for w in await self._workers()
                if w.status != "stopping" and w.liveness != "down"
                and self._age_s(w) <= self._down_after_s}

    # --- queues ---

    async def _depths(self) -> dict[str, QueueDepth] | None:
        async def load() -> dict[str, QueueDepth] | None:
            return None if self._queues is None else await self._queues.depths()
        found: dict[str, QueueDepth] | None = await self._once("queues", load)
        return found

    async def _queue_lag(self, rule: StoredRule, params: QueueLagParams,
                         ) -> SubjectReadings | None:
        depths = await self._depths()
        if depths is None:
            return None
        if params.queue is not None:
            names = [params.queue] if params.queue in depths else []
        else:
            names = [n for n in depths if n == FRAMES_INGRESS or n.startswith("frames.worker.")]
        return {n: Reading(float(depths[n].ready),
                           f"holds {_plural(depths[n].ready, 'ready message')}") for n in names}

    async def _dlq(self, rule: StoredRule, params: KindParams) -> SubjectReadings | None:
        depths = await self._depths()
        if depths is None:
            return None
        dead = depths.get(FRAMES_DEAD)
        if dead is None:
            return {}
        return {FRAMES_DEAD: Reading(float(dead.messages),
                                     f"holds {_plural(dead.messages, 'dead-lettered message')}")}
