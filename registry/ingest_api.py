"""Routes for what ingest reports: a camera's status history and the ingest nodes with the
cameras they lease. (The current status rides on the camera itself: GET /api/cameras.)

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time, and the page-size bound closes over settings.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy.ext.asyncio import AsyncEngine

from registry import status_repository
from registry.auth import Auth, Principal
from registry.errors import AUTHENTICATED, error_responses
from registry.settings import RegistrySettings
from registry.status_models import CameraEventOut, IngestNodeOut


def ingest_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["ingest"], responses=AUTHENTICATED)
    Viewer = Annotated[Principal, Depends(auth.viewer)]

    @router.get("/api/cameras/{camera_id}/events", responses=error_responses(404))
    async def camera_events(
        camera_id: str, caller: Viewer,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 100,
    ) -> list[CameraEventOut]:
        """Status changes, newest first."""
        found = await status_repository.camera_history(engine, camera_id, limit,
                                                       caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    @router.get("/api/ingest/nodes")
    async def ingest_nodes(caller: Viewer) -> list[IngestNodeOut]:
        """Every node that has registered, alive or not, with the leases it holds now."""
        return await status_repository.list_ingest_nodes(engine, caller.site_filter)

    return router
