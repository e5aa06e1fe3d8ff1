"""The Alembic migrations create exactly the schema declared in contracts.tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from contracts.tables import metadata
from infra.db import create_engine
from tests.conftest import Isolated


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _flatten(diffs: Iterable[Any]) -> list[str]:
    return [repr(d) for d in diffs]


async def test_migrated_schema_matches_the_declared_tables(isolated: Isolated) -> None:
    engine = create_engine(isolated.database_url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert _flatten(diffs) == []
