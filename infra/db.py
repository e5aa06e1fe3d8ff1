"""The async SQLAlchemy engine, created once per process from settings (or for one job)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    # pre_ping turns a database restart into a reconnect instead of a failed transaction.
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


@contextlib.asynccontextmanager
async def short_lived_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine for a one-off job (a CLI command, a setup step), disposed on exit."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
