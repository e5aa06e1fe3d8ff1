"""Routes for the fleet: a summary of workers, breakers, the active balancer and the frame
queues (GET /api/fleet), and the worker pools' own status (GET /api/pools, read from each
pool manager in POOL_URLS).

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.secrets import mask_credentials, mask_url
from infra.broker_admin import QueueDepth, queue_depths, vhost_of
from registry import repository
from registry.auth import Auth
from registry.errors import AUTHENTICATED
from registry.fleet import FleetOut, summarise
from registry.settings import RegistrySettings


class PoolOut(BaseModel):
    url: str = Field(description="the pool manager's API (credentials masked)")
    ok: bool
    error: str | None
    status: dict[str, Any] | None = Field(description="its GET /workers/status: types, "
                                          "workers with state, restarts, idle time")


def fleet_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    """The fleet is shared by every site: any key may read it."""
    router = APIRouter(tags=["workers"], responses=AUTHENTICATED,
                       dependencies=[Depends(auth.viewer)])

    async def _queues() -> tuple[list[QueueDepth] | None, str | None]:
        if not settings.rabbitmq_management_url:
            return None, None
        try:
            return await queue_depths(settings.rabbitmq_management_url,
                                      vhost_of(settings.rabbitmq_url)), None
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            # Also an answer that is not the API's (a proxy's HTML page).
            return None, mask_credentials(f"management API: {type(exc).__name__}: {exc}")

    @router.get("/api/fleet")
    async def fleet() -> FleetOut:
        """Workers by status and liveness, breaker states, load, the active balancer and the
        frame queues' depths."""
        workers = await repository.list_workers(engine, settings.worker_down_after_s)
        queues, error = await _queues()
        return summarise(workers, queues, error)

    async def _pool(http: httpx.AsyncClient, url: str) -> PoolOut:
        try:
            response = await http.get(f"{url.rstrip('/')}/workers/status")
            response.raise_for_status()
            return PoolOut(url=mask_url(url), ok=True, error=None, status=response.json())
        except (httpx.HTTPError, ValueError) as exc:
            return PoolOut(url=mask_url(url), ok=False,
                           error=mask_credentials(f"{type(exc).__name__}: {exc}"), status=None)

    @router.get("/api/pools")
    async def pools() -> list[PoolOut]:
        """Each worker pool manager's status (POOL_URLS), read now with a short timeout."""
        async with httpx.AsyncClient(timeout=2.0) as http:
            return list(await asyncio.gather(*(_pool(http, u) for u in settings.pool_urls)))

    return router
