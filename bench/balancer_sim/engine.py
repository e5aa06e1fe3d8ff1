"""A discrete-event simulation of the balancer driving the real liveness, breaker and policy.

One heap of events on a simulated clock (no sleeps), one seeded RNG. The balancer side knows
only what the real one could: heartbeats as they arrive (delayed, sometimes by a pause), queue
depths polled every tick, what it routed since, the cameras it assigned, and each batch's
verdict. The worker side is the truth: priority queues (RabbitMQ's), one batch at a time,
crashes that keep the queue (a durable queue outlives its consumer) and hand the unacked batch
back, slow spells, error spells and freezes (a broker alarm: no beats, no progress, queue
kept). A worker judged down has its queue re-routed, oldest first; a nacked batch is re-routed
while its deadline allows. Every camera move is logged (`Tally.move_log`).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from balancer.breaker import Breaker, BreakerConfig, Outcome
from balancer.liveness import Liveness, LivenessConfig, LivenessEvent
from balancer.policy import BatchRequest, Delay, Policy, Route, WorkerView
from bench.balancer_sim.fleet import CameraSpec, Fault, Fleet, SimConfig, WorkerSpec
from bench.balancer_sim.results import Move, Tally
from contracts.broker import Priority
from contracts.messages import WorkerHeartbeat

CAMERA, DONE, BEAT_SEND, BEAT_ARRIVE, TICK, RETRY, FAULT = range(7)
TICK_S = 0.25  # how often the balancer applies the clock to liveness and breakers
SLOW_FACTOR = 6.0
ERROR_RATE = 0.7


@dataclass(slots=True)
class Batch:
    camera: CameraSpec
    captured_s: float
    deadline_s: float
    corrupt: bool
    extra_s: float = 0.0  # transfer to another region
    last_delay: str = ""


@dataclass(slots=True)
class SimWorker:
    spec: WorkerSpec
    service_ema_s: float
    alive: bool = False
    boot: int = 0
    queue: list[tuple[int, int, Batch]] = field(default_factory=list)
    busy: Batch | None = None
    busy_since: float = 0.0
    token: int = 0  # invalidates a DONE scheduled before a crash
    slow: float = 1.0
    error_rate: float = 0.0
    alive_since: float = 0.0
    alive_s: float = 0.0
    busy_s: float = 0.0
    frozen: bool = False  # blocked (a broker alarm): no beats, no progress, queue kept
    finished_frozen: bool = False  # its batch was done while frozen: acked at the thaw


class Simulation:
    def __init__(self, config: SimConfig, fleet: Fleet, policy: Policy) -> None:
        self.config = config
        self.fleet = fleet
        self.policy = policy
        self.rng = random.Random(config.seed * 7919 + 1)
        self.now = 0.0
        self.end_s = config.duration_s  # utilisation is measured while cameras produce
        self.events: list[tuple[float, int, int, object]] = []
        self.order = 0
        self.tally = Tally()
        self.workers = {w.worker_id: SimWorker(w, 1 / w.capacity_per_s) for w in fleet.workers}
        # What the balancer knows.
        self.liveness = Liveness(LivenessConfig(first_interval_s=config.heartbeat_s))
        self.breakers = {
            w.worker_id: Breaker(BreakerConfig(slow_s=4.0 / w.capacity_per_s, cool_down_s=5.0))
            for w in fleet.workers}
        self.views: dict[str, WorkerView] = {}
        self.beats: dict[str, WorkerHeartbeat] = {}
        # Queue depths polled from the broker each tick (a passive queue.declare gives the
        # message count), then estimated between polls: + routed, - drained at capacity.
        self.polled: dict[str, tuple[int, float]] = {}
        self.routed_since: dict[str, int] = {}
        self.held: dict[str, list[float]] = {}  # batch rate held per priority
        self.holder: dict[str, str] = {}
        self.held_since: dict[str, float] = {}  # when the holder took the camera
        self.holds: dict[str, deque[Batch]] = {}
        self.cameras = {c.camera_id: c for c in fleet.cameras}

    def run(self) -> Tally:
        for cam in self.fleet.cameras:
            self._at(cam.phase_s, CAMERA, cam)
        for spec in self.fleet.workers:
            if spec.joins_at_s == 0.0:
                self._start(self.workers[spec.worker_id])
        for fault in self.fleet.faults:
            self._at(fault.at_s, FAULT, fault)
        self._at(TICK_S, TICK, None)
        stop_s = self.config.duration_s + self.config.deadline_s + 10.0
        while self.events:
            self.now, _, kind, payload = heapq.heappop(self.events)
            if self.now > stop_s:
                break
            self._dispatch(kind, payload)
        # Whatever is still somewhere is long past its deadline: a stale gap, never lost.
        self.tally.sweep(self._leftovers())
        for w in self.workers.values():
            if w.alive:
                w.alive_s += max(0.0, self.end_s - min(w.alive_since, self.end_s))
        self.tally.utilisation = [w.busy_s / w.alive_s for w in self.workers.values()
                                  if w.alive_s > 0]
        return self.tally

    def _leftovers(self) -> list[Priority]:
        found = [b.camera.priority for held in self.holds.values() for b in held]
        for w in self.workers.values():
            found += [b.camera.priority for _, _, b in w.queue]
            if w.busy is not None:
                found.append(w.busy.camera.priority)
        return found

    def _at(self, t: float, kind: int, payload: object) -> None:
        self.order += 1
        heapq.heappush(self.events, (t, self.order, kind, payload))

    def _dispatch(self, kind: int, payload: object) -> None:
        if kind == CAMERA:
            assert isinstance(payload, CameraSpec)
            self._camera(payload)
        elif kind == DONE:
            assert isinstance(payload, tuple)
            self._done(self.workers[payload[0]], payload[1])
        elif kind == BEAT_SEND:
            assert isinstance(payload, tuple)
            self._beat_send(self.workers[payload[0]], payload[1])
        elif kind == BEAT_ARRIVE:
            assert isinstance(payload, WorkerHeartbeat)
            self._on_liveness(self.liveness.observe(payload, self.now))
            self._beat_arrive(payload)
        elif kind == TICK:
            self._tick()
        elif kind == RETRY:
            assert isinstance(payload, str)
            self._retry(payload)
        else:
            self._fault(payload)

    # --- cameras and the balancer --------------------------------------------------------

    def _camera(self, cam: CameraSpec) -> None:
        if self.now >= self.config.duration_s:
            return
        self._at(self.now + cam.period_s, CAMERA, cam)
        corrupt = self.rng.random() < self.config.corrupt_share
        batch = Batch(cam, self.now, self.now + self.config.deadline_s, corrupt)
        self.tally.generated[cam.priority] += 1
        self._offer(batch)

    def _offer(self, batch: Batch) -> None:
        held = self.holds.get(batch.camera.camera_id)
        if held:
            held.append(batch)  # a camera's batches keep their order behind a delayed one
        elif not self._try(batch):
            self.holds[batch.camera.camera_id] = deque([batch])

    def _retry(self, camera_id: str) -> None:
        held = self.holds[camera_id]
        while held:
            if not self._try(held[0]):
                return
            held.popleft()
        del self.holds[camera_id]

    def _try(self, batch: Batch) -> bool:
        """Decide and act; False when the batch is delayed (a RETRY is scheduled)."""
        cam = batch.camera
        if self.now >= batch.deadline_s:
            self.tally.gap(cam.priority, "no_worker" if batch.last_delay == "no_worker"
                           else "stale")
            return True
        request = BatchRequest(cam.camera_id, cam.capability, cam.region, cam.priority,
                               batch.deadline_s - self.now, self.holder.get(cam.camera_id),
                               cam.strict, 1 / cam.period_s,
                               held_since_mono=self.held_since.get(cam.camera_id, -math.inf))
        decision = self.policy.decide(request, self.views, self.now)
        if isinstance(decision, Delay):
            batch.last_delay = decision.reason
            self._at(self.now + decision.retry_after_s, RETRY, cam.camera_id)
            return False
        if not isinstance(decision, Route):
            self.tally.gap(cam.priority, "shed")
            return True
        wid = decision.worker_id
        if decision.reason == "probe":
            taken = self.breakers[wid].allow(self.now)
            assert taken, "the policy chose a half-open worker without a probe slot"
        self._assign(cam.camera_id, wid, decision.reason)
        self.routed_since[wid] = self.routed_since.get(wid, 0) + 1
        self._refresh(wid)
        batch.extra_s = 0.0 if self.workers[wid].spec.region == cam.region else (
            self.config.cross_region_s)
        self._enqueue(self.workers[wid], batch)
        return True

    def _assign(self, camera_id: str, wid: str, reason: str) -> None:
        previous = self.holder.get(camera_id)
        if previous == wid:
            return
        cam = self.cameras[camera_id]
        if previous is not None:
            self.held[previous][cam.priority] -= 1 / cam.period_s
            self.tally.moves += 1
            source = self.views.get(previous)
            self.tally.move_log.append(Move(self.now, camera_id, previous, wid,
                                            "down" if source is None else source.breaker,
                                            reason))
        self.holder[camera_id] = wid
        self.held_since[camera_id] = self.now
        self.held.setdefault(wid, [0.0] * 4)[cam.priority] += 1 / cam.period_s

    def _refresh(self, wid: str) -> None:
        beat = self.beats.get(wid)
        state = self.liveness.state(wid, self.now)
        if beat is None or state == "down":
            self.views.pop(wid, None)
            return
        breaker = self.breakers[wid]
        capacity = max(beat.capacity_per_s, 1e-6)
        self.views[wid] = WorkerView(
            wid, beat.region, frozenset(beat.capabilities), capacity,
            backlog=self._backlog(wid, capacity),
            latency_ema_s=beat.latency_ema_s,
            held_per_s=_four(self.held.get(wid, [0.0] * 4)),
            liveness=state, breaker=breaker.state(self.now),
            probe_slots=breaker.probe_slots(self.now))

    def _backlog(self, wid: str, capacity_per_s: float) -> int:
        depth, at = self.polled.get(wid, (0, self.now))
        drained = capacity_per_s * (self.now - at)
        return max(0, round(depth + self.routed_since.get(wid, 0) - drained))

    def _beat_arrive(self, beat: WorkerHeartbeat) -> None:
        self.beats[beat.worker_id] = beat
        self._refresh(beat.worker_id)

    def _tick(self) -> None:
        self._on_liveness(self.liveness.poll(self.now))
        for wid, w in self.workers.items():
            self.polled[wid] = (len(w.queue) + (w.busy is not None), self.now)
            self.routed_since[wid] = 0
            if wid in self.views:
                self._refresh(wid)  # also open -> half-open, which happens by the clock
        self._at(self.now + TICK_S, TICK, None)

    def _on_liveness(self, events: list[LivenessEvent]) -> None:
        for event in events:
            if event.kind == "worker.down":
                self.tally.downs += 1
                self.views.pop(event.worker_id, None)
                self._failover(self.workers[event.worker_id])
            elif event.kind == "worker.suspect":
                self._refresh(event.worker_id)

    def _failover(self, w: SimWorker) -> None:
        """The worker is judged dead: its queued batches are re-routed, oldest first."""
        if w.busy is not None:
            self._requeue_busy(w)
        queued = sorted(w.queue, key=lambda item: item[2].captured_s)
        w.queue.clear()
        for _, _, batch in queued:
            self._offer(batch)

    # --- the workers ----------------------------------------------------------------------

    def _enqueue(self, w: SimWorker, batch: Batch) -> None:
        self.order += 1
        heapq.heappush(w.queue, (-batch.camera.priority, self.order, batch))
        self._serve(w)

    def _serve(self, w: SimWorker) -> None:
        if not w.alive or w.frozen or w.busy is not None:
            return  # re-entered: a nacked batch re-routed to this same worker
        while w.queue:
            _, _, batch = heapq.heappop(w.queue)
            prio = batch.camera.priority
            if self.now >= batch.deadline_s:
                self.tally.gap(prio, "stale")  # real time first: never processed late
            elif batch.corrupt:
                self.tally.gap(prio, "dead_lettered")
                self._verdict(w, Outcome.DATA_ERROR, 0.0)
            else:
                w.busy, w.busy_since = batch, self.now
                service_s = w.slow * self.rng.lognormvariate(-0.03, 0.25) / (
                    w.spec.capacity_per_s)
                self._at(self.now + service_s, DONE, (w.spec.worker_id, w.token))
                return

    def _done(self, w: SimWorker, token: int) -> None:
        if token != w.token or w.busy is None:
            return  # the worker crashed meanwhile
        if w.frozen:
            w.finished_frozen = True
            return
        batch, service_s = w.busy, self.now - w.busy_since
        w.busy = None
        self._busy(w, w.busy_since, self.now)
        w.service_ema_s = 0.8 * w.service_ema_s + 0.2 * service_s
        if self.rng.random() < w.error_rate:
            self._verdict(w, Outcome.FAILURE, service_s)
            self._offer(batch)  # nacked: re-routed while its deadline allows
        else:
            self._verdict(w, Outcome.SUCCESS, service_s)
            prio = batch.camera.priority
            self.tally.done(prio, self.now - batch.captured_s + batch.extra_s)
        self._serve(w)

    def _verdict(self, w: SimWorker, outcome: Outcome, service_s: float) -> None:
        wid = w.spec.worker_id
        breaker = self.breakers[wid]
        before = breaker.state(self.now)
        breaker.record(outcome, service_s, self.now)
        after = breaker.state(self.now)
        if after == "open" and before != "open":
            self.tally.opens += 1
        if wid in self.views and (after != before or after == "half_open"):
            self._refresh(wid)

    def _busy(self, w: SimWorker, start: float, stop: float) -> None:
        w.busy_s += max(0.0, min(stop, self.end_s) - min(start, self.end_s))

    def _requeue_busy(self, w: SimWorker) -> None:
        assert w.busy is not None
        self._busy(w, w.busy_since, self.now)
        self.order += 1
        heapq.heappush(w.queue, (-w.busy.camera.priority, self.order, w.busy))
        w.busy = None
        w.token += 1

    def _start(self, w: SimWorker) -> None:
        w.alive, w.alive_since = True, self.now
        w.boot += 1
        w.service_ema_s = w.slow / w.spec.capacity_per_s  # its start-up benchmark
        self._beat_send(w, w.boot)
        self._serve(w)

    def _beat_send(self, w: SimWorker, boot: int) -> None:
        if not w.alive or boot != w.boot:
            return
        self._at(self.now + self.config.heartbeat_s, BEAT_SEND, (w.spec.worker_id, boot))
        if w.frozen:
            return
        # Usually a few ms to 200 ms; now and then a pause of up to 1.5 s (GC, a full link).
        delay = self.rng.uniform(0.5, 1.5) if self.rng.random() < 0.02 else (
            self.rng.uniform(0.0, 0.2))
        spec = w.spec
        self._at(self.now + delay, BEAT_ARRIVE, WorkerHeartbeat(
            worker_id=spec.worker_id, boot_id=f"{spec.worker_id}-{boot}", region=spec.region,
            capabilities=tuple(sorted(spec.capabilities)), queue=spec.worker_id,
            in_flight=len(w.queue) + (w.busy is not None), latency_ema_s=w.service_ema_s,
            capacity_per_s=1 / w.service_ema_s, sent_at=1.0 + self.now))

    def _fault(self, payload: object) -> None:
        assert isinstance(payload, Fault)
        w = self.workers[payload.worker_id]
        kind = payload.kind
        if kind == "crash" and w.alive:
            if w.busy is not None:
                self._requeue_busy(w)  # unacked: the broker hands it back
            w.alive = False
            w.alive_s += max(0.0, min(self.now, self.end_s) - min(w.alive_since, self.end_s))
        elif kind in ("restart", "join") and not w.alive:
            self._start(w)
        elif kind in ("slow", "fast"):
            w.slow = SLOW_FACTOR if kind == "slow" else 1.0
        elif kind in ("errors", "healthy"):
            w.error_rate = ERROR_RATE if kind == "errors" else 0.0
        elif kind == "freeze":
            w.frozen = True
        elif kind == "thaw" and w.frozen:
            w.frozen = False
            if w.finished_frozen and w.busy is not None:
                self._at(self.now, DONE, (w.spec.worker_id, w.token))
            w.finished_frozen = False
            self._serve(w)


def _four(rates: list[float]) -> tuple[float, float, float, float]:
    return rates[0], rates[1], rates[2], rates[3]


def simulate(config: SimConfig, fleet: Fleet, policy: Policy) -> Tally:
    return Simulation(config, fleet, policy).run()
