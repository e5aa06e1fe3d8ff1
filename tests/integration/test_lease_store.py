"""Camera leases in a real PostgreSQL: acquire, renew, release, expiry on the database's clock,
fencing tokens that only rise, and the stream epoch refused to a node that lost its lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import camera_leases, cameras, ingest_nodes
from infra.db import create_engine
from ingest.cameras import next_stream_epoch
from ingest.lease_store import LeaseStore
from ingest.leases import LeaseLost, LocalLease
from tests.conftest import Isolated
from tests.support import eventually

TTL_S = 1.0
CAMERAS = [f"cam{i}" for i in range(10)]


async def add_cameras(engine: AsyncEngine, ids: list[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(cameras.insert(), [{"id": c, "name": c, "url": "rtsp://x.invalid/"}
                                              for c in ids])


def fence(store: LeaseStore, camera_id: str, token: int) -> LocalLease:
    # Locally valid for an hour: whatever refuses it below is the database's check.
    return LocalLease(camera_id, store.node_id, token, time.monotonic() + 3600)


@pytest.fixture
async def other_engine(isolated: Isolated) -> AsyncIterator[AsyncEngine]:
    """A second node's own connection pool."""
    engine = create_engine(isolated.database_url)
    yield engine
    await engine.dispose()


async def test_acquire_renew_release_and_take_again_with_a_higher_token(
    engine: AsyncEngine
) -> None:
    await add_cameras(engine, ["c1", "c2"])
    store = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=30)
    assert await store.acquire(["c1", "c2", "nonexistent"]) == {"c1": 1, "c2": 1}
    assert await store.renew(5, {"c1": 1, "c2": 1}) == {("c1", 1), ("c2", 1)}
    assert await store.release({"c1": 1}) == {"c1"}
    assert await store.renew(5, {"c1": 1, "c2": 1}) == {("c2", 1)}  # c1 is no longer ours
    assert await store.acquire(["c1"]) == {"c1": 2}  # the token never goes back
    snapshot = await store.snapshot()
    assert [(n.id, n.capacity) for n in snapshot.nodes] == [("a", 5)]
    assert snapshot.holders() == {"c1": "a", "c2": "a"}
    assert all(0 < lease.expires_in_s <= 30 for lease in snapshot.leases)


async def test_a_disabled_camera_cannot_be_leased(engine: AsyncEngine) -> None:
    await add_cameras(engine, ["c1"])
    async with engine.begin() as conn:
        await conn.execute(update(cameras).values(enabled=False))
    assert await LeaseStore(engine, "a", boot_id="x", ttl_s=30).acquire(["c1"]) == {}


async def test_a_held_lease_is_taken_only_after_it_expired_on_the_database_clock(
    engine: AsyncEngine, other_engine: AsyncEngine
) -> None:
    await add_cameras(engine, ["c1"])
    a = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=TTL_S)
    b = LeaseStore(other_engine, "b", boot_id="boot-b", ttl_s=TTL_S)
    sent = time.monotonic()
    assert await a.acquire(["c1"]) == {"c1": 1}
    assert await b.acquire(["c1"]) == {}
    taken = await eventually(lambda: b.acquire(["c1"]), bool, timeout_s=5, interval_s=0.02)
    # A's local deadline is sent + TTL - margin: B must not get it before sent + TTL.
    assert time.monotonic() - sent >= TTL_S
    assert taken == {"c1": 2}
    assert await a.renew(1, {"c1": 1}) == set()  # A learns it lost the lease
    assert await a.release({"c1": 1}) == set()  # and cannot release B's
    assert (await b.snapshot()).holders() == {"c1": "b"}


async def test_the_stream_epoch_is_refused_to_a_stale_token_or_another_node(
    engine: AsyncEngine, other_engine: AsyncEngine
) -> None:
    await add_cameras(engine, ["c1"])
    a = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=TTL_S)
    b = LeaseStore(other_engine, "b", boot_id="boot-b", ttl_s=30)
    assert await a.acquire(["c1"]) == {"c1": 1}
    assert await next_stream_epoch(engine, "c1", fence(a, "c1", 1)) == 1
    with pytest.raises(LeaseLost):  # right token, wrong node
        await next_stream_epoch(engine, "c1", fence(b, "c1", 1))
    await eventually(lambda: b.acquire(["c1"]), bool, timeout_s=5, interval_s=0.05)
    with pytest.raises(LeaseLost):  # A's lease expired and B holds token 2 now
        await next_stream_epoch(engine, "c1", fence(a, "c1", 1))
    assert await next_stream_epoch(other_engine, "c1", fence(b, "c1", 2)) == 2
    async with engine.connect() as conn:
        epoch = (await conn.execute(select(cameras.c.stream_epoch))).scalar_one()
    assert epoch == 2  # the refused attempts changed nothing


async def test_a_fence_that_lapsed_locally_is_refused_without_asking_the_database(
    engine: AsyncEngine
) -> None:
    await add_cameras(engine, ["c1"])
    a = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=30)
    assert await a.acquire(["c1"]) == {"c1": 1}
    lapsed = LocalLease("c1", "a", 1, time.monotonic() - 0.001)
    with pytest.raises(LeaseLost):
        await next_stream_epoch(engine, "c1", lapsed)


async def test_two_nodes_racing_for_the_same_cameras_get_disjoint_sets(
    engine: AsyncEngine, other_engine: AsyncEngine
) -> None:
    await add_cameras(engine, CAMERAS)
    a = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=30)
    b = LeaseStore(other_engine, "b", boot_id="boot-b", ttl_s=30)
    for attempt in range(3):
        got_a, got_b = await asyncio.gather(a.acquire(CAMERAS), b.acquire(CAMERAS))
        both = set(got_a) & set(got_b)
        assert not both, f"attempt {attempt}: both hold {both}"
        assert set(got_a) | set(got_b) == set(CAMERAS)
        async with engine.connect() as conn:
            rows = await conn.execute(select(camera_leases.c.camera_id, camera_leases.c.node_id,
                                             camera_leases.c.token))
            held = {r.camera_id: (r.node_id, int(r.token)) for r in rows}
        assert held == {**{c: ("a", t) for c, t in got_a.items()},
                        **{c: ("b", t) for c, t in got_b.items()}}
        # Both give everything up and race again (for cameras now released, tokens rise).
        assert await a.release(got_a) == set(got_a)
        assert await b.release(got_b) == set(got_b)


async def test_nodes_are_live_until_their_row_expires_and_a_graceful_leave_removes_it(
    engine: AsyncEngine
) -> None:
    a = LeaseStore(engine, "a", boot_id="boot-a", ttl_s=TTL_S)
    b = LeaseStore(engine, "b", boot_id="boot-b", ttl_s=30)
    await a.renew(3, {})
    await b.renew(4, {})
    assert [n.id for n in (await a.snapshot()).nodes] == ["a", "b"]
    await b.leave()
    assert [n.id for n in (await a.snapshot()).nodes] == ["a"]
    await eventually(a.snapshot, lambda s: not s.nodes, timeout_s=5, interval_s=0.05)
    await a.renew(3, {})  # a restart under a new boot id starts the row afresh
    restarted = LeaseStore(engine, "a", boot_id="boot-a2", ttl_s=30)
    await restarted.renew(6, {})
    async with engine.connect() as conn:
        row = (await conn.execute(select(ingest_nodes))).one()
    assert (row.boot_id, row.capacity) == ("boot-a2", 6)
