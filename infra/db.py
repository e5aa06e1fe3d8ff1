"""The async SQLAlchemy engine, created once per process from settings (or for one job)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# A session idle inside a transaction this long is ended by the server. A process that is cut
# off (network partition) or frozen mid-transaction otherwise keeps its row locks — a worker's
# lock on its camera's assignment — until TCP gives up, hours later, and the balancer cannot
# move the camera. No transaction here legitimately waits on its client for so long.
IDLE_IN_TRANSACTION_S = 60


def create_engine(database_url: str, *, pool_size: int = 5,
                  idle_in_transaction_s: float = IDLE_IN_TRANSACTION_S) -> AsyncEngine:
    # pre_ping turns a database restart into a reconnect instead of a failed transaction.
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
        connect_args={"server_settings": {
            "idle_in_transaction_session_timeout": str(int(idle_in_transaction_s * 1000))}},
    )


@contextlib.asynccontextmanager
async def short_lived_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine for a one-off job (a CLI command, a setup step), disposed on exit."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
