"""An alert fires, shows on the dashboard and is acknowledged from it: the registry (with its
alert evaluator) and the broadcaster as processes, real PostgreSQL, real Chromium. The rule is
made with the page's own form; crossings inserted as a worker's apply writes them make it
fire; the page learns of it over its WebSocket; the Acknowledge button acknowledges it; when
the crossings leave the window it resolves and moves to the history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import crossing_events
from registry import api_keys
from tests.conftest import Isolated
from tests.e2e.browser import chromium, dashboard, roles, screenshot
from tests.integration.registry_client import bearer, new_key

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def cross(engine: AsyncEngine, camera_id: str, line_id: int, n: int) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(crossing_events.insert(), [
            {"camera_id": camera_id, "line_id": line_id, "line_version": 1, "track_id": i,
             "object_class": "person", "direction": "in",
             "occurred_at": now - timedelta(seconds=i), "stream_epoch": 1, "seq": i}
            for i in range(n)])


async def alerts(base: str, key: str, state: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, headers=bearer(key), timeout=10) as api:
        response = await api.get(f"/api/alerts?state={state}")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_an_alert_fires_shows_and_is_acknowledged_from_the_page(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path,
) -> None:
    async with roles(isolated, tmp_path, ["registry", "broadcaster"],
                     ALERT_EVAL_S=0.5) as stack:
        async with httpx.AsyncClient(base_url=stack.base, timeout=10,
                                     headers=bearer(await new_key(engine))) as api:
            created = await api.post("/api/cameras", json={
                "id": "door", "name": "Door", "url": "rtsp://10.0.0.9/stream",
                "lines": [{"name": "entry", "a": {"x": 0.5, "y": 0}, "b": {"x": 0.5, "y": 1}}]})
            assert created.status_code == 201, created.text
        line_id = created.json()["lines"][0]["id"]
        key = await new_key(engine, "operator")
        key_id = (api_keys.parse(key) or ("?", ""))[0]

        async with chromium() as browser, dashboard(browser, stack.base, key,
                                                    view="alerts") as page:
            await page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
            form = page.locator("#rule-form")
            await form.locator("[name=name]").fill("busy door")
            await form.locator("[name=kind]").select_option("count_over")
            await form.locator("[name=camera_id]").select_option("door")
            await form.locator("[name=window_s]").fill("300")
            await form.locator("[name=threshold]").fill("2")
            await form.locator("[name=cooldown_s]").fill("0")
            await form.locator("button[type=submit]").click()
            await page.locator("#rule-status").filter(has_text="added").wait_for(timeout=5000)
            await page.locator("#alert-rules tbody tr", has_text="busy door").wait_for(
                timeout=5000)
            assert await page.locator("#alerts-open tbody tr[data-alert]").count() == 0

            await cross(engine, "door", line_id, 3)
            started = time.monotonic()
            row = page.locator('#alerts-open tbody tr[data-state="firing"]',
                               has_text="busy door")
            await row.wait_for(timeout=15_000)
            print(f"crossings inserted to alert on the page: {time.monotonic() - started:.1f} s")
            assert "3 crossings" in await row.locator("td.message").inner_text()
            assert await page.locator("#alerts-count").inner_text() == "1"
            await screenshot(page, "dashboard-alert-firing")

            await row.get_by_role("button", name="acknowledge busy door on door").click()
            acknowledged = page.locator('#alerts-open tbody tr[data-state="acknowledged"]',
                                        has_text="busy door")
            await acknowledged.wait_for(timeout=5000)
            assert key_id in await acknowledged.locator("td").last.inner_text()
            assert "3 crossings" in await acknowledged.locator("td.message").inner_text()
            assert await page.locator("#alerts-count").inner_text() == ""
            await screenshot(page, "dashboard-alert-acknowledged")

            # The crossings age out of the window (here: deleted): it resolves, into history.
            async with engine.begin() as conn:
                await conn.execute(crossing_events.delete())
            await page.locator("#alerts-history tbody tr[data-alert]", has_text="busy door"
                               ).wait_for(timeout=15_000)
            assert await page.locator("#alerts-open tbody tr[data-alert]").count() == 0

        [stored] = await alerts(stack.base, key, "resolved")
        assert stored["acknowledged_by"] == key_id and stored["acknowledged_at"] is not None
        assert stored["rule_name"] == "busy door" and stored["subject"] == "door"
