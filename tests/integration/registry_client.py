"""The registry app in-process behind an httpx client, on the test's own database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.app import create_app
from registry.settings import RegistrySettings
from tests.conftest import Isolated


@contextlib.asynccontextmanager
async def registry(isolated: Isolated, engine: AsyncEngine, media_dir: Path | None = None,
                   ) -> AsyncIterator[httpx.AsyncClient]:
    # media_dir passed explicitly: a MEDIA_DIR in the developer's environment must not leak in.
    settings = RegistrySettings(database_url=isolated.database_url, media_dir=media_dir)
    app = create_app(settings, engine, lambda: {"ok": True})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://registry") as client:
        yield client
