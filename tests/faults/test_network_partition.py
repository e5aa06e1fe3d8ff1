"""A worker on a host of its own (a network namespace) partitioned under load: cut off, then
restored, then slowed.

The balancer and a second worker run on this machine; RabbitMQ and PostgreSQL are private
servers listening on the bridge (tests/faults/service_host.py); the test publishes every batch
itself, with publisher confirms, so it knows what the broker took.

1. Cut under load (link down at the switch, tests/faults/netns.py): the worker's heartbeats
   stop, the balancer declares it down and moves its cameras to the other worker with a new
   epoch. The broker meanwhile pushed the worker's prefetch into a socket nobody reads; the
   cut is shorter than the AMQP heartbeat timeout, so the connection survives.
2. Restored: the worker receives those stale deliveries and tries to commit them. Fencing must
   refuse every one (outcome `fenced`): its epoch is stale. Its heartbeats make it live again.
3. Cut again, idle, until the broker closes the worker's connection (missed AMQP heartbeats),
   then restored: the worker must reconnect and consume its queue again.
4. Slowed: cameras assigned to the rejoined worker flow over a link limited with `tbf` (this
   kernel has no `netem`: a rate limit, so batches queue and arrive late, instead of a fixed
   per-packet delay), and it must apply them: its consumer is not left idle.

Pass: the checker finds nothing lost without a gap and nothing applied twice, and the counts
equal the scenes' truth over covered time; the cut worker applied nothing of a camera after
the camera moved; every worker queue has its consumer again and is empty at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.batch import decode_batch, encode_batch
from contracts.messages import BatchHeaders
from contracts.tables import assignments, batch_ledger
from infra import amqp
from infra.db import create_engine
from simulator.scenes import SyntheticScene
from tests.faults import netns
from tests.faults.checker import check
from tests.faults.deployment import Deployment, deployed
from tests.faults.f2_messages import producer_history
from tests.faults.history import applied
from tests.faults.service_host import ServiceHost, service_host
from tests.integration.roles import DOWN_BUDGET_S
from tests.support import eventually, publish, scene_batches, seed_camera

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PREFIX, SUBNET, AMQP_PORT, PG_PORT = "ccpt", "10.231.1.0/24", 5702, 5462
CUT, STEADY, BALANCER = "w-cut", "w-steady", "b1"
MOVED = ("cam-p1", "cam-p2")  # held by the cut worker, moved to the steady one
KEPT = ("cam-s1",)  # the steady worker's all along
REJOINED = ("cam-r1", "cam-r2")  # given to the cut worker once it is back, over the slow link
SEEDS = {"cam-p1": 41, "cam-p2": 42, "cam-s1": 43, "cam-r1": 44, "cam-r2": 45}
SEND_INTERVAL_S = 0.5  # one batch (5 frames at 10 fps) per camera: real time
# The cut worker's AMQP heartbeat: RabbitMQ closes a connection silent for two intervals, so
# a cut of CUT_S keeps it and a longer one loses it.
AMQP_HEARTBEAT_S = 4
CUT_S = 4.0  # past being declared down (DOWN_BUDGET_S), below 2 x AMQP_HEARTBEAT_S
SLOW_RATE = "2mbit"  # the rejoined cameras send ~1.9 Mbit/s of batches on average
# A worker cut off inside its apply transaction holds the camera's assignment row (SELECT ...
# FOR UPDATE), and the balancer's reassignment waits on that lock until PostgreSQL drops the
# session, which without this takes the kernel's TCP keepalive time (2 h): a deployment needs
# it too (see the report of this scenario). Above the slow link's worst round trips.
DB_SETTINGS = {"idle_in_transaction_session_timeout": "5s"}

Batches = list[tuple[BatchHeaders, bytes]]


def shifted(stream: Batches, start_at: float) -> Batches:
    """The stream captured from `start_at`: its batches were rendered before the stack started,
    and a capture time far in the past would read as latency (which steers the balancer)."""
    offset = start_at - stream[0][0].captured_at
    return [(h.model_copy(update={"captured_at": h.captured_at + offset,
                                  "deadline_at": h.deadline_at + offset}),
             encode_batch([dataclasses.replace(f, captured_at=f.captured_at + offset)
                           for f in decode_batch(body)]))
            for h, body in stream]


async def send(channel: AbstractChannel, rendered: Sequence[Batches],
               published: list[BatchHeaders]) -> None:
    """Publish the streams' batches to frames.ingress as a camera would, one of each per
    interval from now; a batch is recorded once the broker confirmed it."""
    streams = [shifted(stream, time.time()) for stream in rendered]
    for i in range(max(len(s) for s in streams)):
        for stream in streams:
            if i < len(stream):
                await publish(channel, broker.FRAMES_INGRESS, *stream[i])
                published.append(stream[i][0])
        await asyncio.sleep(SEND_INTERVAL_S)


async def applied_by(engine: AsyncEngine, worker_id: str) -> int:
    return sum(a.worker_id == worker_id for a in await applied(engine))


async def holder(engine: AsyncEngine, camera_id: str) -> tuple[str, int] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(assignments.c.worker_id, assignments.c.epoch).where(
            assignments.c.camera_id == camera_id))).first()
    return None if row is None else (row.worker_id, int(row.epoch))


async def test_a_cut_off_worker_is_failed_over_fenced_and_rejoins_over_a_slow_link(
    tmp_path: Path,
) -> None:
    netns.skip_unless_available()
    scenes = {cam: SyntheticScene(seed=seed, crossings=5, warmup_s=1.0)
              for cam, seed in SEEDS.items()}
    streams = {cam: scene_batches(scene, camera_id=cam, assignment_epoch=None, tail_s=2.0)
               for cam, scene in scenes.items()}
    with netns.network(PREFIX, SUBNET) as net, \
            service_host(PREFIX, net.gateway, AMQP_PORT, PG_PORT) as servers:
        host = net.add_host("wcut")
        async with servers.isolated("partition", DB_SETTINGS) as iso:
            engine = create_engine(iso.database_url)
            published: list[BatchHeaders] = []
            try:
                with deployed(tmp_path, iso.env(), servers.remote_env(iso)) as fleet:
                    broker_view = BrokerView(servers, iso.vhost)
                    await partition(net, host, fleet, engine, broker_view, iso.rabbitmq_url,
                                    streams, published)
                    await settled(broker_view, fleet, engine, streams)
                    # Drained on SIGTERM, the reconnected worker included.
                    assert set(fleet.stop().values()) == {0}
                verdict = check(await producer_history(engine, published, scenes))
                print(verdict.summary())
                verdict.assert_ok()
                await fencing_held(engine)
                for label, cams in (("over the slow link", REJOINED), ("steady", KEPT)):
                    delays = await commit_delays(engine, published, cams)
                    print(f"capture to commit, {label}: {delays}")
            finally:
                await engine.dispose()


@dataclasses.dataclass(frozen=True)
class BrokerView:
    """The broker's own view of a vhost, through its management API."""

    servers: ServiceHost
    vhost: str

    async def _get(self, path: str) -> list[dict[str, Any]]:
        mgmt = httpx.URL(self.servers.endpoints.rabbitmq_management_url)
        async with httpx.AsyncClient(base_url=f"http://{mgmt.host}:{mgmt.port}",
                                     auth=(mgmt.username, mgmt.password), timeout=10) as http:
            response = await http.get(path)
            response.raise_for_status()
            return list(response.json())

    async def queues(self) -> dict[str, tuple[int, int]]:
        """Queue name -> (messages, consumers)."""
        return {q["name"]: (q.get("messages", 0), q.get("consumers", 0))
                for q in await self._get(f"/api/queues/{self.vhost}")}

    async def peers(self) -> dict[str, str]:
        """Connection name -> the address it comes from."""
        return {c["client_properties"].get("connection_name", ""): c["peer_host"]
                for c in await self._get(f"/api/vhosts/{self.vhost}/connections")}


