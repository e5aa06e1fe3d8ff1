"""The pool's HTTP API (FastAPI): start, stop and ensure workers, the pool's status, /health
and Prometheus /metrics.

No `from __future__ import annotations` here: FastAPI reads the route annotations at
definition time.
"""

from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Response, status

from infra.ops import metrics_response
from workers.pool.models import ChangeOut, EnsureIn, StartIn, StatusOut, StopIn
from workers.pool.supervision import Draining, PoolFull


class UnknownType(LookupError):
    """No worker type of that name."""


class UnknownWorker(LookupError):
    """No worker of that id."""


class PoolControl(Protocol):
    """What the API asks of the pool service."""

    def start(self, type_name: str, count: int, idle_timeout_s: float | None,
              idle_from_type: bool) -> list[str]: ...
    def ensure(self, type_name: str, count: int, idle_timeout_s: float | None,
               idle_from_type: bool) -> list[str]: ...
    def stop_worker(self, worker_id: str) -> list[str]: ...
    def stop_type(self, type_name: str, count: int) -> list[str]: ...
    def status(self) -> StatusOut: ...
    def health(self) -> dict[str, Any]: ...
    def refresh_metrics(self) -> None: ...


def create_app(pool: PoolControl) -> FastAPI:
    app = FastAPI(title="camcount worker pool", version="0.1.0")

    def changed(call: Any, *args: Any) -> ChangeOut:
        """Pool refusals to 4xx/503 answers that say what is wrong."""
        try:
            return ChangeOut(worker_ids=call(*args))
        except (UnknownType, UnknownWorker) as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
        except PoolFull as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except Draining as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None

    @app.get("/health")
    async def get_health(response: Response) -> dict[str, Any]:
        report = pool.health()
        if not report.get("ok"):
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> Response:
        pool.refresh_metrics()
        return metrics_response()

    @app.get("/workers/status")
    async def get_status() -> StatusOut:
        return pool.status()

    @app.post("/workers/start", status_code=status.HTTP_202_ACCEPTED)
    async def start_workers(body: StartIn) -> ChangeOut:
        """Start `count` more workers of a type; 202: they are spawned in the background
        (staggered), follow them in /workers/status."""
        return changed(pool.start, body.type, body.count, body.idle_timeout_s,
                       "idle_timeout_s" not in body.model_fields_set)

    @app.post("/workers/ensure", status_code=status.HTTP_202_ACCEPTED)
    async def ensure_workers(body: EnsureIn) -> ChangeOut:
        """At least `count` workers of a type: starts the missing ones, stops none."""
        return changed(pool.ensure, body.type, body.count, body.idle_timeout_s,
                       "idle_timeout_s" not in body.model_fields_set)

    @app.post("/workers/stop", status_code=status.HTTP_202_ACCEPTED)
    async def stop_workers(body: StopIn) -> ChangeOut:
        """Drain and stop one worker, or `count` of a type (idle ones first); stopped workers
        are never restarted."""
        if body.worker_id is not None:
            return changed(pool.stop_worker, body.worker_id)
        assert body.type is not None and body.count is not None  # StopIn's validator
        return changed(pool.stop_type, body.type, body.count)

    return app
