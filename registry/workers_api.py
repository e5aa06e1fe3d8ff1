"""Routes for the worker fleet: registry rows with the active balancer's verdicts, and each
worker's recent liveness and breaker history.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time, and the page-size bound closes over settings.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy.ext.asyncio import AsyncEngine

from registry import repository
from registry.auth import Auth
from registry.errors import AUTHENTICATED, error_responses
from registry.models import WorkerEventOut, WorkerOut
from registry.settings import RegistrySettings


def workers_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    """The fleet is shared by every site: any key may read it."""
    router = APIRouter(prefix="/api/workers", tags=["workers"], responses=AUTHENTICATED,
                       dependencies=[Depends(auth.viewer)])
    not_found = error_responses(404)

    @router.get("")
    async def list_workers() -> list[WorkerOut]:
        return await repository.list_workers(engine, settings.worker_down_after_s)

    @router.get("/{worker_id}", responses=not_found)
    async def get_worker(worker_id: str) -> WorkerOut:
        found = await repository.get_worker(engine, worker_id, settings.worker_down_after_s)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no worker {worker_id!r}")
        return found

    @router.get("/{worker_id}/events", responses=not_found)
    async def worker_events(
        worker_id: str, limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 100,
    ) -> list[WorkerEventOut]:
        """Newest first."""
        found = await repository.worker_history(engine, worker_id, limit)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no worker {worker_id!r}")
        return found

    return router