async def partition(net: netns.Network, host: netns.Host, fleet: Deployment,
                    engine: AsyncEngine, broker_view: BrokerView, rabbitmq_url: str,
                    streams: dict[str, Batches], published: list[BatchHeaders]) -> None:
    # The rejoined cameras are the cut worker's from the start (the balancer reads assignments
    # when it starts), but send nothing before it is back: failover does not move them.
    for cam in (*MOVED, *REJOINED):
        await seed_camera(engine, cam, worker_id=CUT)
    for cam in KEPT:
        await seed_camera(engine, cam, worker_id=STEADY)
    fleet.balancer(BALANCER, MOVES_PER_INTERVAL="0")  # only failover moves a camera
    remote_url = fleet.remote_env["RABBITMQ_URL"]
    fleet.worker(CUT, host, BATCH_LEDGER="true",
                 RABBITMQ_URL=f"{remote_url}?heartbeat={AMQP_HEARTBEAT_S}")
    fleet.worker(STEADY, BATCH_LEDGER="true")
    await fleet.wait_live(BALANCER, {CUT, STEADY})

    connection = await amqp.connect(rabbitmq_url, "partition-producer")
    async with connection:
        channel = await connection.channel()  # publisher confirms: publish returns on ack
        await amqp.declare_frames_topology(channel)
        sender = asyncio.create_task(send(channel, [streams[c] for c in (*MOVED, *KEPT)],
                                          published))
        await eventually(lambda: applied_by(engine, CUT), lambda n: n >= 6, timeout_s=60)

        net.cut(host)
        cut_mono = time.monotonic()
        await eventually(lambda: fleet.live_workers(BALANCER), lambda live: CUT not in live,
                         timeout_s=DOWN_BUDGET_S + 10, interval_s=0.05)
        print(f"cut to declared down: {time.monotonic() - cut_mono:.2f} s "
              f"(budget {DOWN_BUDGET_S:.1f} s)")
        for cam in MOVED:
            await eventually(lambda c=cam: holder(engine, c),  # type: ignore[misc]
                             lambda h: h == (STEADY, 2), timeout_s=15)
        fenced_before = await fleet.metric(CUT, "camcount_worker_batches_total",
                                           outcome="fenced")
        assert fenced_before is None, "the cut worker's ops server answered across the cut"
        await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - cut_mono)))
        net.restore(host)
        restored_mono = time.monotonic()
        await fleet.wait_live(BALANCER, {CUT}, timeout_s=30)
        print(f"restored to live again: {time.monotonic() - restored_mono:.2f} s")
        # What the broker pushed to it during the cut arrives now, for cameras it lost.
        fenced = await eventually(
            lambda: fleet.metric(CUT, "camcount_worker_batches_total", outcome="fenced"),
            lambda n: n is not None and n >= 1, timeout_s=30)
        print(f"late batches the cut worker was refused (fenced): {fenced:.0f}")
        await sender

        net.cut(host)
        cut_mono = time.monotonic()
        await eventually(broker_view.peers, lambda peers: CUT not in peers, timeout_s=60,
                         interval_s=0.5)
        print(f"cut to the broker closing the connection: {time.monotonic() - cut_mono:.1f} s")
        net.restore(host)
        restored_mono = time.monotonic()
        await eventually(lambda: back_and_consuming(broker_view, fleet),
                         lambda ok: ok, timeout_s=60, interval_s=0.5)
        print(f"restored to reconnected, consuming and live: "
              f"{time.monotonic() - restored_mono:.1f} s")
        peers = await broker_view.peers()
        assert peers[CUT] == host.address, peers

        before = await applied_by(engine, CUT)
        net.slow(host, rate=SLOW_RATE)
        sender = asyncio.create_task(send(channel, [streams[c] for c in REJOINED], published))
        rejoined = await eventually(lambda: applied_by(engine, CUT),
                                    lambda n: n >= before + 5, timeout_s=60)
        await sender
        held_back = net.held_back(host)
        print(f"batches the rejoined worker applied over the slow link so far: "
              f"{rejoined - before}; packets the link held back or dropped: {held_back}")
        assert held_back > 0, "the link was never slower than the traffic: no fault"
        net.unslow(host)


