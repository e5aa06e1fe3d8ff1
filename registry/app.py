"""The REST API (FastAPI) and the dashboard's static files.

No `from __future__ import annotations` here: FastAPI reads the route annotations at
definition time, and some close over settings (the maximum page size).
"""

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.ops import metrics_response
from registry import metrics, repository
from registry.alerts_api import alerts_router
from registry.auth import Auth, Principal
from registry.body_limit import BodyLimit
from registry.camera_urls import Resolver, system_resolver
from registry.cameras_api import cameras_router
from registry.errors import AUTHENTICATED, error_responses, masked_validation_error
from registry.fleet_api import fleet_router
from registry.geometry_api import geometry_router
from registry.ingest_api import ingest_router
from registry.keys_api import keys_router
from registry.models import CameraOut, CountsOut
from registry.reports_api import reports_router
from registry.settings import RegistrySettings
from registry.tickets_api import tickets_router
from registry.videos_api import UPLOAD_PATH, videos_router
from registry.workers_api import workers_router


def create_app(
    settings: RegistrySettings, engine: AsyncEngine, health: Callable[[], dict[str, Any]],
    resolver: Resolver = system_resolver,
) -> FastAPI:
    app = FastAPI(title="camcount registry", version="0.1.0")
    app.add_exception_handler(RequestValidationError, masked_validation_error)
    # Uploads have their own, larger limit (MAX_VIDEO_BYTES), enforced as they stream.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt=(UPLOAD_PATH,))
    auth = Auth(settings, engine)
    Viewer = Annotated[Principal, Depends(auth.viewer)]
    not_found = {**AUTHENTICATED, **error_responses(404)}

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]],
                      ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route template, not the path: camera ids must not explode label cardinality.
        route = getattr(request.scope.get("route"), "path", "static")
        metrics.REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get("/health")
    async def get_health(response: Response) -> dict[str, Any]:
        report = health()
        if not report.get("ok"):
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> Response:
        return metrics_response()

    @app.get("/api/config")
    async def get_config() -> dict[str, str]:
        return {"websocket_url": settings.broadcaster_public_url}

    @app.get("/api/cameras", tags=["cameras"], responses=AUTHENTICATED)
    async def list_cameras(
        caller: Viewer,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[CameraOut]:
        """The cameras of the key's site (all sites for a key of every site), by id."""
        return await repository.list_cameras(engine, limit=limit, offset=offset,
                                             site=caller.site_filter)

    @app.get("/api/cameras/{camera_id}", tags=["cameras"], responses=not_found)
    async def get_camera(camera_id: str, caller: Viewer) -> CameraOut:
        found = await repository.get_camera(engine, camera_id, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    @app.get("/api/cameras/{camera_id}/counts", tags=["cameras"], responses=not_found)
    async def get_counts(
        camera_id: str, caller: Viewer,
        minutes: Annotated[int, Query(ge=1, le=60 * 24 * 31)] = 60,
    ) -> CountsOut:
        since = datetime.now(UTC) - timedelta(minutes=minutes)
        found = await repository.counts(engine, camera_id, since, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}")
        return found

    app.include_router(cameras_router(settings, engine, auth, resolver))
    app.include_router(workers_router(settings, engine, auth))
    app.include_router(ingest_router(settings, engine, auth))
    app.include_router(keys_router(settings, engine, auth))
    app.include_router(reports_router(settings, engine, auth))
    app.include_router(tickets_router(settings, auth))
    app.include_router(geometry_router(engine, auth))
    app.include_router(fleet_router(settings, engine, auth))
    app.include_router(alerts_router(settings, engine, auth, resolver))
    app.include_router(videos_router(settings, engine, auth))

    if settings.dashboard_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.dashboard_dir, html=True), name="dashboard")
    return app
