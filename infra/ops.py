"""Health and Prometheus metrics over HTTP for roles that have no web app of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

HealthFn = Callable[[], dict[str, Any]]


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def ops_app(health: HealthFn) -> Starlette:
    async def health_route(_: Request) -> Response:
        report = health()
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    async def metrics_route(_: Request) -> Response:
        return metrics_response()

    return Starlette(
        routes=[Route("/health", health_route), Route("/metrics", metrics_route)]
    )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside a role's TaskGroup: the role owns the signals, not uvicorn."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def ops_server(host: str, port: int, health: HealthFn) -> EmbeddedServer:
    """Serve /health and /metrics; run as a task (`await server.serve()`)."""
    config = uvicorn.Config(
        ops_app(health), host=host, port=port, log_level="warning", lifespan="off"
    )
    return EmbeddedServer(config)


def bound_port(server: uvicorn.Server) -> int | None:
    """The real port once started (ops_port 0 picks a free one)."""
    for srv in getattr(server, "servers", []):
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    return None
