"""API keys, roles, sites and limits against the real registry app and PostgreSQL: no key or a
bad one is 401, a viewer cannot write, a key of one site cannot tell another site's cameras
from missing ones, keys are rate limited and oversized bodies are refused."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import camera_leases, cameras, ingest_nodes
from tests.conftest import Isolated
from tests.integration.registry_client import bearer, new_key, registry

CAMERA = {"id": "door", "name": "door", "url": "rtsp://u:secret@10.0.0.9/stream"}


@pytest.fixture
async def admin(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with registry(isolated, engine) as client:
        yield client


KeyClient = Callable[[str, str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def as_key(isolated: Isolated, engine: AsyncEngine) -> AsyncIterator[KeyClient]:
    """A client authenticated with a new key of (role, site)."""
    async with contextlib.AsyncExitStack() as stack:
        async def client(role: str, site: str) -> httpx.AsyncClient:
            key = await new_key(engine, role, site)
            return await stack.enter_async_context(registry(isolated, engine, key=key))

        yield client


async def test_no_key_a_malformed_key_a_wrong_secret_and_a_revoked_key_are_401(
    isolated: Isolated, engine: AsyncEngine, admin: httpx.AsyncClient,
) -> None:
    token = await new_key(engine, "viewer", "shop-a")
    key_id = token.split("_")[1]
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    async with registry(isolated, engine, key="", api_key_cache_s=0) as anon:
        for headers in [{}, bearer("nonsense"), bearer(wrong), {"X-API-Key": wrong}]:
            answer = await anon.get("/api/cameras", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
        assert (await anon.get("/api/cameras", headers={"X-API-Key": token})).status_code == 200
        revoked = await admin.delete(f"/api/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert (await anon.get("/api/cameras", headers=bearer(token))).status_code == 401
        # Health, metrics and the API description need no key.
        for path in ("/health", "/metrics", "/openapi.json"):
            assert (await anon.get(path)).status_code == 200, path


async def test_a_viewer_reads_but_cannot_write(as_key: KeyClient,
                                               admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/api/cameras", json=CAMERA)).status_code == 201
    viewer = await as_key("viewer", "default")
    assert (await viewer.get("/api/cameras/door")).status_code == 200
    writes = [viewer.post("/api/cameras", json={**CAMERA, "id": "door-2"}),
              viewer.patch("/api/cameras/door", json={"name": "x"}),
              viewer.delete("/api/cameras/door"),
              viewer.put("/api/cameras/door/lines", json={"lines": []}),
              viewer.post("/api/keys", json={"name": "x", "role": "viewer"})]
    for write in writes:
        answer = await write
        assert answer.status_code == 403, answer.text
    assert (await admin.get("/api/cameras/door")).json()["name"] == "door"


async def test_another_sites_camera_is_indistinguishable_from_a_missing_one(
    as_key: KeyClient, admin: httpx.AsyncClient,
) -> None:
    assert (await admin.post("/api/cameras", json={**CAMERA, "site": "shop-a"})).status_code \
        == 201
    own = await as_key("operator", "shop-a")
    other = await as_key("operator", "shop-b")
    assert [c["id"] for c in (await own.get("/api/cameras")).json()] == ["door"]
    assert (await other.get("/api/cameras")).json() == []
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/cameras/{id}", None), ("GET", "/api/cameras/{id}/counts", None),
        ("GET", "/api/cameras/{id}/events", None),
        ("PATCH", "/api/cameras/{id}", {"name": "taken"}),
        ("DELETE", "/api/cameras/{id}", None)]
    for method, path, body in requests:
        theirs = await other.request(method, path.format(id="door"), json=body)
        missing = await other.request(method, path.format(id="ghost"), json=body)
        assert theirs.status_code == missing.status_code == 404, (method, path)
        assert theirs.json()["detail"].replace("door", "ghost") == missing.json()["detail"]
    # Registering into another site is refused; so is a key for another site.
    answer = await other.post("/api/cameras", json={**CAMERA, "id": "x", "site": "shop-a"})
    assert answer.status_code == 403
    site_admin = await as_key("admin", "shop-b")
    if True:
        for body in ({"name": "x", "role": "admin", "site": "*"},
                     {"name": "x", "role": "viewer", "site": "shop-a"}):
            assert (await site_admin.post("/api/keys", json=body)).status_code == 403
        created = await site_admin.post("/api/keys", json={"name": "v", "role": "viewer"})
        assert created.status_code == 201 and created.json()["site"] == "shop-b"
        listed = (await site_admin.get("/api/keys")).json()
        assert {k["site"] for k in listed} == {"shop-b"} and "key" not in listed[0]
    camera = (await own.get("/api/cameras/door")).json()
    assert camera["name"] == "door" and camera["site"] == "shop-a"


async def test_a_key_over_its_rate_gets_429_with_retry_after(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    slow = await new_key(engine, "viewer", "default", rate_per_s=0.5, burst=3)
    async with registry(isolated, engine, key=slow) as client:
        codes = [(await client.get("/api/cameras")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await client.get("/api/cameras")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # Another key is not affected.
        other = await client.get("/api/cameras", headers=bearer(await new_key(engine)))
        assert other.status_code == 200


async def test_oversized_bodies_are_refused_before_they_are_read(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    async with registry(isolated, engine, max_body_bytes=4096) as client:
        big = {**CAMERA, "name": "x" * 5000}
        answer = await client.post("/api/cameras", json=big)
        assert answer.status_code == 413 and "4096" in answer.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(10):
                yield b" " * 1000

        streamed = await client.post("/api/cameras", content=chunks(),
                                     headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert (await client.get("/api/cameras/door")).status_code == 404

        async def small() -> AsyncIterator[bytes]:  # under the limit it is read as usual
            yield json.dumps(CAMERA).encode()

        accepted = await client.post("/api/cameras", content=small(),
                                     headers={"Content-Type": "application/json"})
        assert accepted.status_code == 201, accepted.text


async def test_ingest_nodes_list_only_the_keys_own_cameras(
    as_key: KeyClient, admin: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    for camera_id, site in (("a-door", "shop-a"), ("b-door", "shop-b")):
        body = {**CAMERA, "id": camera_id, "site": site}
        assert (await admin.post("/api/cameras", json=body)).status_code == 201
    async with engine.begin() as conn:
        await conn.execute(ingest_nodes.insert().values(
            id="node-1", boot_id="b", capacity=8,
            expires_at=datetime.now(UTC) + timedelta(minutes=5)))
        await conn.execute(camera_leases.insert().values([
            {"camera_id": c, "node_id": "node-1", "token": 1,
             "expires_at": datetime.now(UTC) + timedelta(minutes=5)}
            for c in ("a-door", "b-door")]))
    shop_a = await as_key("viewer", "shop-a")
    (node,) = (await shop_a.get("/api/ingest/nodes")).json()
    assert node["camera_ids"] == ["a-door"] and node["cameras"] == 2
    (everything,) = (await admin.get("/api/ingest/nodes")).json()
    assert everything["camera_ids"] == ["a-door", "b-door"]


async def test_a_token_in_the_user_name_is_masked_and_round_trips(
    admin: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    body = {**CAMERA, "url": "rtsp://s3cr3tT0ken@10.0.0.9/stream"}
    created = await admin.post("/api/cameras", json=body)
    assert created.status_code == 201 and created.json()["url"] == "rtsp://***@10.0.0.9/stream"
    same = await admin.patch("/api/cameras/door", json={"url": created.json()["url"],
                                                        "name": "renamed"})
    assert same.status_code == 200 and "s3cr3tT0ken" not in same.text
    moved = await admin.patch("/api/cameras/door", json={"url": "rtsp://***@10.0.0.8/stream"})
    assert moved.status_code == 422 and "masked" in moved.text
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(cameras.c.url))).scalar_one()
    assert stored == body["url"]
