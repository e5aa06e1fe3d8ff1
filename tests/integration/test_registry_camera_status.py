"""Camera status in the registry API and on the dashboard, against a real PostgreSQL: rows are
written with SQL as ingest nodes write them, and read back through the API (and Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Isolated
from tests.fake_dns import FakeDns
from tests.integration.registry_client import bearer, new_key, registry, registry_in_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run"]
STATS = {"fps": 4.5, "decoded": 120, "sampled": 60, "dropped": 2, "reconnects": 1}


async def add_camera(api: httpx.AsyncClient, camera_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": camera_id, "name": camera_id.title(),
            "url": "rtsp://admin:pa55word@10.0.0.9/stream", **fields}
    created = await api.post("/api/cameras", json=body)
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


async def add_node(engine: AsyncEngine, node_id: str, *, alive: bool, capacity: int = 8,
                   draining: bool = False) -> None:
    # Expiry on the database clock, as nodes set it.
    expires = "now() + interval '30 seconds'" if alive else "now() - interval '1 second'"
    await sql(engine, "INSERT INTO ingest_nodes (id, boot_id, capacity, expires_at, draining) "
              f"VALUES (:id, 'boot-1', :capacity, {expires}, :draining)",
              id=node_id, capacity=capacity, draining=draining)


async def set_status(engine: AsyncEngine, camera_id: str, status: str, reason: str,
                     node_id: str | None, stats: str = "{}") -> None:
    await sql(engine, "INSERT INTO camera_status (camera_id, status, reason, since, node_id, "
              "last_frame_at, stats) VALUES (:camera, :status, :reason, "
              "now() - interval '5 minutes', :node, now(), CAST(:stats AS jsonb)) "
              "ON CONFLICT (camera_id) DO UPDATE SET status = EXCLUDED.status, "
              "reason = EXCLUDED.reason",
              camera=camera_id, status=status, reason=reason, node=node_id, stats=stats)


async def status_of(api: httpx.AsyncClient, camera_id: str) -> dict[str, Any]:
    """The status from the detail, checked to be the same in the listing."""
    detail = await api.get(f"/api/cameras/{camera_id}")
    assert detail.status_code == 200, detail.text
    listed = {c["id"]: c["status"] for c in (await api.get("/api/cameras")).json()}
    found: dict[str, Any] = detail.json()["status"]
    assert listed[camera_id] == found
    return found


async def test_a_camera_without_a_status_row_reads_connecting_or_disabled(
    api: httpx.AsyncClient,
) -> None:
    on = await add_camera(api, "cam-on")
    assert on["status"]["status"] == "connecting"
    await add_camera(api, "cam-off", enabled=False)
    waiting = await status_of(api, "cam-on")
    assert waiting == {"status": "connecting", "reason": "waiting for an ingest node",
                       "since": on["created_at"], "node_id": None, "node_alive": None,
                       "last_frame_at": None, "stats": dict.fromkeys(STATS, 0)}
    off = await status_of(api, "cam-off")
    assert off["status"] == "disabled" and off["reason"] == "disabled through the API"


async def test_the_status_row_is_served_and_disabled_always_wins(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    await add_camera(api, "door")
    await add_node(engine, "node-a", alive=True)
    # A careless reason and an unknown counter carrying the url: neither may leak.
    await set_status(engine, "door", "live", "frames from rtsp://admin:pa55word@10.0.0.9/s",
                     "node-a", stats='{"fps": 4.5, "decoded": 120, "sampled": 60, '
                     '"dropped": 2, "reconnects": 1, "url": "rtsp://admin:pa55word@x/s"}')
    live = await status_of(api, "door")
    assert live["status"] == "live" and live["node_id"] == "node-a" and live["node_alive"]
    assert live["stats"] == STATS and live["last_frame_at"] is not None
    assert live["reason"] == "frames from rtsp://***@10.0.0.9/s"
    assert "pa55word" not in (await api.get("/api/cameras")).text

    await sql(engine, "UPDATE ingest_nodes SET expires_at = now() - interval '1 second'")
    stale = await status_of(api, "door")
    assert stale["status"] == "live" and stale["node_alive"] is False

    # The node never noticed: its row still says live. The registry's `enabled` wins.
    await sql(engine, "UPDATE cameras SET enabled = false, updated_at = now()")
    off = await status_of(api, "door")
    assert off["status"] == "disabled" and off["reason"] == "disabled through the API"
    assert off["node_id"] is None and off["stats"]["fps"] == 0 and off["since"] > live["since"]

    # Enabled again while the last row says disabled: waiting, not disabled.
    await sql(engine, "UPDATE camera_status SET status = 'disabled'")
    await sql(engine, "UPDATE cameras SET enabled = true")
    back = await status_of(api, "door")
    assert back["status"] == "connecting" and back["reason"] == "waiting for an ingest node"


async def test_events_are_newest_first_bounded_and_404_for_unknown(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    await add_camera(api, "door")
    await add_camera(api, "yard")
    changes = [("connecting", None, 40), ("live", "connecting", 30),
               ("stalled", "live", 20), ("live", "stalled", 20)]  # the last two: same instant
    async with engine.begin() as conn:  # one transaction: now() is one instant for all rows
        for status, previous, ago_s in changes:
            await conn.execute(text(
                "INSERT INTO camera_events (camera_id, status, previous, reason, at, node_id) "
                "VALUES ('door', :status, :previous, 'r', now() - make_interval(secs => :ago), "
                "'node-a')"), {"status": status, "previous": previous, "ago": ago_s})
    await sql(engine, "INSERT INTO camera_events (camera_id, status, at) "
              "VALUES ('yard', 'unreachable', now())")

    events = (await api.get("/api/cameras/door/events")).json()
    assert [(e["status"], e["previous"]) for e in events] == [
        ("live", "stalled"), ("stalled", "live"), ("live", "connecting"), ("connecting", None)]
    assert {e["camera_id"] for e in events} == {"door"}
    newest = (await api.get("/api/cameras/door/events?limit=2")).json()
    assert newest == events[:2]
    assert (await api.get("/api/cameras/door/events?limit=0")).status_code == 422
    assert (await api.get("/api/cameras/door/events?limit=100000")).status_code == 422
    # History outlives a deleted camera, but the API answers only for registered ones.
    await sql(engine, "INSERT INTO camera_events (camera_id, status, at) "
              "VALUES ('gone', 'live', now())")
    for unknown in ("gone", "nope"):
        missing = await api.get(f"/api/cameras/{unknown}/events")
        assert missing.status_code == 404 and unknown in missing.json()["detail"]


async def test_ingest_nodes_show_alive_capacity_and_current_leases(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    assert (await api.get("/api/ingest/nodes")).json() == []
    for camera_id in ("cam-1", "cam-2", "cam-3"):
        await add_camera(api, camera_id)
    await add_node(engine, "node-a", alive=True, capacity=8)
    await add_node(engine, "node-b", alive=False, capacity=4, draining=True)
    for camera_id, node_id, ttl in (("cam-2", "node-a", 30), ("cam-1", "node-a", 30),
                                    ("cam-3", "node-b", -1)):
        await sql(engine, "INSERT INTO camera_leases (camera_id, node_id, token, expires_at) "
                  "VALUES (:camera, :node, 1, now() + make_interval(secs => :ttl))",
                  camera=camera_id, node=node_id, ttl=ttl)
    nodes = {n["id"]: n for n in (await api.get("/api/ingest/nodes")).json()}
    assert set(nodes) == {"node-a", "node-b"}
    a, b = nodes["node-a"], nodes["node-b"]
    assert (a["alive"], a["capacity"], a["draining"]) == (True, 8, False)
    assert (a["cameras"], a["camera_ids"]) == (2, ["cam-1", "cam-2"])
    # node-b's lease on cam-3 has expired: it holds nothing any more.
    assert (b["alive"], b["capacity"], b["draining"]) == (False, 4, True)
    assert (b["cameras"], b["camera_ids"]) == (0, [])


async def test_gaps_of_time_show_with_null_seqs(api: httpx.AsyncClient,
                                                engine: AsyncEngine) -> None:
    await add_camera(api, "door")
    insert = ("INSERT INTO coverage_gaps (camera_id, stream_epoch, seq_from, seq_to, "
              "started_at, ended_at, reason, recorded_at) VALUES ('door', 1, {})")
    await sql(engine, insert.format("3, 4, NULL, NULL, 'shed', now()"))
    # Open since three hours: outside a 60-minute window by recorded_at, yet still going on.
    await sql(engine, insert.format("NULL, NULL, now() - interval '3 hours', NULL, "
                                    "'camera_down', now() - interval '3 hours'"))
    await sql(engine, insert.format("NULL, NULL, now() - interval '10 minutes', "
                                    "now() - interval '5 minutes', 'dropped', "
                                    "now() - interval '10 minutes'"))
    await sql(engine, insert.format("NULL, NULL, now() - interval '5 hours', "
                                    "now() - interval '4 hours', 'camera_down', "
                                    "now() - interval '5 hours'"))
    response = await api.get("/api/cameras/door/counts?minutes=60")
    assert response.status_code == 200, response.text
    gaps = response.json()["gaps"]
    assert [(g["reason"], g["seq_from"], g["ended_at"] is None) for g in gaps] == [
        ("shed", 3, True), ("camera_down", None, True), ("dropped", None, False)]
    assert gaps[1]["started_at"] is not None


MEDIA_OK = ["http://cam.local/video.mjpg", "https://user:pw@cam.local/mjpg",
            "file://{media}/clip.mp4", "file://localhost{media}/sub/clip.mp4"]


@pytest.mark.parametrize("url", MEDIA_OK)
async def test_mjpeg_and_media_dir_urls_are_accepted(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path, url: str,
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    # cam.local, as a camera's name on the site's network would resolve.
    dns = FakeDns({"cam.local": ["10.0.0.7"]})
    async with registry(isolated, engine, media_dir=media, resolver=dns) as api:
        created = await add_camera(api, "cam", url=url.format(media=media))
    assert created["url"] == url.format(media=media).replace(":pw@", ":***@")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "under the media directory"),
        ("file://{media}/../secret.mp4", "under the media directory"),
        ("file://{media}/%2e%2e/secret.mp4", "under the media directory"),
        ("file://{media}/link/clip.mp4", "under the media directory"),  # symlink out
        ("file://{media}", "under the media directory"),
        ("file://otherhost/clip.mp4", "must not name a host"),
        ("file:clip.mp4", "absolute path"),
        ("file://{media}/clip.mp4?loop=1", "query"),
        ("ftp://admin:s3cret@cam/x", "scheme must be one of"),
    ],
)
async def test_file_urls_outside_the_media_dir_are_refused(
    isolated: Isolated, engine: AsyncEngine, tmp_path: Path, url: str, message: str,
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (tmp_path / "outside").mkdir()
    (media / "link").symlink_to(tmp_path / "outside")
    async with registry(isolated, engine, media_dir=media) as api:
        response = await api.post("/api/cameras", json={
            "id": "cam", "name": "Cam", "url": url.format(media=media)})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any("url" in e["loc"] and message in e["msg"] for e in errors), errors
    assert "s3cret" not in response.text


async def test_file_urls_are_refused_without_a_media_dir(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/cameras", json={
        "id": "cam", "name": "Cam", "url": "file:///srv/media/clip.mp4"})
    assert response.status_code == 422
    assert "no MEDIA_DIR configured" in response.json()["detail"][0]["msg"]


async def test_a_refused_body_never_echoes_the_password(api: httpx.AsyncClient) -> None:
    # No name: pydantic reports the whole body as the input, url and password included.
    response = await api.post("/api/cameras", json={
        "id": "cam", "url": "rtsp://admin:s3cret@10.0.0.9/s"})
    assert response.status_code == 422 and "name" in response.text
    assert "s3cret" not in response.text and "rtsp://***@10.0.0.9/s" in response.text


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
async def test_dashboard_shows_the_status_badge_and_the_nodes(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    from playwright.async_api import async_playwright

    async with registry_in_process(isolated, engine) as base:
        key = await new_key(engine, "viewer")
        async with httpx.AsyncClient(base_url=base, headers=bearer(await new_key(engine))) as api:
            await add_camera(api, "door")
        await add_node(engine, "node-a", alive=True, capacity=8)
        await set_status(engine, "door", "live", "frames arriving", "node-a")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/#key={key}")
                row = page.locator('#cameras tr[data-camera="door"]')
                await row.locator('.camera-status[data-status="live"]').wait_for(timeout=10_000)
                assert await row.locator("td.since").inner_text() == "5 min"
                assert await row.locator("td.node").inner_text() == "node-a"
                node = page.locator('#ingest-nodes tr[data-node="node-a"]')
                await node.filter(has_text="0 / 8").wait_for(timeout=10_000)
                # The badge follows the API by polling, without a reload.
                await set_status(engine, "door", "stalled", "no frame for 5 s", "node-a")
                await row.locator('.camera-status[data-status="stalled"]').wait_for(
                    timeout=10_000)
            finally:
                await browser.close()
