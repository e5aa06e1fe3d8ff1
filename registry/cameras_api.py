"""Routes that change cameras: register one, update it in part, delete it.

Nothing needs a restart: every ingest node re-reads the enabled cameras each CAMERA_POLL_S,
restarts a camera whose stream settings changed (new stream epoch), and stops a camera that
was disabled or deleted, releasing its lease.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import DEFAULT_SITE
from registry import camera_removal, repository
from registry.alerts_api import submit_webhooks
from registry.auth import Auth, Principal
from registry.camera_urls import (
    CameraUrlGuard,
    CameraUrlPolicy,
    CameraUrlRefused,
    Resolver,
    system_resolver,
)
from registry.errors import AUTHENTICATED, error_responses
from registry.media import media_file_problem
from registry.models import CameraIn, CameraOut, CameraPatch
from registry.settings import RegistrySettings


def _refused_url(message: str, url: str) -> RequestValidationError:
    # The same 422 shape as the models' own checks (and masked like them, registry/errors.py):
    # these checks need a setting or the stored row, which the models do not have.
    return RequestValidationError([{"type": "value_error", "loc": ("body", "url"),
                                    "msg": message, "input": url}])


def _site_of_new_camera(caller: Principal, asked: str | None) -> str:
    if caller.all_sites:
        return asked or DEFAULT_SITE
    if asked is not None and asked != caller.site:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"a key of site {caller.site!r} registers cameras of that site only")
    return caller.site


def cameras_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth,
                   resolver: Resolver = system_resolver) -> APIRouter:
    router = APIRouter(tags=["cameras"], responses=AUTHENTICATED)
    urls = CameraUrlGuard(CameraUrlPolicy.from_settings(settings), resolver)
    Operator = Annotated[Principal, Depends(auth.operator)]
    not_found = error_responses(404)

    @router.post("/api/cameras", status_code=status.HTTP_201_CREATED,
                 responses=error_responses(409))
    async def create_camera(camera: CameraIn, caller: Operator) -> CameraOut:
        camera = camera.model_copy(update={"site": _site_of_new_camera(caller, camera.site)})
        problem = media_file_problem(camera.url, settings.media_dir)
        if problem is not None:
            raise _refused_url(problem, camera.url)
        try:
            pinned = await urls.pin(camera.url)
        except CameraUrlRefused as exc:
            raise _refused_url(str(exc), camera.url) from None
        try:
            return await repository.create_camera(engine, camera, pinned_address=pinned)
        except repository.AlreadyExists:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"camera {camera.id!r} already exists") from None

    @router.patch("/api/cameras/{camera_id}", responses=not_found)
    async def update_camera(camera_id: str, patch: CameraPatch, caller: Operator) -> CameraOut:
        """Change the fields sent; the others keep their values. A url sent back masked,
        exactly as GET shows it, keeps the stored credentials (see CameraPatch). A changed url
        is validated as on creation and its address pinned anew."""
        # Resolved before the row is locked (no lock held across DNS); judged only if the url
        # turns out to change, so one registered before the policy tightened still round-trips.
        pinned: str | None = None
        refusal: str | None = None
        if "url" in patch.model_fields_set:
            try:
                pinned = await urls.pin(patch.url)
            except CameraUrlRefused as exc:
                refusal = str(exc)

        def plan(stored: Mapping[str, Any]) -> dict[str, Any]:
            try:
                changes = patch.changes_to(stored)
            except ValueError as exc:
                raise _refused_url(str(exc), patch.url) from None
            # Only a changed url: one registered before MEDIA_DIR moved may still round-trip.
            if "url" in changes:
                problem = media_file_problem(changes["url"], settings.media_dir) or refusal
                if problem is not None:
                    raise _refused_url(problem, changes["url"])
                changes["pinned_address"] = pinned
            return changes

        found = await repository.update_camera(engine, camera_id, plan, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    @router.delete("/api/cameras/{camera_id}", status_code=status.HTTP_204_NO_CONTENT,
                   responses=not_found)
    async def delete_camera(camera_id: str, caller: Operator, request: Request) -> None:
        """Delete a camera with everything that names it (see registry/camera_removal.py);
        its open alerts are resolved first."""
        changes = await camera_removal.delete_camera(engine, camera_id, caller.site_filter)
        if changes is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        submit_webhooks(request, changes)

    return router
