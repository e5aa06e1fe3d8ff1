"""Ingest wiring: hold a fair share of the cameras through leases, one pipeline per camera held.

Four loops share the node's state, in one TaskGroup:
- the renewer says the node is alive and extends its leases every LEASE_RENEW_S; it never
  waits on a pipeline, so a slow RTSP TEARDOWN cannot make the other leases lapse;
- the watchdog stops a camera as soon as its lease is no longer held locally (deadline passed
  without renewal, or a renewal said it was lost);
- the planner re-reads the enabled cameras and the other nodes every CAMERA_POLL_S (so cameras
  added, changed or disabled through the API take effect without a restart), takes free
  cameras up to its share, hands over its surplus, and, on the node with the lowest id only,
  marks the cameras nobody has room for as `unassigned`;
- the status board writes camera statuses and their events.
A camera handed over voluntarily (rebalance, disabled) has its pipeline cancelled and awaited,
RTSP TEARDOWN included, before its lease is released: the next node cannot start before this
one stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from contracts import broker
from contracts.camera_status import CameraStatus
from contracts.secrets import mask_url
from infra import amqp, db, ops
from infra.runner import cancel_and_wait, shutdown_step
from ingest import metrics
from ingest.cameras import CameraSpec, enabled_cameras
from ingest.lease_store import LeaseStore
from ingest.leases import (
    LeaseLost,
    LocalLease,
    View,
    next_round_in_s,
    plan_round,
    unassigned_reason,
    validity_margin_s,
)
from ingest.pipeline import CameraPipeline
from ingest.publisher import BrokerLink, ConnectionLink
from ingest.settings import IngestSettings
from ingest.status_store import StatusBoard

log = logging.getLogger("camcount.ingest")

WATCHDOG_TICK_S = 0.1
_DB_ERRORS = (OSError, SQLAlchemyError, TimeoutError)


@dataclass(eq=False)
class _Camera:
    spec: CameraSpec
    lease: LocalLease
    pipeline: CameraPipeline | None = None
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Task[None] | None = None  # set once the camera is on its way out
    restarting: asyncio.Task[None] | None = None  # a changed spec: same lease, new pipeline

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class Ingest:
    def __init__(self, settings: IngestSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.clock = settings, clock
        self.node_id = settings.node_id
        self.engine = db.create_engine(settings.database_url)
        self.store = LeaseStore(self.engine, self.node_id, boot_id=uuid.uuid4().hex,
                                ttl_s=settings.lease_ttl_s)
        # Locally a lease ends this long after its renewal was sent; the database's ends later.
        self.validity_s = settings.lease_ttl_s - validity_margin_s(settings.lease_ttl_s)
        self.cameras: dict[str, _Camera] = {}
        self.unassigned: dict[str, str] = {}  # camera -> reason, as last reported by this node
        self.registered = asyncio.Event()
        self.polling = False
        self._wake = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._link: BrokerLink | None = None
        self._board: StatusBoard | None = None

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.polling and self.registered.is_set(),
            "node_id": self.node_id,
            "capacity": self.settings.ingest_capacity,
            "leases": {cid: c.lease.token for cid, c in sorted(self.cameras.items())
                       if c.lease.held() and c.stopping is None},
            "cameras": {cid: c.pipeline.status if c.pipeline else "starting"
                        for cid, c in sorted(self.cameras.items())},
            "unassigned": sorted(self.unassigned),
        }

    async def run(self, stop: asyncio.Event) -> None:
        connection = await amqp.connect(self.settings.rabbitmq_url, self.node_id)
        server = ops.ops_server(self.settings.ops_host, self.settings.ops_port, self.health)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await amqp.declare_frames_topology(channel)
            events = await channel.get_exchange(broker.REGISTRY_EVENTS)
            self._link = ConnectionLink(connection, channel.default_exchange)
            self._board = board = StatusBoard(self.engine, self.node_id, events)
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(server.serve())
                writer = tg.create_task(board.run())
                renewer = tg.create_task(self._renew_forever())
                watchdog = tg.create_task(self._watch_forever())
                log.info("ingest ready node=%s capacity=%d lease ttl=%.1fs", self.node_id,
                         self.settings.ingest_capacity, self.settings.lease_ttl_s)
                await self._plan_until(stop)
                await self._stop_all()
                # No heartbeat may follow the goodbye: it would bring the row back to life.
                await cancel_and_wait(renewer)
                await cancel_and_wait(watchdog)
                await self._leave()
                with contextlib.suppress(TimeoutError):
                    await board.flush()
                await cancel_and_wait(writer)
                server.should_exit = True
        finally:
            await shutdown_step(connection.close(), "closing the RabbitMQ connection")
            await shutdown_step(self.engine.dispose(), "closing the database pool")

    # --- the planner -------------------------------------------------------------------------

    async def _plan_until(self, stop: asyncio.Event) -> None:
        await _until(stop, self.registered.wait())
        while not stop.is_set():
            try:
                wait_s = await self._plan_once()
                self.polling = True
            except _DB_ERRORS as exc:
                log.warning("planning round failed: %s", exc)
                wait_s = self.settings.camera_poll_s
            self._wake.clear()
            await _until(stop, self._wake.wait(), timeout_s=wait_s)

    async def _plan_once(self) -> float:
        wanted = await enabled_cameras(self.engine)
        snapshot = await self.store.snapshot()
        for camera_id, camera in list(self.cameras.items()):
            if camera.stopping is not None or camera.restarting is not None:
                continue
            spec = wanted.get(camera_id)
            if spec is None:
                # A deleted camera's row is gone and the board drops the write; a disabled
                # one reads `disabled` from here on, not the status it had while pulled.
                self._stop(camera, "disabled or removed",
                           then=("disabled", "disabled through the API"))
            elif spec != camera.spec:
                camera.restarting = self._spawn(self._restart(camera, spec), f"restart-{camera_id}")
        held = {cid for cid, c in self.cameras.items() if c.stopping is None and c.lease.held()}
        view = View(frozenset(wanted), snapshot.nodes, snapshot.holders())
        plan = plan_round(self.node_id, view, held, set(self.cameras) - held,
                          self.settings.lease_max_releases)
        for camera_id in plan.release:
            self._stop(self.cameras[camera_id], f"handed over (share {plan.target})")
        if plan.acquire:
            sent = self.clock()
            for camera_id, token in (await self.store.acquire(plan.acquire)).items():
                lease = LocalLease(camera_id, self.node_id, token, sent + self.validity_s,
                                   self.clock)
                self.cameras[camera_id] = _Camera(wanted[camera_id], lease)
                log.info("camera %s: lease taken (token %d, share %d)", camera_id, token,
                         plan.target)
        for camera in self.cameras.values():
            if (camera.stopping is None and camera.restarting is None and not camera.running()
                    and camera.lease.held()):
                self._start(camera)
        self._report_unassigned(plan.unassigned, view)
        metrics.CAMERAS.set(sum(1 for c in self.cameras.values() if c.running()))
        foreign = [lease.expires_in_s for lease in snapshot.leases
                   if lease.node_id != self.node_id]
        return next_round_in_s(self.settings.camera_poll_s, foreign)

    def _report_unassigned(self, cameras: tuple[str, ...], view: View) -> None:
        """Only the node with the lowest id reports (plan_round decides), so one node writes a
        camera's `unassigned`; the node that later takes it writes `connecting` over it."""
        reason = unassigned_reason(view.nodes, len(view.cameras))
        board = self._board
        for camera_id in cameras:
            if self.unassigned.get(camera_id) != reason and board is not None:
                log.warning("camera %s: unassigned: %s", camera_id, reason)
                board.announce(camera_id, "unassigned", reason)
        self.unassigned = dict.fromkeys(cameras, reason)

    # --- one camera --------------------------------------------------------------------------

    def _start(self, camera: _Camera) -> None:
        assert self._link is not None and self._board is not None
        camera.pipeline = CameraPipeline(camera.spec, self.settings, self.engine, self._link,
                                         camera.lease, self._board)
        camera.task = self._spawn(self._run_pipeline(camera, camera.pipeline),
                                  f"camera-{camera.spec.id}")
        log.info("camera %s: started %s", camera.spec.id, mask_url(camera.spec.url))

    async def _run_pipeline(self, camera: _Camera, pipeline: CameraPipeline) -> None:
        try:
            await pipeline.run()
        except LeaseLost:
            camera.lease.end("lost")  # the watchdog stops and forgets it
        except Exception:
            # One broken camera must not take the node and every other camera down: the
            # planner starts it again next round.
            log.exception("camera %s: pipeline failed", camera.spec.id)

    async def _restart(self, camera: _Camera, spec: CameraSpec) -> None:
        if camera.task is not None:
            await cancel_and_wait(camera.task)
        camera.spec, camera.pipeline, camera.task, camera.restarting = spec, None, None, None
        log.info("camera %s: settings changed: restarting", spec.id)
        self._wake.set()

    def _stop(self, camera: _Camera, why: str,
              then: tuple[CameraStatus, str] | None = None) -> None:
        if camera.stopping is None:
            log.info("camera %s: stopping (%s)", camera.spec.id, why)
            camera.stopping = self._spawn(self._stop_and_release(camera, then),
                                          f"stop-{camera.spec.id}")

    async def _stop_and_release(self, camera: _Camera,
                                then: tuple[CameraStatus, str] | None = None) -> None:
        for task in (camera.restarting, camera.task):
            if task is not None:
                await cancel_and_wait(task)  # RTSP TEARDOWN sent, socket closed
        lease = camera.lease
        if lease.ended is None:
            try:
                await self.store.release({lease.camera_id: lease.token})
            except _DB_ERRORS as exc:
                log.warning("camera %s: release failed (it expires on its own): %s",
                            lease.camera_id, exc)
        lease.end("released")
        if then is not None and self._board is not None:
            self._board.announce(lease.camera_id, *then)
        if self.cameras.get(lease.camera_id) is camera:
            del self.cameras[lease.camera_id]
        log.info("camera %s: stopped, lease %d given up", lease.camera_id, lease.token)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        assert self._tg is not None
        task: asyncio.Task[None] = self._tg.create_task(coro, name=name)
        return task

    # --- renewer and watchdog ----------------------------------------------------------------

    async def _renew_forever(self) -> None:
        every_s = self.settings.lease_renew_every_s
        while True:
            sent = self.clock()
            leases = [c.lease for c in self.cameras.values() if c.lease.held()]
            try:
                # A renewal slower than the validity could not revive anything anyway.
                kept = await asyncio.wait_for(self.store.renew(
                    self.settings.ingest_capacity,
                    {lease.camera_id: lease.token for lease in leases}), self.validity_s)
            except _DB_ERRORS as exc:
                log.warning("lease renewal failed (cameras stop when their leases lapse): %s",
                            exc)
            else:
                self.registered.set()
                for lease in leases:
                    if (lease.camera_id, lease.token) in kept:
                        lease.renewed(sent, self.validity_s)
                    elif lease.ended is None:
                        log.warning("camera %s: lease %d lost", lease.camera_id, lease.token)
                        lease.end("lost")
            await asyncio.sleep(max(0.0, sent + every_s - self.clock()))

    async def _watch_forever(self) -> None:
        while True:
            for camera in list(self.cameras.values()):
                if camera.stopping is None and not camera.lease.held():
                    self._stop(camera, f"lease {camera.lease.ended or 'not renewed in time'}")
            await asyncio.sleep(WATCHDOG_TICK_S)

    async def _stop_all(self) -> None:
        """Graceful stop: stop every camera and release its lease; the renewer keeps the
        leases meanwhile, so a slow TEARDOWN cannot let another node start early."""
        for camera in list(self.cameras.values()):
            self._stop(camera, "node stopping")
        pending = [c.stopping for c in self.cameras.values() if c.stopping is not None]
        await asyncio.gather(*pending, return_exceptions=True)

    async def _leave(self) -> None:
        """Drop the node's row so the other nodes recompute their shares at once."""
        try:
            await self.store.leave()
        except _DB_ERRORS as exc:
            log.warning("could not remove this node's row (it expires on its own): %s", exc)
        log.info("ingest node %s left", self.node_id)


async def _until(stop: asyncio.Event, waiter: Awaitable[Any],
                 timeout_s: float | None = None) -> None:
    """Await `waiter` until it finishes, `stop` is set or `timeout_s` passes."""
    stopper = asyncio.ensure_future(stop.wait())
    other = asyncio.ensure_future(waiter)
    try:
        await asyncio.wait({stopper, other}, timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopper, other):
            if not task.done():
                await cancel_and_wait(task)
