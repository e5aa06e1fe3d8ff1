"""Routes for a camera's counting lines and zones (versioned) and its latest frame, on which
the dashboard draws them.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from registry import geometry_repository, repository
from registry.auth import Auth, Principal
from registry.errors import AUTHENTICATED, error_responses
from registry.models import CameraOut, Lines, Zones


class LinesIn(BaseModel):
    """The whole set of a camera's lines: unchanged ones keep their id and version, changed
    ones get a new version, missing ones are retired."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lines: Lines


class ZonesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zones: Zones


def geometry_router(engine: AsyncEngine, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["cameras"], responses={**AUTHENTICATED, **error_responses(404)})
    Operator = Annotated[Principal, Depends(auth.operator)]
    Viewer = Annotated[Principal, Depends(auth.viewer)]

    async def _camera(camera_id: str, caller: Principal) -> CameraOut:
        found = await repository.get_camera(engine, camera_id, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    @router.put("/api/cameras/{camera_id}/lines")
    async def replace_lines(camera_id: str, body: LinesIn, caller: Operator) -> CameraOut:
        """Set the camera's counting lines (relative 0..1 coordinates)."""
        if not await geometry_repository.replace_lines(engine, camera_id, body.lines,
                                                       caller.site_filter):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return await _camera(camera_id, caller)

    @router.put("/api/cameras/{camera_id}/zones")
    async def replace_zones(camera_id: str, body: ZonesIn, caller: Operator) -> CameraOut:
        """Set the camera's zones (polygons in relative 0..1 coordinates)."""
        if not await geometry_repository.replace_zones(engine, camera_id, body.zones,
                                                       caller.site_filter):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return await _camera(camera_id, caller)

    @router.get("/api/cameras/{camera_id}/snapshot", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}},
                                 "description": "the latest frame ingest stored"}})
    async def snapshot(camera_id: str, caller: Viewer) -> Response:
        """The camera's latest frame as a JPEG (404 until ingest has stored one; refreshed
        every SNAPSHOT_S while the camera is live)."""
        known, row = await geometry_repository.snapshot(engine, camera_id, caller.site_filter)
        if not known:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"camera {camera_id!r} has no frame yet")
        return Response(row.jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "no-store", "X-Captured-At": row.captured_at.isoformat(),
            "X-Frame-Size": f"{row.width}x{row.height}"})

    return router
