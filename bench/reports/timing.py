"""Timing one-camera reports: through the registry's API in-process (httpx over ASGI, so no
network and no server in between) and the bare SQL sum the API runs, on the same cameras.

For each camera the two go one after the other, in alternating order, so that neither always
finds the other's pages already cached.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx

from registry.report_buckets import Bucket, bucket_bounds

# The sums registry/report_queries.py issues for group_by=camera (its default): boundaries
# searched with width_bucket, or for minutes arithmetic from the start.
_SUM = """
    SELECT camera_id, {bucket} AS b, sum(count)::bigint,
           date_part('epoch', min(bucket_start)), date_part('epoch', max(bucket_start))
    FROM count_buckets
    WHERE camera_id = ANY($1::text[]) AND bucket_start >= {start} AND bucket_start < {end}
    GROUP BY camera_id, b"""
BARE_SQL = _SUM.format(bucket="width_bucket(bucket_start, $4::timestamptz[])", start="$2",
                       end="$3")
MINUTE_SQL = _SUM.format(bucket="date_part('epoch', bucket_start - $2)::bigint / 60 + 1",
                         start="$2", end="$3")


@dataclass
class Samples:
    api_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    rows: int = 0
    api_bytes: int = 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _api(client: httpx.AsyncClient, camera: str, bucket: Bucket, start: datetime,
               end: datetime) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    response = await client.get("/api/reports", params={
        "camera": camera, "from": start.isoformat(), "to": end.isoformat(), "bucket": bucket})
    elapsed = (time.perf_counter() - t0) * 1000
    response.raise_for_status()
    rows = response.json()["crossings"]
    if not rows or all(r["count"] is None for r in rows):
        raise AssertionError(f"{camera}: an empty report; the data is not where expected")
    return elapsed, len(rows), len(response.content)


async def _sql(conn: asyncpg.Connection, camera: str, bucket: Bucket,
               bounds: list[datetime]) -> float:
    args = (bounds[0], bounds[-1]) if bucket == "minute" else (bounds[0], bounds[-1], bounds)
    t0 = time.perf_counter()
    found = await conn.fetch(MINUTE_SQL if bucket == "minute" else BARE_SQL, [camera], *args)
    elapsed = (time.perf_counter() - t0) * 1000
    if not found:
        raise AssertionError(f"{camera}: no rows")
    return elapsed


async def time_bucket(client: httpx.AsyncClient, conn: asyncpg.Connection,
                      cameras: list[str], bucket: Bucket, start: datetime,
                      end: datetime) -> Samples:
    samples = Samples()
    bounds = bucket_bounds(start, end, bucket, UTC, 1_000_000)
    for i, camera in enumerate(cameras):
        if i % 2:
            samples.sql_ms.append(await _sql(conn, camera, bucket, bounds))
            api_ms, rows, size = await _api(client, camera, bucket, start, end)
        else:
            api_ms, rows, size = await _api(client, camera, bucket, start, end)
            samples.sql_ms.append(await _sql(conn, camera, bucket, bounds))
        samples.api_ms.append(api_ms)
        samples.rows, samples.api_bytes = rows, size
    return samples


def pick(cameras: int, requests: int, seed: int) -> list[str]:
    chooser = random.Random(seed)
    return [f"cam-{chooser.randrange(cameras):04d}" for _ in range(requests)]


def describe(bucket: str, samples: Samples) -> list[str]:
    api, sql = samples.api_ms, samples.sql_ms
    ratio = statistics.median(api) / statistics.median(sql)
    return [
        f"{bucket:>6} ({samples.rows} rows, {samples.api_bytes / 1024:.0f} KiB JSON): "
        f"API p50 {percentile(api, 50):6.1f}  p95 {percentile(api, 95):6.1f}  "
        f"p99 {percentile(api, 99):6.1f} ms | bare SQL p50 {percentile(sql, 50):6.1f}  "
        f"p95 {percentile(sql, 95):6.1f}  p99 {percentile(sql, 99):6.1f} ms | "
        f"API/SQL x{ratio:.2f} (p50)",
    ]
