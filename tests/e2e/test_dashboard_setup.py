"""Registering a camera and drawing its lines and zones from the page, in real Chromium against
the registry app and a real PostgreSQL: refused fields show the API's message next to them,
the editor draws on the camera's latest frame and saves through PUT lines/zones; a viewer
sees no controls; a refused key brings the key prompt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.async_api import Page
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.secrets import mask_url
from contracts.tables import camera_snapshots
from ingest.jpeg import encode_jpeg
from simulator.scenes import SyntheticScene
from tests.conftest import Isolated
from tests.e2e.browser import chromium, dashboard, screenshot, show
from tests.integration.registry_client import bearer, new_key, registry_in_process

PASSWORD = "s3cret-Pw"


async def camera(base: str, key: str, camera_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers=bearer(key)) as api:
        response = await api.get(f"/api/cameras/{camera_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def store_snapshot(engine: AsyncEngine, camera_id: str) -> None:
    """A frame as ingest stores it: the synthetic scene's background, 640x360."""
    jpeg, width, height = encode_jpeg(SyntheticScene(seed=3, crossings=0).render(0.0), 640, 80)
    async with engine.begin() as conn:
        await conn.execute(camera_snapshots.insert().values(
            camera_id=camera_id, jpeg=jpeg, width=width, height=height,
            captured_at=datetime.now(UTC), node_id="node-a"))


async def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag over the editor's frame, in relative coordinates."""
    box = await page.locator("#editor-overlay").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    await page.mouse.down()
    await page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"],
                          steps=8)
    await page.mouse.up()


async def click_at(page: Page, point: tuple[float, float]) -> None:
    box = await page.locator("#editor-overlay").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"])


def near(point: dict[str, float], x: float, y: float) -> bool:
    return abs(point["x"] - x) < 0.01 and abs(point["y"] - y) < 0.01


