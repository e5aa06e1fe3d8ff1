"""A line drawn in the dashboard's editor is saved and used by the worker: the whole stack as
processes (camera simulator over RTSP, registry, broadcaster, balancer, worker, ingest), real
RabbitMQ and PostgreSQL, real Chromium. The camera is registered without lines; the page
shows its latest frame (stored by ingest), a vertical centre line is drawn on it with the
mouse and saved; the crossings counted from then on reference that line's id and version.
Moving the line's end makes a new version, and the worker counts on that one next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts.tables import crossing_events
from tests.camera_host import camera_env, camera_host
from tests.conftest import Isolated
from tests.e2e.browser import chromium, dashboard, free_port, roles, screenshot, show
from tests.integration.registry_client import bearer, new_key
from tests.support import eventually, progress

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CAMERA = "cam-editor"


async def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag over the frame in relative coordinates (0 and 1: one pixel inside)."""
    box = await page.locator("#editor-overlay").bounding_box()
    assert box is not None

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return (box["x"] + 1 + p[0] * (box["width"] - 2), box["y"] + 1 + p[1] * (box["height"] - 2))

    await page.mouse.move(*at(start))
    await page.mouse.down()
    await page.mouse.move(*at(end), steps=10)
    await page.mouse.up()


async def crossings(engine: AsyncEngine) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(crossing_events.c.line_id, crossing_events.c.line_version)
                                  .where(crossing_events.c.camera_id == CAMERA)
                                  .order_by(crossing_events.c.id))
    return [(int(r.line_id), int(r.line_version)) for r in rows]


async def test_a_line_drawn_in_the_editor_is_saved_and_counted_by_the_worker(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path,
) -> None:
    rtsp = free_port()
    async with roles(isolated, tmp_path, ["registry", "broadcaster", "balancer", "worker",
                                          "ingest"],
                     WORKER_ID="w-editor", CAMERA_POLL_S=0.5, SNAPSHOT_S=1,
                     **camera_env(rtsp)) as stack:
        stack.spawn("simulator", processes.cli_argv(
            "simulate", "--host", camera_host(), "--port", str(rtsp), "--mount",
            f"{CAMERA}:synthetic:seed=5,crossings=4,warmup_s=2,loop=true"))
        admin = await new_key(engine)
        async with httpx.AsyncClient(base_url=stack.base, headers=bearer(admin),
                                     timeout=10) as api:
            created = await api.post("/api/cameras", json={
                "id": CAMERA, "name": "Editor", "target_fps": 10, "batch_frames": 5,
                "batch_ms": 1000, "url": f"rtsp://{camera_host()}:{rtsp}/{CAMERA}"})
            assert created.status_code == 201, created.text

            async def snapshot() -> int:
                return (await api.get(f"/api/cameras/{CAMERA}/snapshot")).status_code

            await eventually(snapshot, lambda code: code == 200, timeout_s=60)

            key = await new_key(engine, "operator")
            async with chromium() as browser, dashboard(browser, stack.base, key,
                                                        view="cameras-setup") as page:
                await page.click(f'#camera-picker button[data-camera="{CAMERA}"]')
                await page.locator('#editor-canvas[data-frame="loaded"]').wait_for(
                    timeout=10_000)
                await drag(page, (0.5, 0.0), (0.5, 1.0))
                await page.locator("#editor-shapes .shape-name").fill("centre")
                await screenshot(page, "dashboard-editor-full-stack")
                await page.click("#editor-save")
                await page.locator("#editor-status").filter(has_text="Saved: 1 line,").wait_for(
                    timeout=5000)
                [line] = (await api.get(f"/api/cameras/{CAMERA}")).json()["lines"]
                assert line["name"] == "centre" and line["version"] == 1
                for point, y in ((line["a"], 0.0), (line["b"], 1.0)):
                    assert abs(point["x"] - 0.5) < 0.01 and abs(point["y"] - y) < 0.01, line

                # The worker counts on the drawn line: its crossings and totals reference it.
                first = await eventually(lambda: crossings(engine), bool, timeout_s=90)
                assert set(first) == {(line["id"], 1)}, first
                totals = await eventually(lambda: progress(engine, CAMERA),
                                          lambda p: p is not None and bool(p[1]))
                assert totals is not None
                assert {k.split(":")[0] for k in totals[1]} == {str(line["id"])}, totals

                # ...and so does the page: the line's row counts live.
                await show(page, "live")
                row = page.locator(f'#cameras tr[data-camera="{CAMERA}"][data-line="{line["id"]}"]')
                await row.wait_for(timeout=10_000)
                await eventually(lambda: _sum(row), lambda n: n > 0, timeout_s=30)

                # Move the bottom end: a new version of the line, counted on next.
                await show(page, "cameras-setup")
                await drag(page, (0.5, 1.0), (0.45, 1.0))
                await page.click("#editor-save")
                await page.locator("#editor-shapes tbody tr", has_text="line v2").wait_for(
                    timeout=5000)
                [moved] = (await api.get(f"/api/cameras/{CAMERA}")).json()["lines"]
                assert moved["version"] == 2 and moved["id"] != line["id"]
                later = await eventually(lambda: crossings(engine),
                                         lambda seen: (moved["id"], 2) in seen, timeout_s=90)
                assert set(later) <= {(line["id"], 1), (moved["id"], 2)}, later
                # Geometry is read in each batch's transaction: once v2 counts, v1 never again.
                switched = later.index((moved["id"], 2))
                assert set(later[switched:]) == {(moved["id"], 2)}, later
                await screenshot(page, "dashboard-editor-moved")


async def _sum(row: Any) -> int:
    cells = await row.locator("td[data-direction]").all_inner_texts()
    return sum(int(text) for text in cells)
