"""The engine's sessions end a transaction whose client went quiet (partitioned, frozen), so its
row locks are released instead of blocking the balancer for hours."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.db import IDLE_IN_TRANSACTION_S, create_engine
from tests.conftest import Isolated


async def test_a_transaction_left_idle_is_ended_by_the_server_and_its_locks_freed(
    isolated: Isolated,
) -> None:
    assert 10 <= IDLE_IN_TRANSACTION_S <= 300
    engine = create_engine(isolated.database_url, idle_in_transaction_s=0.5)
    other = create_engine(isolated.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS idle_probe (id int primary key)"))
            await conn.execute(text("INSERT INTO idle_probe VALUES (1) ON CONFLICT DO NOTHING"))
            await conn.commit()
            await conn.execute(text("SELECT * FROM idle_probe WHERE id = 1 FOR UPDATE"))
            await asyncio.sleep(1.5)  # the client goes quiet holding the row lock
            async with other.begin() as free:  # would block for good without the timeout
                await asyncio.wait_for(free.execute(text(
                    "SELECT * FROM idle_probe WHERE id = 1 FOR UPDATE NOWAIT")), 5)
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
        await other.dispose()