async def test_register_with_field_errors_then_draw_and_edit_lines_and_zones(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    key = await new_key(engine, "operator")
    async with registry_in_process(isolated, engine) as base, chromium() as browser, \
            dashboard(browser, base, key, view="cameras-setup") as page:
        form = page.locator("#camera-form")
        await form.locator("#cf-id").fill("Door 1")
        await form.locator("#cf-name").fill("Front door")
        await form.locator("#cf-url").fill(f"ftp://admin:{PASSWORD}@10.0.0.9/x")
        await form.locator("#cf-submit").click()
        # Each refused field shows the API's message beside it, and is marked invalid.
        await page.locator("#cf-url-error").filter(has_text="scheme").wait_for(timeout=5000)
        await page.locator("#cf-id-error").wait_for(timeout=5000)
        assert await form.locator("#cf-url").get_attribute("aria-invalid") == "true"
        assert await form.locator("#cf-url").get_attribute("aria-describedby") == "cf-url-error"
        assert await page.locator("#cf-name-error").count() == 0
        await screenshot(page, "dashboard-register-errors")

        await form.locator("#cf-id").fill("door-1")
        await form.locator("#cf-url").fill(f"rtsp://admin:{PASSWORD}@10.0.0.9/stream")
        await form.locator("#cf-submit").click()
        await page.locator("#cf-status").filter(has_text="Registered door-1").wait_for(
            timeout=5000)
        assert await page.locator(".field-error[data-field]").count() == 0
        # The form now shows the camera as the API does: the password masked.
        masked = mask_url(f"rtsp://admin:{PASSWORD}@10.0.0.9/stream")
        assert PASSWORD not in masked
        assert await form.locator("#cf-url").input_value() == masked

        # The editor opens on the new camera; ingest has no frame yet, then stores one.
        editor = page.locator('#editor[data-camera="door-1"]')
        await editor.locator('#editor-canvas[data-frame="missing"]').wait_for(timeout=5000)
        await store_snapshot(engine, "door-1")
        await page.click("#editor-reload")
        await editor.locator('#editor-canvas[data-frame="loaded"]').wait_for(timeout=5000)

        await drag(page, (0.25, 0.5), (0.75, 0.5))
        name = page.locator("#editor-shapes tbody tr").last.locator(".shape-name")
        assert await name.evaluate("input => input === document.activeElement")
        await name.fill("entry")
        await page.click('#editor [data-tool="zone"]')
        for corner in ((0.1, 0.1), (0.4, 0.1), (0.4, 0.4)):
            await click_at(page, corner)
        await page.keyboard.press("Enter")
        await page.locator("#editor-shapes tbody tr").last.locator(".shape-name").fill("queue")
        await screenshot(page, "dashboard-editor-drawn")
        await page.click("#editor-save")
        await page.locator("#editor-status").filter(has_text="Saved: 1 line, 1 zone").wait_for(
            timeout=5000)

        saved = await camera(base, key, "door-1")
        [line] = saved["lines"]
        assert line["name"] == "entry" and line["version"] == 1
        assert near(line["a"], 0.25, 0.5) and near(line["b"], 0.75, 0.5), line
        [zone] = saved["zones"]
        assert zone["name"] == "queue" and len(zone["points"]) == 3
        assert all(near(p, x, y) for p, (x, y) in
                   zip(zone["points"], ((0.1, 0.1), (0.4, 0.1), (0.4, 0.4)), strict=True))

        # Moving the line's end by its handle makes a new version; the zone keeps its own.
        await drag(page, (0.75, 0.5), (0.75, 0.2))
        await page.click("#editor-save")
        await page.locator("#editor-shapes tbody tr", has_text="line v2").wait_for(timeout=5000)
        moved = await camera(base, key, "door-1")
        [new_line] = moved["lines"]
        assert new_line["version"] == 2 and new_line["id"] != line["id"]
        assert near(new_line["b"], 0.75, 0.2), new_line
        assert moved["zones"][0]["id"] == zone["id"]

        # The live view shows the new line's counts and the zone's occupancy.
        await show(page, "live")
        row = page.locator(f'#cameras tr[data-camera="door-1"][data-line="{new_line["id"]}"]')
        await row.locator('td[data-direction="in"]').filter(has_text="0").wait_for(timeout=10_000)
        await page.locator(f'#cameras tr[data-camera="door-1"][data-zone="{zone["id"]}"]'
                           ).wait_for(timeout=10_000)
        await screenshot(page, "dashboard-live-after-editor")
        assert PASSWORD not in await page.content()


async def test_a_viewer_sees_no_controls(isolated: Isolated, engine: AsyncEngine) -> None:
    admin = await new_key(engine)
    async with registry_in_process(isolated, engine) as base:
        async with httpx.AsyncClient(base_url=base, headers=bearer(admin)) as api:
            created = await api.post("/api/cameras", json={
                "id": "yard", "name": "Yard", "url": "rtsp://10.0.0.7/s",
                "lines": [{"name": "gate", "a": {"x": 0.5, "y": 0}, "b": {"x": 0.5, "y": 1}}]})
            assert created.status_code == 201, created.text
        viewer = await new_key(engine, "viewer")
        async with chromium() as browser, \
                dashboard(browser, base, viewer, view="cameras-setup") as page:
            assert await page.locator("#who").inner_text() == "viewer · every site"
            assert await page.locator("#camera-form").is_hidden()
            await page.click('#camera-picker button[data-camera="yard"]')
            await page.locator('#editor[data-camera="yard"]').wait_for(timeout=5000)
            assert await page.locator('#editor [data-tool="line"]').is_hidden()
            assert await page.locator("#editor-save").is_hidden()
            assert await page.locator(".shape-name").get_attribute("readonly") is not None
            await show(page, "alerts")
            assert await page.locator("#rule-form").is_hidden()


async def test_a_refused_key_asks_for_another(isolated: Isolated, engine: AsyncEngine) -> None:
    key = await new_key(engine, "viewer")
    async with registry_in_process(isolated, engine) as base, chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{base}/#key=cck_nope_nope")
        prompt = page.locator("#key-prompt")
        await prompt.filter(has_text="refused").wait_for(timeout=5000)
        assert await page.locator("#views").is_hidden()
        # The key left the address bar at once (it must not linger in history).
        assert "#key=" not in page.url
        await page.fill("#key-input", key)
        await page.press("#key-input", "Enter")
        await page.wait_for_selector("#views:not([hidden])", timeout=10_000)
        assert await prompt.is_hidden()
        await screenshot(page, "dashboard-after-key-prompt")


async def test_keyboard_placement_camera_changes_and_deletion(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    key = await new_key(engine, "operator")
    url = f"rtsp://admin:{PASSWORD}@10.0.0.7/stream"
    async with registry_in_process(isolated, engine) as base:
        async with httpx.AsyncClient(base_url=base, headers=bearer(key)) as api:
            created = await api.post("/api/cameras", json={"id": "yard", "name": "Yard",
                                                           "url": url})
            assert created.status_code == 201, created.text
        async with chromium() as browser, \
                dashboard(browser, base, key, view="cameras-setup") as page:
            await page.click('#camera-picker button[data-camera="yard"]')
            await page.locator('#editor[data-camera="yard"]').wait_for(timeout=5000)

            # A line placed with the keyboard alone: add, name, type its ends, save.
            await page.focus("#editor-add-line")
            await page.keyboard.press("Enter")
            await page.keyboard.type("gate")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Control+A")
            await page.keyboard.type("0.2,0.3 2,0")
            await page.keyboard.press("Tab")
            await page.locator("#editor-error").filter(has_text="outside 0..1").wait_for(
                timeout=5000)
            points = page.locator("#editor-shapes .shape-points")
            await points.fill("0.2,0.3 0.8,0.3")
            await points.press("Tab")
            await page.focus("#editor-save")
            await page.keyboard.press("Enter")
            await page.locator("#editor-status").filter(has_text="Saved: 1 line").wait_for(
                timeout=5000)
            [line] = (await camera(base, key, "yard"))["lines"]
            assert (line["name"], line["a"], line["b"]) == (
                "gate", {"x": 0.2, "y": 0.3}, {"x": 0.8, "y": 0.3})

            # Renaming through the form sends only the name: the stored url (and its
            # password, which the page never had) stays.
            await page.fill("#cf-name", "Back yard")
            await page.click("#cf-submit")
            await page.locator("#cf-status").filter(has_text="Saved yard").wait_for(timeout=5000)
            assert (await camera(base, key, "yard"))["name"] == "Back yard"
            async with engine.connect() as conn:
                stored = (await conn.execute(text("SELECT url FROM cameras WHERE id = 'yard'"))
                          ).scalar_one()
            assert stored == url

            page.on("dialog", lambda dialog: dialog.accept())
            await page.click("#cf-delete")
            await page.locator("#cf-status").filter(has_text="Deleted yard").wait_for(
                timeout=5000)
            await page.locator("#camera-picker", has_text="None yet").wait_for(timeout=5000)
            assert await page.locator("#editor").is_hidden()
        async with httpx.AsyncClient(base_url=base, headers=bearer(key)) as api:
            assert (await api.get("/api/cameras/yard")).status_code == 404
