"""The registry app in-process behind an httpx client, on the test's own database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import ALL_SITES
from registry import api_keys
from registry.app import create_app
from registry.camera_urls import Resolver, system_resolver
from registry.settings import RegistrySettings
from tests.conftest import Isolated
from tests.support import serving


async def new_key(engine: AsyncEngine, role: str = "admin", site: str = ALL_SITES,
                  **limits: float) -> str:
    """A fresh API key (the whole key, to send as a Bearer token)."""
    _, token = await api_keys.create(engine, name=f"test {role} {site}", role=role, site=site,
                                     **limits)  # type: ignore[arg-type]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def registry(isolated: Isolated, engine: AsyncEngine, media_dir: Path | None = None,
                   *, key: str | None = None, resolver: Resolver = system_resolver,
                   **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, authenticated with `key` (default: a new admin key of every
    site). Settings beyond the database come from `overrides` only; camera hosts resolve
    through `resolver`."""
    # media_dir passed explicitly: a MEDIA_DIR in the developer's environment must not leak in.
    settings = RegistrySettings(database_url=isolated.database_url, media_dir=media_dir,
                                **overrides)  # type: ignore[arg-type]
    app = create_app(settings, engine, lambda: {"ok": True}, resolver)
    token = key if key is not None else await new_key(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://registry", headers=bearer(token)) as client:
        yield client


@contextlib.asynccontextmanager
async def registry_in_process(isolated: Isolated, engine: AsyncEngine,
                              **overrides: Any) -> AsyncIterator[str]:
    """The registry app (API and page, no background loops) served over real HTTP on a free
    port; yields its base URL. For browsers and clients that need a socket."""
    settings = RegistrySettings(database_url=isolated.database_url, media_dir=None, **overrides)
    async with serving(create_app(settings, engine, lambda: {"ok": True})) as base:
        yield base
