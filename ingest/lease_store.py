"""Camera leases and the ingest node registry in PostgreSQL: the I/O half of ingest/leases.py.

Every expiry is set and compared on the database's clock (now()), never a node's: the nodes'
clocks need not agree, only tick at about the same rate as the database's over a lease time.
Acquiring is one conditional upsert, so two nodes racing for a camera cannot both win. A
released lease stays in the table, expired, rather than being deleted: its token then keeps
rising across holders (the next acquisition is token + 1) without a sequence of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.tables import camera_leases, cameras, ingest_nodes
from ingest.leases import NodeInfo

log = logging.getLogger("camcount.ingest")


@dataclass(frozen=True)
class LeaseRow:
    camera_id: str
    node_id: str
    token: int
    expires_in_s: float  # on the database's clock, when it was read


@dataclass(frozen=True)
class Snapshot:
    """Live nodes and unexpired leases, read in one transaction (one now())."""

    nodes: tuple[NodeInfo, ...]
    leases: tuple[LeaseRow, ...]

    def holders(self) -> dict[str, str]:
        return {lease.camera_id: lease.node_id for lease in self.leases}


class LeaseStore:
    def __init__(self, engine: AsyncEngine, node_id: str, *, boot_id: str, ttl_s: float) -> None:
        self.engine, self.node_id, self.boot_id = engine, node_id, boot_id
        self.ttl = timedelta(seconds=ttl_s)

    async def renew(self, capacity: int, tokens: Mapping[str, int]) -> set[tuple[str, int]]:
        """Say this node is alive and extend the leases it holds; returns (camera, token) of
        those still held. The caller times the new deadline from before this call."""
        async with self.engine.begin() as conn:
            await self._heartbeat(conn, capacity)
            if not tokens:
                return set()
            rows = await conn.execute(
                camera_leases.update()
                .where(camera_leases.c.node_id == self.node_id,
                       camera_leases.c.expires_at > sa.func.now(),
                       sa.tuple_(camera_leases.c.camera_id, camera_leases.c.token)
                       .in_(list(tokens.items())))
                .values(expires_at=sa.func.now() + self.ttl)
                .returning(camera_leases.c.camera_id, camera_leases.c.token))
            return {(r.camera_id, int(r.token)) for r in rows}

    async def acquire(self, camera_ids: Collection[str]) -> dict[str, int]:
        """Take the leases of these cameras that are free (never leased, expired or released)
        or still recorded as this node's from before; returns camera -> new token."""
        if not camera_ids:
            return {}
        now = sa.func.now()
        source = (
            sa.select(cameras.c.id, sa.literal(self.node_id), sa.literal(1, sa.BigInteger),
                      now, now + self.ttl)
            .where(cameras.c.id.in_(list(camera_ids)), cameras.c.enabled)
            # One lock order for every node: two overlapping acquisitions wait, not deadlock.
            .order_by(cameras.c.id)
        )
        insert = pg_insert(camera_leases).from_select(
            ["camera_id", "node_id", "token", "acquired_at", "expires_at"], source)
        stmt = insert.on_conflict_do_update(
            index_elements=[camera_leases.c.camera_id],
            # Every acquisition raises the token, even a re-take of our own row: a process that
            # restarted under the same NODE_ID must not share a token with its dead predecessor.
            set_={"node_id": insert.excluded.node_id, "token": camera_leases.c.token + 1,
                  "acquired_at": now, "expires_at": insert.excluded.expires_at},
            where=sa.or_(camera_leases.c.expires_at <= now,
                         camera_leases.c.node_id == self.node_id),
        ).returning(camera_leases.c.camera_id, camera_leases.c.token)
        async with self.engine.begin() as conn:
            return {r.camera_id: int(r.token) for r in await conn.execute(stmt)}

    async def release(self, tokens: Mapping[str, int]) -> set[str]:
        """Give leases up now (the cameras' pipelines must already be stopped); returns the
        cameras released. A lease lost meanwhile is left alone."""
        if not tokens:
            return set()
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                camera_leases.update()
                .where(camera_leases.c.node_id == self.node_id,
                       camera_leases.c.expires_at > sa.func.now(),
                       sa.tuple_(camera_leases.c.camera_id, camera_leases.c.token)
                       .in_(list(tokens.items())))
                .values(expires_at=sa.func.now())
                .returning(camera_leases.c.camera_id))
            return {r.camera_id for r in rows}

    async def leave(self) -> None:
        """Graceful stop: drop this node's row so the others recompute their shares at once."""
        async with self.engine.begin() as conn:
            await conn.execute(ingest_nodes.delete().where(
                ingest_nodes.c.id == self.node_id, ingest_nodes.c.boot_id == self.boot_id))

    async def snapshot(self) -> Snapshot:
        async with self.engine.connect() as conn:
            nodes = await conn.execute(
                sa.select(ingest_nodes.c.id, ingest_nodes.c.capacity, ingest_nodes.c.draining)
                .where(ingest_nodes.c.expires_at > sa.func.now()).order_by(ingest_nodes.c.id))
            leases = await conn.execute(
                sa.select(camera_leases.c.camera_id, camera_leases.c.node_id,
                          camera_leases.c.token,
                          sa.extract("epoch", camera_leases.c.expires_at - sa.func.now())
                          .label("expires_in_s"))
                .where(camera_leases.c.expires_at > sa.func.now()))
            return Snapshot(
                tuple(NodeInfo(r.id, int(r.capacity), bool(r.draining)) for r in nodes),
                tuple(LeaseRow(r.camera_id, r.node_id, int(r.token), float(r.expires_in_s))
                      for r in leases),
            )

    async def _heartbeat(self, conn: AsyncConnection, capacity: int) -> None:
        previous = (await conn.execute(
            sa.select(ingest_nodes.c.boot_id, (ingest_nodes.c.expires_at > sa.func.now())
                      .label("live"))
            .where(ingest_nodes.c.id == self.node_id).with_for_update())).first()
        if previous is not None and previous.live and previous.boot_id != self.boot_id:
            # Two live processes with one NODE_ID take each other's leases (each acquisition
            # raises the token, so neither can publish stale batches, but both keep reconnecting).
            log.warning("another live process uses NODE_ID=%s (boot %s); configure distinct ids",
                        self.node_id, previous.boot_id)
        expires = sa.func.now() + self.ttl
        insert = pg_insert(ingest_nodes).values(
            id=self.node_id, boot_id=self.boot_id, capacity=capacity, expires_at=expires)
        # `draining` is the operator's to set: a heartbeat leaves it as it is.
        await conn.execute(insert.on_conflict_do_update(
            index_elements=[ingest_nodes.c.id],
            set_={"boot_id": insert.excluded.boot_id, "capacity": insert.excluded.capacity,
                  "expires_at": insert.excluded.expires_at,
                  "started_at": sa.case(
                      (ingest_nodes.c.boot_id == insert.excluded.boot_id,
                       ingest_nodes.c.started_at), else_=sa.func.now())}))
