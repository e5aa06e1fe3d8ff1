"""Counting lines and zones replaced through the API keep their history in versions, and the
latest frame ingest stores is served as a JPEG for drawing them."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import counting_lines
from tests.conftest import Isolated
from tests.integration.pipeline_harness import StartPipeline, free_port, simulator
from tests.integration.registry_client import new_key, registry
from tests.support import eventually

LEFT = {"name": "left", "a": {"x": 0.25, "y": 0.0}, "b": {"x": 0.25, "y": 1.0}}
RIGHT = {"name": "right", "a": {"x": 0.75, "y": 0.0}, "b": {"x": 0.75, "y": 1.0}}
SQUARE = [{"x": 0.1, "y": 0.1}, {"x": 0.4, "y": 0.1}, {"x": 0.4, "y": 0.4}, {"x": 0.1, "y": 0.4}]


async def add_camera(api: httpx.AsyncClient, camera_id: str = "door", **fields: Any,
                     ) -> dict[str, Any]:
    created = await api.post("/api/cameras", json={
        "id": camera_id, "name": camera_id, "url": "rtsp://10.0.0.9/stream", **fields})
    assert created.status_code == 201, created.text
    return dict(created.json())


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


async def test_a_changed_line_gets_a_new_version_and_the_old_one_is_kept(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    first = by_name((await add_camera(api, lines=[LEFT, RIGHT]))["lines"])
    moved = {**RIGHT, "a": {"x": 0.8, "y": 0.0}}
    answer = await api.put("/api/cameras/door/lines", json={"lines": [LEFT, moved]})
    assert answer.status_code == 200, answer.text
    now = by_name(answer.json()["lines"])
    assert now["left"]["id"] == first["left"]["id"] and now["left"]["version"] == 1
    assert now["right"]["id"] != first["right"]["id"] and now["right"]["version"] == 2
    assert now["right"]["a"] == {"x": 0.8, "y": 0.0}

    # Removing a line retires it; naming it again later continues its version count.
    assert (await api.put("/api/cameras/door/lines", json={"lines": [LEFT]})).status_code == 200
    again = await api.put("/api/cameras/door/lines", json={"lines": [LEFT, RIGHT]})
    assert by_name(again.json()["lines"])["right"]["version"] == 3
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(counting_lines.c.name, counting_lines.c.version,
                                             counting_lines.c.active)
                                   .order_by(counting_lines.c.id))).all()
    assert [tuple(r) for r in rows] == [("left", 1, True), ("right", 1, False),
                                        ("right", 2, False), ("right", 3, True)]


async def test_zones_are_versioned_the_same_way(api: httpx.AsyncClient) -> None:
    await add_camera(api, zones=[{"name": "queue", "points": SQUARE}])
    smaller = [{"x": 0.1, "y": 0.1}, {"x": 0.3, "y": 0.1}, {"x": 0.3, "y": 0.3}]
    answer = await api.put("/api/cameras/door/zones",
                           json={"zones": [{"name": "queue", "points": smaller}]})
    assert answer.status_code == 200, answer.text
    (zone,) = answer.json()["zones"]
    assert zone["version"] == 2 and len(zone["points"]) == 3


async def test_bad_geometry_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    await add_camera(api)
    cases = [
        ({"lines": [{**LEFT, "b": LEFT["a"]}]}, "lines"),
        ({"lines": [LEFT, LEFT]}, "lines"),
        ({"lines": [{**LEFT, "a": {"x": 1.5, "y": 0}}]}, "x"),
        ({"lines": [LEFT], "extra": 1}, "extra"),
    ]
    for body, field in cases:
        answer = await api.put("/api/cameras/door/lines", json=body)
        assert answer.status_code == 422, body
        assert any(field in map(str, error["loc"]) for error in answer.json()["detail"]), \
            answer.text
    flat = [{"x": 0.1, "y": 0.1}, {"x": 0.2, "y": 0.2}, {"x": 0.3, "y": 0.3}]
    answer = await api.put("/api/cameras/door/zones",
                           json={"zones": [{"name": "flat", "points": flat}]})
    assert answer.status_code == 422 and "zones" in answer.text


async def test_a_viewer_cannot_change_lines_and_another_site_gets_404(
    isolated: Isolated, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    await add_camera(api, site="shop-a", lines=[LEFT])
    viewer = await new_key(engine, "viewer", "shop-a")
    other = await new_key(engine, "operator", "shop-b")
    async with registry(isolated, engine, key=viewer) as as_viewer:
        answer = await as_viewer.put("/api/cameras/door/lines", json={"lines": []})
        assert answer.status_code == 403
    async with registry(isolated, engine, key=other) as as_other:
        cases: list[tuple[str, str, dict[str, Any] | None]] = [
            ("PUT", "/api/cameras/door/lines", {"lines": []}),
            ("PUT", "/api/cameras/door/zones", {"zones": []}),
            ("GET", "/api/cameras/door/snapshot", None)]
        for method, path, body in cases:
            answer = await as_other.request(method, path, json=body)
            missing = await as_other.request(method, path.replace("door", "nope"), json=body)
            assert answer.status_code == missing.status_code == 404
            assert answer.json()["detail"].replace("door", "nope") == missing.json()["detail"]
    assert len((await api.get("/api/cameras/door")).json()["lines"]) == 1


async def test_ingest_stores_the_latest_frame_and_the_api_serves_it(
    api: httpx.AsyncClient, camera_pipeline: StartPipeline,
) -> None:
    port = free_port()
    async with simulator(port, "cam:synthetic:seed=3,crossings=0,loop=true"):
        missing = await api.get("/api/cameras/cam/snapshot")
        assert missing.status_code == 404  # no such camera yet
        async with camera_pipeline(f"rtsp://127.0.0.1:{port}/cam", snapshot_s=0.5) as running:
            await running.until("live", lambda: running.pipeline.status == "live")
            answer = await eventually(lambda: api.get("/api/cameras/cam/snapshot"),
                                      lambda r: r.status_code == 200)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.content[:2] == b"\xff\xd8" and answer.content[-2:] == b"\xff\xd9"
    width, height = map(int, answer.headers["x-frame-size"].split("x"))
    assert width > 0 and height > 0
