"""The registry API against a real PostgreSQL: validation errors name the problem, secrets
are masked, unknown fields are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Isolated
from tests.integration.registry_client import registry

GOOD: dict[str, Any] = {
    "id": "door-1",
    "name": "Front door",
    "url": "rtsp://admin:pa55word@10.1.2.3:554/stream1",
    "region": "eu-west",
    "priority": 2,
    "target_fps": 5,
    "object_classes": ["person", "bicycle"],
    "min_confidence": 0.4,
    "lines": [{"name": "entry", "a": {"x": 0.1, "y": 0.5}, "b": {"x": 0.9, "y": 0.5}}],
    "zones": [{"name": "queue", "points": [{"x": 0.1, "y": 0.1}, {"x": 0.4, "y": 0.1},
                                            {"x": 0.4, "y": 0.4}]}],
}


@pytest.fixture
async def api(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with registry(isolated, engine) as client:
        yield client


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


async def test_create_read_and_list_mask_the_password(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/cameras", json=GOOD)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["url"] == "rtsp://admin:***@10.1.2.3:554/stream1"
    assert body["lines"][0]["name"] == "entry" and body["lines"][0]["version"] == 1
    assert body["zones"][0]["name"] == "queue" and len(body["zones"][0]["points"]) == 3
    assert body["object_classes"] == ["person", "bicycle"] and body["min_confidence"] == 0.4
    for response in (await api.get("/api/cameras/door-1"), await api.get("/api/cameras")):
        assert response.status_code == 200
        assert "pa55word" not in response.text
    again = await api.post("/api/cameras", json=GOOD)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (with_(url="ftp://cam/x"), "url", "scheme must be one of"),
        (with_(url="rtsp://"), "url", "no host"),
        (with_(url="rtsp://cam:99999/x"), "url", "not a valid URL"),
        (with_(lines=[{"name": "l", "a": {"x": 1.5, "y": 0.5}, "b": {"x": 0.2, "y": 0.5}}]),
         "x", "less than or equal to 1"),
        (with_(lines=[{"name": "l", "a": {"x": 0.5, "y": 0.5}, "b": {"x": 0.5, "y": 0.5}}]),
         "lines", "must differ"),
        (with_(colour="red"), "colour", "Extra inputs are not permitted"),
        (with_(zones=[{"name": "z", "points": [{"x": 0.1, "y": 0.1}, {"x": 0.2, "y": 0.2},
                                               {"x": 0.3, "y": 0.3}]}]), "zones", "no area"),
        (with_(zones=[{"name": "z", "points": [{"x": 0.1, "y": 0.1}, {"x": 0.2, "y": 0.2}]}]),
         "points", "at least 3"),
        (with_(id="Front Door"), "id", "lowercase"),
        (with_(priority=9), "priority", "Input should be"),
        (with_(target_fps=0), "target_fps", "greater than 0"),
        (with_(min_confidence=1.5), "min_confidence", "less than 1"),
        (with_(model="../../etc/passwd"), "model", "lowercase"),
    ],
)
async def test_invalid_cameras_get_a_422_naming_the_problem(
    api: httpx.AsyncClient, payload: dict[str, Any], field: str, message: str
) -> None:
    response = await api.post("/api/cameras", json=payload)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in [str(p) for p in e["loc"]] and message in e["msg"] for e in errors), errors


async def test_unknown_camera_is_404_and_page_size_is_bounded(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/cameras/nope")).status_code == 404
    assert (await api.get("/api/cameras/nope/counts")).status_code == 404
    assert (await api.get("/api/cameras?limit=100000")).status_code == 422


async def test_counts_of_a_new_camera_are_empty_not_missing(api: httpx.AsyncClient) -> None:
    await api.post("/api/cameras", json=GOOD)
    counts = await api.get("/api/cameras/door-1/counts")
    assert counts.status_code == 200
    assert counts.json() == {"camera_id": "door-1", "totals": {}, "occupancy": {},
                             "buckets": [], "zones": [], "gaps": []}