async def back_and_consuming(broker_view: BrokerView, fleet: Deployment) -> bool:
    queues = await broker_view.queues()
    return (CUT in await broker_view.peers()
            and queues.get(broker.worker_queue_name(CUT), (0, 0))[1] == 1
            and CUT in await fleet.live_workers(BALANCER))


async def settled(broker_view: BrokerView, fleet: Deployment, engine: AsyncEngine,
                  streams: dict[str, Batches]) -> None:
    """Every camera's last batch is applied, every worker queue is empty and has its worker
    consuming it, and every process is still running."""

    async def state() -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        rows = await applied(engine)
        last = {cam: max((a.key.seq for a in rows if a.key.camera_id == cam), default=-1)
                for cam in streams}
        return await broker_view.queues(), last

    want = {broker.worker_queue_name(w): (0, 1) for w in (CUT, STEADY)} | {
        broker.FRAMES_INGRESS: (0, 1)}
    final = await eventually(
        state,
        lambda s: all(s[0].get(q) == v for q, v in want.items())
        and all(s[1][cam] == len(stream) - 1 for cam, stream in streams.items()),
        timeout_s=90, interval_s=0.5)
    print(f"queues (messages, consumers) at the end: {final[0]}")
    fleet.assert_running()


async def commit_delays(engine: AsyncEngine, published: Sequence[BatchHeaders],
                        cameras: Sequence[str]) -> str:
    """Median and worst seconds from a batch's capture (its first frame, when the test
    publishes it) to its commit; for the log only: this machine's timings prove nothing."""
    ends = {(h.camera_id, h.seq): h.captured_at for h in published}
    async with engine.connect() as conn:
        rows = await conn.execute(select(batch_ledger.c.camera_id, batch_ledger.c.seq,
                                         batch_ledger.c.applied_at)
                                  .where(batch_ledger.c.camera_id.in_(cameras)))
        delays = sorted(r.applied_at.timestamp() - ends[r.camera_id, r.seq] for r in rows)
    if not delays:
        return "none applied"
    return f"median {delays[len(delays) // 2]:.2f} s, worst {delays[-1]:.2f} s"


async def fencing_held(engine: AsyncEngine) -> None:
    """A moved camera's applies, in commit order: the cut worker's, then only the steady
    worker's, sequence numbers rising throughout."""
    rows = await applied(engine)
    for cam in MOVED:
        order = [(a.worker_id, a.key.seq) for a in rows if a.key.camera_id == cam]
        workers = [w for w, _ in order]
        first_steady = workers.index(STEADY)
        assert CUT not in workers[first_steady:], f"{cam}: the cut worker committed after the move"
        seqs = [s for _, s in order]
        assert seqs == sorted(set(seqs)), f"{cam}: applied out of order or twice: {seqs}"
        print(f"{cam}: cut worker applied {first_steady}, steady worker "
              f"{len(order) - first_steady} batches")
