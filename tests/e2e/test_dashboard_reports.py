"""The report view shows a camera outage as a gap, never as zeros: three hours of per-minute
buckets with the middle hour lost to a recorded outage (a coverage_gaps row, no buckets), in
real Chromium against the registry app and a real PostgreSQL. The chart hatches the hour and
breaks the line there, the table says "no data", the CSV leaves the cells empty; and the
hours are the browser's own (Europe/Berlin), as the page asks the API for them."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import count_buckets, coverage_gaps
from tests.conftest import Isolated
from tests.e2e.browser import chromium, dashboard, screenshot
from tests.integration.registry_client import bearer, new_key, registry_in_process

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


async def history_with_an_outage(engine: AsyncEngine, camera_id: str, line_id: int,
                                 start: datetime) -> None:
    """Registered four hours before `start` + 3 h; one crossing in every minute of the first
    and third hour; the second hour lost to a camera outage; watched until now."""
    minutes = [start + timedelta(minutes=m) for m in (*range(60), *range(120, 180))]
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE cameras SET created_at = :at WHERE id = :id"),
                           {"at": start - timedelta(hours=1), "id": camera_id})
        await conn.execute(count_buckets.insert(), [
            {"camera_id": camera_id, "line_id": line_id, "line_version": 1,
             "object_class": "person", "direction": "in", "bucket_start": minute, "count": 1}
            for minute in minutes])
        await conn.execute(coverage_gaps.insert().values(
            camera_id=camera_id, stream_epoch=1, seq_from=None, seq_to=None,
            started_at=start + timedelta(hours=1), ended_at=start + timedelta(hours=2),
            reason="camera_down", detail="no frames for an hour"))
        await conn.execute(text(
            "INSERT INTO camera_progress (camera_id, stream_epoch, last_seq, tracker_checkpoint, "
            "totals, worker_id, updated_at) VALUES (:id, 2, 10, '{}', '{}', 'w-1', now())"),
            {"id": camera_id})


async def test_a_camera_outage_shows_as_a_gap_in_chart_table_and_csv(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    key = await new_key(engine, "viewer")
    async with registry_in_process(isolated, engine) as base:
        async with httpx.AsyncClient(base_url=base, headers=bearer(await new_key(engine))) as api:
            created = await api.post("/api/cameras", json={
                "id": "door", "name": "Door", "url": "rtsp://10.0.0.9/stream",
                "lines": [{"name": "entry", "a": {"x": 0.5, "y": 0}, "b": {"x": 0.5, "y": 1}}]})
            assert created.status_code == 201, created.text
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
        await history_with_an_outage(engine, "door", created.json()["lines"][0]["id"], start)

        async with chromium() as browser, dashboard(browser, base, key, view="reports",
                                                    timezone="Europe/Berlin") as page:
            form = page.locator("#report-form")
            await form.locator("[name=camera]").select_option("door")
            local = "%Y-%m-%dT%H:%M"
            await form.locator("[name=from]").fill(start.astimezone(BERLIN).strftime(local))
            await form.locator("[name=to]").fill(
                (start + timedelta(hours=3)).astimezone(BERLIN).strftime(local))
            await form.locator("[name=bucket]").select_option("hour")
            await form.locator("button[type=submit]").click()
            await page.locator("#report-status").filter(has_text="3 buckets").wait_for(
                timeout=10_000)

            rows = page.locator("#report-table tbody tr")
            assert await rows.count() == 3
            cells = [await rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
            # Bucket, entry · in, entry · out, coverage; the hours in the browser's zone.
            assert [c[1:] for c in cells] == [["60", "0", "100 %"],
                                              ["no data", "no data", "0 %"],
                                              ["60", "0", "100 %"]], cells
            first_hour = start.astimezone(BERLIN).strftime("%H:%M")
            assert first_hour in cells[0][0], (first_hour, cells[0][0])
            head = await page.locator("#report-table thead th").all_inner_texts()
            assert head == ["Bucket", "entry · in", "entry · out", "Coverage"]

            chart = page.locator("#report-chart svg.series-chart")
            assert await chart.locator('rect.gap[data-bucket="1"]').count() == 1
            assert await chart.locator("rect.gap").count() == 1
            # Each series is two single points, the line broken over the outage: no segment
            # (no polyline) bridges it and nothing is drawn at zero there.
            assert await chart.locator("polyline.series").count() == 0
            assert await chart.locator("circle").count() == 4
            gaps = await page.locator("#report-chart .report-gaps li").all_inner_texts()
            assert len(gaps) == 1 and "camera down" in gaps[0], gaps
            await screenshot(page, "dashboard-report-gap")

            async with page.expect_download() as downloading:
                await page.click("#report-csv")
            download = await downloading.value
            assert download.suggested_filename.endswith(".csv")
            body = (await download.path()).read_text()
        table = list(csv.DictReader(io.StringIO(body)))
        assert [(r["direction"], r["count"], r["coverage"]) for r in table] == [
            ("in", "60", "1.0"), ("in", "", "0.0"), ("in", "60", "1.0"),
            ("out", "0", "1.0"), ("out", "", "0.0"), ("out", "0", "1.0")], table
