"""A fleet's month of per-minute counts, generated inside PostgreSQL.

Rows go in time order across the cameras, as workers write them (every camera's minute 0,
then every camera's minute 1, ...), so one camera's month is spread over the whole table
as in production, not packed together. count_buckets' indexes and constraints are dropped
for the load and rebuilt after it from their own definitions (the migrations' indexes,
whatever they are), which is how a bulk load is done and far faster than maintaining them
row by row; the heap keeps the time-ordered layout.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class FleetShape:
    cameras: int
    days: int
    rich_every: int  # every n-th camera counts two classes in both directions
    end: datetime  # the last minute's end (a whole minute)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def camera_id(i: int) -> str:
    return f"cam-{i:04d}"


async def _cameras(conn: asyncpg.Connection, shape: FleetShape) -> None:
    await conn.execute("""
        INSERT INTO cameras (id, name, url, created_at)
        SELECT 'cam-' || lpad(i::text, 4, '0'), 'Camera ' || i, 'rtsp://camera.invalid/' || i,
               $1::timestamptz
        FROM generate_series(0, $2::int - 1) AS i""", shape.start - timedelta(days=1),
                       shape.cameras)
    await conn.execute("""
        INSERT INTO counting_lines (camera_id, name, version, geometry)
        SELECT id, 'entry', 1, '{"a": {"x": 0.5, "y": 0}, "b": {"x": 0.5, "y": 1}}'::jsonb
        FROM cameras""")
    await conn.execute("""
        INSERT INTO camera_progress (camera_id, stream_epoch, last_seq, tracker_checkpoint,
                                     totals, worker_id, updated_at)
        SELECT id, 1, 1000000, '{}'::jsonb, '{}'::jsonb, 'bench', $1::timestamptz
        FROM cameras""", shape.end)
    # What each camera counts: person in for all, three more series for the rich ones.
    await conn.execute("""
        CREATE TEMP TABLE bench_plan AS
        SELECT l.camera_id, l.id AS line_id, s.cls, s.dir
        FROM counting_lines l
        JOIN (VALUES ('person', 'in', false), ('person', 'out', true), ('car', 'in', true),
                     ('car', 'out', true)) AS s(cls, dir, rich_only)
          ON NOT s.rich_only OR substr(l.camera_id, 5)::int % $1::int = 0""",
                       shape.rich_every)


async def _gaps(conn: asyncpg.Connection, shape: FleetShape) -> None:
    """Per camera: two outages of 10 min to 2 h (gaps of time) and five shed batches (gaps
    of sequence numbers without times), at random times of the month."""
    span_s = shape.days * 86400
    await conn.execute("""
        INSERT INTO coverage_gaps (camera_id, stream_epoch, started_at, ended_at, reason,
                                   detail, recorded_at)
        SELECT id, 1, at, at + (600 + random() * 6600) * interval '1 second', 'camera_down',
               'stalled: bench', at
        FROM cameras, LATERAL (SELECT $1::timestamptz + random() * $2::float8
                                      * interval '1 second' AS at, g
                               FROM generate_series(1, 2) g OFFSET 0) o""",
                       shape.start, float(span_s))
    await conn.execute("""
        INSERT INTO coverage_gaps (camera_id, stream_epoch, seq_from, seq_to, reason,
                                   recorded_at)
        SELECT id, 1, g * 1000, g * 1000, 'shed',
               $1::timestamptz + random() * $2::float8 * interval '1 second'
        FROM cameras, generate_series(1, 5) g""", shape.start, float(span_s))


async def _definitions(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """count_buckets' constraints and other indexes, as statements that recreate them."""
    constraints = await conn.fetch("""
        SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'count_buckets'::regclass ORDER BY contype = 'f', conname""")
    indexes = await conn.fetch("""
        SELECT indexname, indexdef FROM pg_indexes
        WHERE tablename = 'count_buckets' AND indexname NOT IN (
            SELECT conname FROM pg_constraint WHERE conrelid = 'count_buckets'::regclass)""")
    create = [f'ALTER TABLE count_buckets ADD CONSTRAINT "{c["conname"]}" {c["def"]}'
              for c in constraints] + [i["indexdef"] for i in indexes]
    drop = [f'DROP INDEX "{i["indexname"]}"' for i in indexes] + [
        f'ALTER TABLE count_buckets DROP CONSTRAINT "{c["conname"]}"'
        for c in reversed(constraints)]
    return drop, create


async def generate(dsn: str, shape: FleetShape) -> int:
    """Fill the (empty, migrated) database; returns the count_buckets rows written."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'; "
                           "SET work_mem = '64MB'")
        await _cameras(conn, shape)
        await _gaps(conn, shape)
        drop, create = await _definitions(conn)
        for statement in drop:
            await conn.execute(statement)
        total = 0
        started = time.perf_counter()
        for day in range(shape.days):
            begin = shape.start + timedelta(days=day)
            # The lateral subquery names the minute, so it runs once per minute: rows come
            # out minute after minute, each minute's cameras together.
            status = await conn.execute("""
                INSERT INTO count_buckets (camera_id, line_id, line_version, object_class,
                                           direction, bucket_start, count)
                SELECT q.camera_id, q.line_id, 1, q.cls, q.dir, q.at, 1 + (random() * 8)::int
                FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute',
                                     interval '1 minute') AS t(at),
                     LATERAL (SELECT p.*, t.at FROM bench_plan p OFFSET 0) AS q""",
                                        begin, begin + timedelta(days=1))
            total += int(status.split()[-1])
            elapsed = time.perf_counter() - started
            say(f"  day {day + 1}/{shape.days}: {total / 1e6:.1f} M rows, {elapsed:.0f} s "
                f"({total / elapsed / 1e3:.0f} k rows/s)")
        for statement in create:
            t0 = time.perf_counter()
            await conn.execute(statement)
            say(f"  {statement[:90]}... {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE count_buckets")
        await conn.execute("ANALYZE")
        say(f"  VACUUM ANALYZE {time.perf_counter() - t0:.0f} s")
        return total
    finally:
        await conn.close()
