"""Acting on the fleet's changes: log them, count them, and fail over dead workers.

When liveness declares a worker down, the batches left in its queue are taken out one by one
(basic.get, priority then FIFO order, which is each camera's order since a camera has one
priority) and routed again through the policy, before any further ingress batch: a camera's
older batches reach its new worker ahead of its newer ones. Routing them moves the camera with
a new epoch, so the dead worker, should it wake up, is fenced. Batches past their deadline
become 'failover' gaps.

Batches the dead worker held unacked come back to its queue only when the broker closes its
connection (at once after a SIGKILL, after the AMQP heartbeat timeout for a frozen process,
after the drain of a stopping one): the queue is drained again every `recheck_s` for
`watch_s`, unless the worker comes back.

Only the active balancer drains (the one frames.ingress delivers to): a standby interleaving
its basic.gets with the active one's would reorder a camera's batches.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

from aio_pika.exceptions import AMQPError
from aiormq.exceptions import ChannelInvalidStateError

from balancer import metrics
from balancer.fleet import Changes, Fleet
from balancer.router import Router
from contracts.messages import MessageError

log = logging.getLogger("camcount.balancer")

# What a broker restart raises from a robust channel before it is reopened.
BROKER_ERRORS = (AMQPError, ConnectionError, TimeoutError, ChannelInvalidStateError)


@dataclass
class _Dead:
    down_mono: float
    drained_mono: float


class Failover:
    def __init__(self, fleet: Fleet, router: Router, watch_s: float, recheck_s: float) -> None:
        self.fleet = fleet
        self.router = router
        self.watch_s = watch_s
        self.recheck_s = recheck_s
        self.active = False  # set once frames.ingress delivers to this balancer
        self._pending: deque[str] = deque()
        self._dead: dict[str, _Dead] = {}
        self._draining = False

    def note(self, changes: Changes) -> None:
        for event in changes.liveness:
            metrics.LIVENESS_EVENTS.labels(event.kind).inc()
            log.info("%s %s boot=%s (%s)", event.kind, event.worker_id, event.boot_id,
                     event.reason)
            if event.kind == "worker.down":
                with contextlib.suppress(KeyError):  # a label set never exported
                    metrics.BREAKER_STATE.remove(event.worker_id)
                if event.worker_id not in self._pending:
                    self._pending.append(event.worker_id)
            elif event.kind == "worker.up":
                self._dead.pop(event.worker_id, None)
        for change in changes.breakers:
            metrics.BREAKER_TRANSITIONS.labels(change.to_state).inc()
            log.info("breaker %s %s -> %s", change.worker_id, change.from_state,
                     change.to_state)

    def dead(self) -> list[str]:
        return sorted(set(self._pending) | set(self._dead))

    async def settle(self) -> None:
        """Apply the clock to the fleet, then (active, and not already inside a drain) drain
        the queues of workers that went down."""
        now_mono = time.monotonic()
        self.note(self.fleet.poll(now_mono))
        if not self.active or self._draining:
            return
        self._draining = True
        try:
            while self._pending:
                worker_id = self._pending.popleft()
                if self.fleet.liveness.state(worker_id, now_mono) != "down":
                    continue  # back already (a new incarnation): its queue is its own again
                try:
                    moved = await self._drain(worker_id)
                except BROKER_ERRORS as exc:
                    # The broker is restarting: try again on a later tick, not crash the
                    # balancer (nobody would consume frames.ingress until it is restarted).
                    self._pending.appendleft(worker_id)
                    log.warning("failover %s postponed: %r", worker_id, exc)
                    return
                metrics.FAILOVERS.inc()
                log.info("failover %s: %d queued batches re-routed", worker_id, moved)
                self._dead[worker_id] = _Dead(now_mono, time.monotonic())
            for worker_id, dead in list(self._dead.items()):
                if now_mono - dead.down_mono > self.watch_s:
                    del self._dead[worker_id]
                    self.router.forget_queue(worker_id)
                elif now_mono - dead.drained_mono >= self.recheck_s:
                    dead.drained_mono = now_mono
                    try:
                        moved = await self._drain(worker_id)
                    except BROKER_ERRORS as exc:
                        log.warning("failover %s: recheck postponed: %r", worker_id, exc)
                        continue
                    if moved:
                        log.info("failover %s: %d more batches came back and were re-routed",
                                 worker_id, moved)
        finally:
            self._draining = False

    async def _drain(self, worker_id: str) -> int:
        queue = await self.router.worker_queue(worker_id)
        # At most what is there now: should the worker come back meanwhile and the policy
        # route to it again, this must not chase its own tail.
        limit = (await queue.declare()).message_count or 0
        moved = 0
        while moved < limit:
            if self.fleet.liveness.state(worker_id, time.monotonic()) != "down":
                break
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            moved += 1
            metrics.FAILOVER_BATCHES.inc()
            try:
                await self.router.route(message, "failover")
            except MessageError as exc:
                await self.router.dead_letter(message, exc)
        return moved

