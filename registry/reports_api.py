"""GET /api/reports: counts per minute, hour, day or the whole range, per camera, line, zone,
class and direction, as JSON or CSV, with coverage gaps shown as gaps.

Every row carries the fraction of its bucket that was watched; where nothing was, the values
are null (empty cells in CSV), never 0. A key sees the cameras of its site only: a camera of
another site is "not found", also among several named.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time.
"""

import functools
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import pydantic_core
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.ids import check_slug
from registry import report_csv, report_queries
from registry.auth import Auth, Principal
from registry.errors import AUTHENTICATED, error_responses
from registry.report import ReportQuery, TooManyRows, build_report
from registry.report_buckets import Bucket, TooManyBuckets, bucket_bounds, is_whole_minute
from registry.report_models import ReportOut
from registry.report_rows import MEASURE_OF, MeasureName, parse_group_by
from registry.settings import RegistrySettings

MAX_RANGE = timedelta(days=366)
MAX_BUCKETS = 44_640  # a month of 31 days per minute
MAX_CAMERAS = 1_000
MAX_CELLS = 200_000  # buckets x cameras: what one request may make PostgreSQL sum
MAX_ROWS = 200_000  # rows of the answer (series x buckets)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _invalid(param: str, message: str, value: object) -> RequestValidationError:
    # The shape of FastAPI's own 422s: `loc` names the query parameter.
    return RequestValidationError([{"type": "value_error", "loc": ("query", param),
                                    "msg": message, "input": value}])


def _too_many_rows(why: str, group_by: str) -> RequestValidationError:
    return _invalid("group_by", f"{why}: group by fewer dimensions, choose a larger bucket "
                    "or fewer cameras", group_by)


def _time_zone(name: str) -> zoneinfo.ZoneInfo:
    if name not in _zone_names():
        raise _invalid("tz", "an IANA time zone name, e.g. UTC or Europe/Berlin", name)
    return zoneinfo.ZoneInfo(name)


def _instant(param: str, value: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    # A time without an offset is a wall-clock time of the report's time zone.
    at = value if value.utcoffset() is not None else value.replace(tzinfo=tz)
    if not EARLIEST <= at < LATEST:
        raise _invalid(param, f"between {EARLIEST:%Y} and {LATEST:%Y}", value.isoformat())
    if not is_whole_minute(at):
        raise _invalid(param, "a whole minute (counts are kept per minute)", value.isoformat())
    return at.astimezone(UTC)


def _camera_ids(camera: list[str] | None) -> list[str] | None:
    if not camera:
        return None
    for i, value in enumerate(camera):
        try:
            check_slug(value, "a camera id")
        except ValueError as exc:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "camera", i),
                                           "msg": str(exc), "input": value}]) from None
    return list(dict.fromkeys(camera))


def _query(start: datetime, end: datetime, bucket: Bucket, group_by: str,
           measure_name: MeasureName, tz_name: str) -> ReportQuery:
    tz = _time_zone(tz_name)
    start, end = _instant("from", start, tz), _instant("to", end, tz)
    if end <= start:
        raise _invalid("to", "must be after from (to is exclusive)", end.isoformat())
    if end - start > MAX_RANGE:
        raise _invalid("to", f"the range may span at most {MAX_RANGE.days} days",
                       end.isoformat())
    measure = MEASURE_OF[measure_name]
    try:
        dims = parse_group_by(group_by, measure)
    except ValueError as exc:
        raise _invalid("group_by", str(exc), group_by) from None
    try:
        bounds = bucket_bounds(start, end, bucket, tz, MAX_BUCKETS)
    except TooManyBuckets as exc:
        raise _invalid("bucket", f"{exc}: choose a larger bucket or a shorter range",
                       bucket) from None
    return ReportQuery(measure, dims, bucket, tz, bounds)


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "the report: JSON, or with format=csv a CSV file (text/csv) whose header "
                   "row names its columns and whose empty cells are gaps",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}}


