"""Routes that change cameras: register one, update it in part, delete it.

Nothing needs a restart: every ingest node re-reads the enabled cameras each CAMERA_POLL_S,
restarts a camera whose stream settings changed (new stream epoch), and stops a camera that
was disabled or deleted, releasing its lease.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from registry import repository
from registry.media import media_file_problem
from registry.models import CameraIn, CameraOut, CameraPatch
from registry.settings import RegistrySettings


def _refused_url(message: str, url: str) -> RequestValidationError:
    # The same 422 shape as the models' own checks (and masked like them, registry/errors.py):
    # these checks need a setting or the stored row, which the models do not have.
    return RequestValidationError([{"type": "value_error", "loc": ("body", "url"),
                                    "msg": message, "input": url}])


def cameras_router(settings: RegistrySettings, engine: AsyncEngine) -> APIRouter:
    router = APIRouter(tags=["cameras"])

    @router.post("/api/cameras", status_code=status.HTTP_201_CREATED)
    async def create_camera(camera: CameraIn) -> CameraOut:
        problem = media_file_problem(camera.url, settings.media_dir)
        if problem is not None:
            raise _refused_url(problem, camera.url)
        try:
            return await repository.create_camera(engine, camera)
        except repository.AlreadyExists:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"camera {camera.id!r} already exists") from None

    @router.patch("/api/cameras/{camera_id}")
    async def update_camera(camera_id: str, patch: CameraPatch) -> CameraOut:
        """Change the fields sent; the others keep their values. A url sent back masked,
        exactly as GET shows it, keeps the stored credentials (see CameraPatch)."""

        def plan(stored: Mapping[str, Any]) -> dict[str, Any]:
            try:
                changes = patch.changes_to(stored)
            except ValueError as exc:
                raise _refused_url(str(exc), patch.url) from None
            # Only a changed url: one registered before MEDIA_DIR moved may still round-trip.
            if "url" in changes:
                problem = media_file_problem(changes["url"], settings.media_dir)
                if problem is not None:
                    raise _refused_url(problem, changes["url"])
            return changes

        found = await repository.update_camera(engine, camera_id, plan)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    @router.delete("/api/cameras/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_camera(camera_id: str) -> None:
        if not await repository.delete_camera(engine, camera_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")

    return router
