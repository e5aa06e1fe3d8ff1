"""A count committed on the server reaches the dashboard within a second: the registry and the
broadcaster as processes, real PostgreSQL, real Chromium. The commit is what a worker's apply
writes (progress totals and an outbox row, NOTIFY in the same transaction); the page learns it
over its WebSocket only. After the broadcaster restarts, the page reconnects with a new ticket
and resumes from the last event it saw: what was committed meanwhile still arrives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts.tables import OUTBOX_CHANNEL
from tests.conftest import Isolated
from tests.e2e.browser import chromium, dashboard, roles, screenshot
from tests.integration.registry_client import bearer, new_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def commit_counts(engine: AsyncEngine, camera_id: str, seq: int,
                        totals: dict[str, int], delta: dict[str, int]) -> None:
    """One applied batch's visible effects, written like workers/effects.py writes them."""
    now = time.time()
    payload = {"batch_id": f"{camera_id}:1:{seq}", "captured_at": now - 0.5,
               "committed_at": now, "delta": delta, "totals": totals, "occupancy": {}}
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO camera_progress (camera_id, stream_epoch, last_seq, tracker_checkpoint, "
            "totals, worker_id) VALUES (:camera, 1, :seq, '{}', CAST(:totals AS jsonb), 'w-1') "
            "ON CONFLICT (camera_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, "
            "totals = EXCLUDED.totals, updated_at = now()"),
            {"camera": camera_id, "seq": seq, "totals": json.dumps(totals)})
        await conn.execute(text(
            "INSERT INTO outbox (camera_id, region, topic, payload) "
            "VALUES (:camera, 'local', 'counts', CAST(:payload AS jsonb))"),
            {"camera": camera_id, "payload": json.dumps(payload)})
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


async def add_camera(base: str, key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=10) as api:
        created = await api.post("/api/cameras", json={
            "id": "door", "name": "Door", "url": "rtsp://10.0.0.9/stream",
            "lines": [{"name": "entry", "a": {"x": 0.5, "y": 0}, "b": {"x": 0.5, "y": 1}}]})
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def shows_within_a_second(page: Page, cell: Any, count: int) -> float:
    """Seconds from now until `cell` reads `count`; fails past one second."""
    started = time.monotonic()
    await cell.filter(has_text=str(count)).wait_for(timeout=1000)
    return time.monotonic() - started


async def test_a_committed_count_shows_within_a_second_and_survives_a_broadcaster_restart(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path,
) -> None:
    async with roles(isolated, tmp_path, ["registry", "broadcaster"]) as stack:
        key = await new_key(engine, "viewer")
        line_id = (await add_camera(stack.base, await new_key(engine)))["lines"][0]["id"]
        async with chromium() as browser, dashboard(browser, stack.base, key) as page:
            await page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
            row = page.locator(f'#cameras tr[data-camera="door"][data-line="{line_id}"]')
            cell_in = row.locator('td[data-direction="in"]')
            cell_out = row.locator('td[data-direction="out"]')
            await cell_in.filter(has_text="0").wait_for(timeout=5000)

            await commit_counts(engine, "door", 1, {f"{line_id}:in:person": 3},
                                {f"{line_id}:in:person": 3})
            took = await shows_within_a_second(page, cell_in, 3)
            print(f"commit to page: {took * 1000:.0f} ms")
            assert await cell_out.inner_text() == "0"
            # The minute chart took the delta too.
            chart = page.locator('#cameras tbody[data-camera="door"] svg.minute-chart')
            assert (await chart.get_attribute("aria-label") or "").startswith("3 crossings")
            await screenshot(page, "dashboard-live-count")

            broadcaster = next(c for c in stack.children if c.name == "broadcaster")
            stack.children.remove(broadcaster)
            processes.stop([broadcaster])
            await page.wait_for_selector("#connection[data-state=down]", timeout=10_000)
            await commit_counts(engine, "door", 2, {f"{line_id}:in:person": 3,
                                                    f"{line_id}:out:person": 2},
                                {f"{line_id}:out:person": 2})
            stack.start("broadcaster")
            await page.wait_for_selector("#connection[data-state=live]", timeout=20_000)
            await cell_out.filter(has_text="2").wait_for(timeout=5000)
            assert await cell_in.inner_text() == "3"