def reports_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["reports"], responses=AUTHENTICATED)
    Viewer = Annotated[Principal, Depends(auth.viewer)]

    @router.get("/api/reports", response_model=ReportOut,
                responses={**_CSV_RESPONSE, **error_responses(404, 503)})
    async def get_report(
        caller: Viewer,
        start: Annotated[datetime, Query(
            alias="from", description="ISO 8601, a whole minute; without an offset, a time "
            "of `tz`")],
        to: Annotated[datetime, Query(description="exclusive; like from")],
        camera: Annotated[list[str] | None, Query(
            max_length=MAX_CAMERAS, description="repeatable; none: every camera the key "
            "sees")] = None,
        bucket: Annotated[Bucket, Query(description="range: one bucket over from..to")] = "hour",
        group_by: Annotated[str, Query(
            max_length=100, description="comma list: camera, line, class, direction "
            "(crossings) or camera, zone, class (zones); empty: the cameras' total")] = "camera",
        measure: Annotated[MeasureName, Query(
            description="crossings: line crossings; zones: zone entries, exits, peak "
            "occupancy and dwell")] = "crossings",
        format: Annotated[Literal["json", "csv"], Query()] = "json",
        tz: Annotated[str, Query(max_length=64, description="IANA time zone of the hour and "
                                 "day boundaries and of the times answered")] = "UTC",
    ) -> Any:
        query = _query(start, to, bucket, group_by, measure, tz)
        ids = _camera_ids(camera)
        try:
            return await _answer(caller, query, ids, group_by, bucket, format)
        except (DBAPIError, asyncpg.QueryCanceledError) as exc:
            # Some queries run on asyncpg directly (report_queries._fetch), others through
            # SQLAlchemy, which wraps the same error.
            if "statement timeout" not in str(exc):
                raise
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"the report took longer than {settings.report_timeout_s:g} s: "
                                "ask for fewer cameras, a shorter range or larger buckets"
                                ) from None

    async def _answer(caller: Principal, query: ReportQuery, ids: list[str] | None,
                      group_by: str, bucket: str, format: str) -> Any:
        async with engine.connect() as conn:
            # Bounded work per request: a viewer key must not hold the database for long.
            await conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"),
                               {"ms": str(int(settings.report_timeout_s * 1000))})
            cameras = await report_queries.cameras(conn, ids, caller.site_filter,
                                                   MAX_CAMERAS + 1)
            if ids is not None and len(cameras) < len(ids):
                found = {c.id for c in cameras}
                missing = next(i for i in ids if i not in found)
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {missing!r}")
            if len(cameras) > MAX_CAMERAS:
                raise _invalid("camera", f"the key sees more than {MAX_CAMERAS} cameras: "
                               "name the ones to report", None)
            if query.n_buckets * max(1, len(cameras)) > MAX_CELLS:
                raise _invalid("bucket", f"{query.n_buckets} buckets x {len(cameras)} cameras "
                               f"is more than {MAX_CELLS}: choose a larger bucket, a shorter "
                               "range or fewer cameras", bucket)
            ids_found = [c.id for c in cameras]
            now = await report_queries.database_now(conn)
            summed = await report_queries.summed(
                conn, query.measure, query.dims, ids_found, query.bounds,
                60 if query.bucket == "minute" else None, MAX_ROWS + 1)
            if len(summed.rows) > MAX_ROWS:
                raise _too_many_rows(f"more than {MAX_ROWS} rows", group_by)
            gaps = await report_queries.gaps(conn, ids_found, query.bounds[0],
                                             query.bounds[-1])
        try:
            report = build_report(query, cameras, summed, gaps, now, MAX_ROWS)
        except TooManyRows as exc:
            raise _too_many_rows(str(exc), group_by) from None
        if format == "csv":
            return Response(report_csv.render(report), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition":
                                     f'attachment; filename="{report_csv.filename(report)}"'})
        # Serialised here, unvalidated (see registry/report_models.py).
        return Response(pydantic_core.to_json(report), media_type="application/json")

    return router
