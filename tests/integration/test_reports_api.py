"""GET /api/reports against a real PostgreSQL: sums per minute, hour, day and range match the
rows inserted, gaps read as null (never 0), CSV says the same as JSON, and a key of one site
learns nothing of another site's cameras."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import (
    camera_events,
    camera_progress,
    cameras,
    count_buckets,
    counting_lines,
    coverage_gaps,
    zone_buckets,
    zones,
)
from registry.report_models import REPORT_ADAPTER
from tests.conftest import Isolated
from tests.integration.registry_client import new_key, registry

T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday, long past: nothing here is "now"
DAYS = 2
LINE = {"a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}
ZONE = [{"x": 0.1, "y": 0.1}, {"x": 0.4, "y": 0.1}, {"x": 0.4, "y": 0.4}]


def iso(at: datetime) -> str:
    return at.isoformat()


def count_of(minute: int, object_class: str, direction: str) -> int:
    """The count inserted for a minute (minutes since T0) and series; 0 means no row."""
    if object_class == "car":
        return 2 if minute % 5 == 0 and direction == "in" else 0
    return (minute % 7) + (1 if direction == "in" else 0)


async def seed(engine: AsyncEngine, camera_id: str, *, site: str = "default",
               line_name: str = "entry", registered_at: datetime = T0,
               applied_until: datetime | None = T0 + timedelta(days=DAYS),
               minutes: int = DAYS * 1440) -> None:
    """A camera registered at `registered_at` whose last batch was applied at `applied_until`,
    with a line in two versions (the counts split between them) and per-minute counts."""
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(
            id=camera_id, name=f"Camera {camera_id}", url="rtsp://camera.invalid/x", site=site,
            created_at=registered_at))
        ids = []
        for version in (1, 2):
            ids.append((await conn.execute(counting_lines.insert().values(
                camera_id=camera_id, name=line_name, version=version, geometry=LINE,
                active=version == 2).returning(counting_lines.c.id))).scalar_one())
        await conn.execute(zones.insert().values(camera_id=camera_id, name="queue", version=1,
                                                 polygon=ZONE))
        if applied_until is not None:
            await conn.execute(camera_progress.insert().values(
                camera_id=camera_id, stream_epoch=1, last_seq=1, tracker_checkpoint={},
                totals={}, worker_id="w", updated_at=applied_until))
        # Version 1 counted the first day, version 2 the rest: one line name across both.
        rows = [
            {"camera_id": camera_id, "line_id": ids[0] if m < 1440 else ids[1],
             "line_version": 1 if m < 1440 else 2, "object_class": cls, "direction": d,
             "bucket_start": T0 + timedelta(minutes=m), "count": count_of(m, cls, d)}
            for m in range(minutes) for cls, d in SERIES if count_of(m, cls, d)
        ]
        if rows:
            await conn.execute(count_buckets.insert(), rows)


SERIES = (("person", "in"), ("person", "out"), ("car", "in"))


def expected(start_min: int, end_min: int, *, object_class: str | None = None,
             direction: str | None = None) -> int:
    total = 0
    for m in range(start_min, end_min):
        for cls, d in SERIES:
            if object_class in (None, cls) and direction in (None, d):
                total += count_of(m, cls, d)
    return total


@pytest.fixture
async def api(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with registry(isolated, engine) as client:
        yield client


async def report(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/reports", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    REPORT_ADAPTER.validate_python(body)  # the answer keeps to its published schema
    return body


def minute_of(stamp: str) -> int:
    return int((datetime.fromisoformat(stamp) - T0) / timedelta(minutes=1))


async def test_hourly_rows_by_line_class_and_direction_match_the_inserted_minutes(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed(engine, "door")
    body = await report(api, camera="door", **{"from": iso(T0)}, to=iso(T0 + timedelta(days=2)),
                        bucket="hour", group_by="line,class,direction")
    rows = body["crossings"]
    assert body["group_by"] == ["camera", "line", "class", "direction"]
    # Every series of the line: person and car seen, both directions of each (car out: 0s).
    series = {(r["line"], r["object_class"], r["direction"]) for r in rows}
    assert series == {("entry", c, d) for c in ("car", "person") for d in ("in", "out")}
    assert len(rows) == 4 * 48
    for row in rows:
        first = minute_of(row["start"])
        assert minute_of(row["end"]) == first + 60
        assert row["camera_id"] == "door" and row["coverage"] == 1 and not row["partial"]
        assert row["count"] == expected(first, first + 60, object_class=row["object_class"],
                                        direction=row["direction"]), row


async def test_day_minute_and_range_buckets_sum_the_same_minutes(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed(engine, "door")
    end = T0 + timedelta(days=2)
    days = (await report(api, camera="door", **{"from": iso(T0)}, to=iso(end),
                         bucket="day"))["crossings"]
    assert [r["count"] for r in days] == [expected(0, 1440), expected(1440, 2880)]
    whole = (await report(api, camera="door", **{"from": iso(T0)}, to=iso(end),
                          bucket="range", group_by="direction"))["crossings"]
    assert {r["direction"]: r["count"] for r in whole} == {
        "in": expected(0, 2880, direction="in"), "out": expected(0, 2880, direction="out")}
    assert all(r["camera_id"] is None for r in whole)  # not grouped by camera: the total
    start = T0 + timedelta(hours=5)
    minutes = (await report(api, camera="door", **{"from": iso(start)},
                            to=iso(start + timedelta(hours=1)), bucket="minute",
                            group_by="class"))["crossings"]
    person = [r["count"] for r in minutes if r["object_class"] == "person"]
    assert person == [expected(m, m + 1, object_class="person") for m in range(300, 360)]


async def test_an_outage_reads_as_null_buckets_not_zeros(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Counted for 10 hours, then down 10:00-12:30 (no rows then), then counted again.
    await seed(engine, "door", minutes=10 * 60)
    async with engine.begin() as conn:
        await conn.execute(coverage_gaps.insert().values(
            camera_id="door", stream_epoch=1, started_at=T0 + timedelta(hours=10),
            ended_at=T0 + timedelta(hours=12, minutes=30), reason="camera_down",
            detail="stalled: no frames", recorded_at=T0 + timedelta(hours=10)))
    body = await report(api, camera="door", **{"from": iso(T0)},
                        to=iso(T0 + timedelta(hours=15)), bucket="hour")
    rows = body["crossings"]
    by_hour = {minute_of(r["start"]) // 60: r for r in rows}
    assert by_hour[9]["count"] == expected(540, 600) and by_hour[9]["coverage"] == 1
    for hour in (10, 11):
        assert by_hour[hour]["count"] is None and by_hour[hour]["coverage"] == 0
    assert by_hour[12]["coverage"] == 0.5 and by_hour[12]["partial"]
    assert by_hour[12]["count"] == 0  # watched half the hour, nothing counted: a lower bound
    assert by_hour[13]["count"] == 0 and by_hour[13]["coverage"] == 1
    [gap] = body["gaps"]
    assert gap["reason"] == "camera_down" and not gap["approximate"]
    assert minute_of(gap["started_at"]) == 600 and minute_of(gap["ended_at"]) == 750
    [camera] = body["cameras"]
    assert [(minute_of(s["start"]), minute_of(s["end"])) for s in camera["uncovered"]] == [
        (600, 750)]


async def test_before_registration_after_the_last_batch_and_the_future_are_unknown(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    base = now.replace(minute=0, second=0, microsecond=0)
    registered = base - timedelta(hours=3)
    # door: its last batch was applied at -0:30; skewed: its worker's clock runs hours ahead.
    await seed(engine, "door", registered_at=registered,
               applied_until=base - timedelta(minutes=30), minutes=0)
    await seed(engine, "skewed", registered_at=registered,
               applied_until=base + timedelta(hours=5), minutes=0)
    await seed(engine, "never", registered_at=registered, applied_until=None, minutes=0)
    body = await report(api, camera=["door", "skewed", "never"],
                        **{"from": iso(base - timedelta(hours=4))},
                        to=iso(base + timedelta(hours=2)), bucket="hour")
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in body["crossings"]:
        rows.setdefault(row["camera_id"], []).append(row)
    # Hours -4 (not registered yet), -3, -2, -1, 0 (now is in it), +1 (the future).
    assert [r["count"] for r in rows["door"]] == [None, 0, 0, 0, None, None]
    assert rows["door"][3]["coverage"] == 0.5 and rows["door"][3]["partial"]
    assert [r["count"] for r in rows["skewed"][:4]] == [None, 0, 0, 0]
    assert rows["skewed"][5]["count"] is None and rows["skewed"][5]["coverage"] == 0
    current = rows["skewed"][4]  # watched until now: part of the hour (none at hh:00:00)
    assert current["coverage"] < 1 and (current["count"] is None) == (current["coverage"] == 0)
    assert [r["count"] for r in rows["never"]] == [None] * 6
    never = next(c for c in body["cameras"] if c["camera_id"] == "never")
    assert never["watched_from"] is None and len(never["uncovered"]) == 1


async def test_a_gap_of_batches_without_times_is_placed_where_it_was_recorded(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed(engine, "door", minutes=0)
    async with engine.begin() as conn:
        # 120 batches of 1 s (5 frames at 5 fps) shed, recorded at 06:30.
        await conn.execute(coverage_gaps.insert().values(
            camera_id="door", stream_epoch=1, seq_from=1000, seq_to=1119, reason="shed",
            recorded_at=T0 + timedelta(hours=6, minutes=30)))
    body = await report(api, camera="door", **{"from": iso(T0 + timedelta(hours=6))},
                        to=iso(T0 + timedelta(hours=7)), bucket="minute")
    [gap] = body["gaps"]
    assert gap["approximate"] and gap["seq_from"] == 1000
    assert minute_of(gap["started_at"]) == 6 * 60 + 28 and minute_of(gap["ended_at"]) == 390
    nulls = [minute_of(r["start"]) for r in body["crossings"] if r["count"] is None]
    assert nulls == [388, 389]


async def test_zones_sum_entries_and_exits_and_keep_the_largest_peak(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed(engine, "door", minutes=0)
    async with engine.begin() as conn:
        zone_id = (await conn.execute(text("SELECT id FROM zones WHERE camera_id = 'door'"))
                   ).scalar_one()
        await conn.execute(zone_buckets.insert(), [
            {"camera_id": "door", "zone_id": zone_id, "zone_version": 1, "object_class": "person",
             "bucket_start": T0 + timedelta(minutes=m), "entries": 2, "exits": 1,
             "peak_occupancy": m % 4, "dwell_total_s": 30.0, "dwell_count": 1}
            for m in range(120)])
    body = await report(api, camera="door", measure="zones", group_by="zone",
                        **{"from": iso(T0)}, to=iso(T0 + timedelta(hours=3)), bucket="hour")
    rows = body["zones"]
    assert body["crossings"] is None
    assert [(r["zone"], r["entries"], r["exits"], r["peak_occupancy"], r["dwell_avg_s"])
            for r in rows] == [("queue", 120, 60, 3, 30.0), ("queue", 120, 60, 3, 30.0),
                               ("queue", 0, 0, 0, None)]


async def test_day_boundaries_follow_the_time_zone_across_daylight_saving(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # New York's 2024-03-10 lasts 23 hours; one count per minute gives its length in minutes.
    start = datetime(2024, 3, 9, 5, tzinfo=UTC)  # 00:00 in New York
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(id="ny", name="ny", url="rtsp://x.invalid/",
                                                   created_at=start))
        line = (await conn.execute(counting_lines.insert().values(
            camera_id="ny", name="entry", version=1, geometry=LINE
        ).returning(counting_lines.c.id))).scalar_one()
        await conn.execute(camera_progress.insert().values(
            camera_id="ny", stream_epoch=1, last_seq=1, tracker_checkpoint={}, totals={},
            worker_id="w", updated_at=start + timedelta(days=3)))
        await conn.execute(count_buckets.insert(), [
            {"camera_id": "ny", "line_id": line, "line_version": 1, "object_class": "person",
             "direction": "in", "bucket_start": start + timedelta(minutes=m), "count": 1}
            for m in range(3 * 1440)])
    body = await report(api, camera="ny", tz="America/New_York", bucket="day",
                        **{"from": "2024-03-09T00:00:00"}, to="2024-03-12T00:00:00")
    rows = body["crossings"]
    assert [r["start"] for r in rows] == ["2024-03-09T00:00:00-05:00",
                                          "2024-03-10T00:00:00-05:00",
                                          "2024-03-11T00:00:00-04:00"]
    assert [r["count"] for r in rows] == [1440, 1380, 1440]
    assert body["tz"] == "America/New_York" and body["from"] == "2024-03-09T00:00:00-05:00"


async def test_csv_says_what_json_says_with_empty_cells_for_gaps(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed(engine, "door", line_name="=HYPERLINK(\"http://evil\")", minutes=120)
    params = {"camera": "door", "from": iso(T0), "to": iso(T0 + timedelta(hours=4)),
              "bucket": "hour", "group_by": "line,direction"}
    async with engine.begin() as conn:
        await conn.execute(coverage_gaps.insert().values(
            camera_id="door", stream_epoch=1, started_at=T0 + timedelta(hours=2),
            ended_at=T0 + timedelta(hours=3), reason="camera_down"))
    as_json = (await report(api, **params))["crossings"]
    response = await api.get("/api/reports", params={**params, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith('.csv"')
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["start", "end", "camera_id", "line", "direction", "count", "coverage",
                        "partial"]
    assert len(table) == 1 + len(as_json)
    for cells, row in zip(table[1:], as_json, strict=True):
        assert cells[:3] == [row["start"], row["end"], row["camera_id"]]
        assert cells[3] == "'" + row["line"]  # a formula in a name is defused
        assert cells[4] == row["direction"]
        assert cells[5] == ("" if row["count"] is None else str(row["count"]))
        assert float(cells[6]) == row["coverage"]
        assert cells[7] == str(row["partial"]).lower()
    assert any(cells[5] == "" for cells in table[1:])  # hour 2: the gap


async def test_a_key_of_one_site_cannot_tell_another_sites_cameras_from_missing_ones(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    await seed(engine, "shop-cam", site="shop", minutes=60)
    await seed(engine, "station-cam", site="station", minutes=60)
    viewer = await new_key(engine, "viewer", "shop")
    window = {"from": iso(T0), "to": iso(T0 + timedelta(hours=1))}
    async with registry(isolated, engine, key=viewer) as api:
        mine = await api.get("/api/reports", params={"camera": "shop-cam", **window})
        assert mine.status_code == 200  # a viewer may read reports
        answers = []
        for cameras_asked in (["station-cam"], ["no-such-cam"], ["shop-cam", "station-cam"]):
            response = await api.get("/api/reports", params={"camera": cameras_asked, **window})
            assert response.status_code == 404
            answers.append(response.json()["detail"].replace("station-cam", "X")
                           .replace("no-such-cam", "X"))
        assert len(set(answers)) == 1
        every = await report(api, **window)
        assert [c["camera_id"] for c in every["cameras"]] == ["shop-cam"]


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"tz": "Mars/Olympus"}, "tz", "IANA time zone"),
        ({"from": "2024-03-04T00:00:30Z"}, "from", "whole minute"),
        ({"to": "2024-03-03T00:00:00Z"}, "to", "after from"),
        ({"to": "2025-03-06T00:00:00Z"}, "to", "at most 366 days"),
        ({"to": "2024-04-10T00:00:00Z", "bucket": "minute"}, "bucket", "larger bucket"),
        ({"bucket": "week"}, "bucket", "Input should be"),
        ({"group_by": "camera,colour"}, "group_by", "not a dimension"),
        ({"measure": "zones", "group_by": "direction"}, "group_by", "not a dimension"),
        ({"camera": "Bad Camera"}, "camera", "lowercase"),
        ({"format": "xlsx"}, "format", "Input should be"),
        ({"from": "yesterday"}, "from", "datetime"),
        ({"from": "0001-01-01T00:00:00Z"}, "from", "between"),
    ],
)
async def test_bad_parameters_get_a_422_naming_the_parameter(
    api: httpx.AsyncClient, engine: AsyncEngine, params: dict[str, str], param: str,
    message: str
) -> None:
    await seed(engine, "door", minutes=0)
    query = {"camera": "door", "from": "2024-03-04T00:00:00Z", "to": "2024-03-05T00:00:00Z",
             **params}
    response = await api.get("/api/reports", params=query)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][:2] == ["query", param], error
    assert message in error["msg"], error


async def test_a_camera_is_watched_from_its_first_live_frame_not_its_registration(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Registered with a wrong password at T0, live only from T0+2h: ingest opens no gap for
    a camera that never delivered, so those hours must come from its status history."""
    await seed(engine, "door", applied_until=T0 + timedelta(hours=4), minutes=0)
    async with engine.begin() as conn:
        await conn.execute(camera_events.insert(), [
            {"camera_id": "door", "status": "auth_failed", "reason": "401", "at": T0},
            {"camera_id": "door", "status": "live", "reason": "frames arriving",
             "at": T0 + timedelta(hours=2)}])
    body = await report(api, camera="door", **{"from": iso(T0)},
                        to=iso(T0 + timedelta(hours=4)), bucket="hour")
    assert [r["count"] for r in body["crossings"]] == [None, None, 0, 0]


async def test_a_report_over_its_time_bound_is_a_503_not_a_held_database(
    isolated: Isolated, engine: AsyncEngine
) -> None:
    for camera_id in ("a", "b", "c"):
        await seed(engine, camera_id)
    async with registry(isolated, engine, report_timeout_s=0.001) as api:
        answer = await api.get("/api/reports", params={
            "from": iso(T0), "to": iso(T0 + timedelta(days=DAYS)), "bucket": "minute",
            "group_by": "camera,line,class,direction"})
    assert answer.status_code == 503 and "longer than" in answer.json()["detail"]
