"""Cameras added, changed, disabled and deleted through the registry API take effect on a
running ingest node without a restart (issue 5), and PATCH validates like creation does.

The live test runs the registry app, an in-process ingest node and an in-process RTSP
simulator with two mounts of different picture sizes, against the real RabbitMQ and PostgreSQL,
and reads what the node does from the batches on frames.ingress and the simulator's sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from contracts.batch import decode_batch
from contracts.messages import BatchHeaders
from contracts.tables import camera_events, camera_leases, camera_status, cameras, counting_lines
from ingest.service import Ingest
from ingest.settings import IngestSettings
from simulator.mounts import MountSpec
from tests.camera_host import camera_host, camera_settings
from tests.conftest import Isolated
from tests.integration.recording_simulator import RecordingSimulator, recording_simulator
from tests.integration.registry_client import registry
from tests.support import eventually

NODE = "hot"
POLL_S = 0.3
SETTLE_S = 1.5  # five planner rounds: time enough for a batch that should not come
SIZES = {"a": (160, 100), "b": (256, 144)}  # the mounts told apart by their frames' width
SECRET = "pa55word"
T = TypeVar("T")


async def add_camera(api: httpx.AsyncClient, camera_id: str = "door", **fields: Any
                     ) -> dict[str, Any]:
    body = {"id": camera_id, "name": camera_id.title(),
            "url": f"rtsp://admin:{SECRET}@10.0.0.9/stream", **fields}
    created = await api.post("/api/cameras", json=body)
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def patch(api: httpx.AsyncClient, camera_id: str, **fields: Any) -> dict[str, Any]:
    response = await api.patch(f"/api/cameras/{camera_id}", json=fields)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def stored_url(engine: AsyncEngine, camera_id: str) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(
            select(cameras.c.url).where(cameras.c.id == camera_id))).scalar_one())


# --- PATCH and DELETE through the API alone ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"id": "other"}, "id", "Extra inputs are not permitted"),
        ({"lines": []}, "lines", "Extra inputs are not permitted"),
        ({"url": "ftp://cam/x"}, "url", "scheme must be one of"),
        ({"url": "rtsp://"}, "url", "no host"),
        ({"url": "rtsp://cam:99999/x"}, "url", "not a valid URL"),
        ({"url": "file:///srv/media/clip.mp4"}, "url", "no MEDIA_DIR configured"),
        # The mask with another host: the stored password must not follow the camera there.
        ({"url": "rtsp://admin:***@10.6.6.6/stream"}, "url", "masked password"),
        ({"name": None}, "name", "cannot be null"),
        ({"enabled": None}, "enabled", "cannot be null"),
        ({"target_fps": None}, "target_fps", "cannot be null"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"region": "EU West"}, "region", "lowercase"),
        ({"capability": "../gpu"}, "capability", "lowercase"),
        ({"model": "../../etc/passwd"}, "model", "lowercase"),
        ({"priority": 9}, "priority", "Input should be"),
        ({"target_fps": 0}, "target_fps", "greater than 0"),
        ({"batch_frames": 101}, "batch_frames", "less than or equal to 100"),
        ({"batch_ms": 10}, "batch_ms", "greater than or equal to 50"),
        ({"deadline_s": 0}, "deadline_s", "greater than 0"),
        ({"min_confidence": 1.5}, "min_confidence", "less than 1"),
        ({"object_classes": [""]}, "object_classes", "at least 1 character"),
    ],
)
async def test_patch_refuses_what_creation_refuses_and_changes_nothing(
    api: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], field: str, message: str,
) -> None:
    before = await add_camera(api)
    # A valid name beside the refused field: nothing of a refused request is applied.
    response = await api.patch("/api/cameras/door", json={"name": "Changed", **body})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in [str(p) for p in e["loc"]] and message in e["msg"] for e in errors), errors
    assert SECRET not in response.text
    after = (await api.get("/api/cameras/door")).json()
    assert after == before
    assert await stored_url(engine, "door") == f"rtsp://admin:{SECRET}@10.0.0.9/stream"


async def test_patch_changes_the_fields_sent_and_a_masked_url_keeps_the_credentials(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    created = await add_camera(api, object_classes=["person"], min_confidence=0.4, model="yolo")
    assert created["url"] == "rtsp://admin:***@10.0.0.9/stream"

    # The dashboard's round trip: every field as GET showed it, the url masked, one edited.
    shown = {k: v for k, v in created.items() if k in {
        "name", "url", "region", "priority", "target_fps", "batch_frames", "batch_ms",
        "deadline_s", "capability", "object_classes", "min_confidence", "model", "enabled"}}
    edited = await patch(api, "door", **{**shown, "name": "Front door"})
    assert edited["name"] == "Front door" and edited["url"] == created["url"]
    assert ts(edited["updated_at"]) > ts(created["updated_at"])
    assert await stored_url(engine, "door") == f"rtsp://admin:{SECRET}@10.0.0.9/stream"
    assert edited == (await api.get("/api/cameras/door")).json()  # the detail, as GET has it

    # Sent as it is: no change, so updated_at (a disabled camera's `since`) stays.
    same = await patch(api, "door", name="Front door", url=created["url"], priority=1)
    assert same["updated_at"] == edited["updated_at"]

    # Nullable fields go back to their defaults; the others keep their values.
    cleared = await patch(api, "door", object_classes=None, min_confidence=None, model=None,
                          priority=3)
    assert (cleared["object_classes"], cleared["min_confidence"], cleared["model"]) == (
        None, None, None)
    assert (cleared["priority"], cleared["name"], cleared["target_fps"]) == (3, "Front door", 5)

    # A new password is stored as sent, and shown masked.
    moved = await patch(api, "door", url="rtsp://viewer:n3w-s3cret@10.0.0.10:8554/main")
    assert moved["url"] == "rtsp://viewer:***@10.0.0.10:8554/main"
    assert await stored_url(engine, "door") == "rtsp://viewer:n3w-s3cret@10.0.0.10:8554/main"
    assert "n3w-s3cret" not in (await api.get("/api/cameras")).text


async def test_a_camera_disabled_by_patch_reads_disabled_since_then(
    api: httpx.AsyncClient,
) -> None:
    created = await add_camera(api)
    assert created["status"]["status"] == "connecting"
    off = await patch(api, "door", enabled=False)
    assert off["enabled"] is False
    assert off["status"]["status"] == "disabled"
    assert off["status"]["reason"] == "disabled through the API"
    assert off["status"]["since"] == off["updated_at"]
    assert ts(off["updated_at"]) > ts(created["created_at"])
    # Enabled again: waiting since then, not since the camera was created.
    on = await patch(api, "door", enabled=True)
    assert on["status"]["status"] == "connecting" and on["status"]["since"] == on["updated_at"]
    assert ts(on["updated_at"]) > ts(off["updated_at"])


async def test_delete_removes_the_camera_and_what_hangs_on_it(
    api: httpx.AsyncClient, engine: AsyncEngine,
) -> None:
    await add_camera(api, lines=[{"name": "entry", "a": {"x": 0.1, "y": 0.5},
                                  "b": {"x": 0.9, "y": 0.5}}])
    await add_camera(api, "yard")
    async with engine.begin() as conn:
        await conn.execute(insert(camera_status).values(
            camera_id="door", status="live", since=func.now()))
        await conn.execute(insert(camera_events).values(
            camera_id="door", status="live", at=func.now()))
    deleted = await api.delete("/api/cameras/door")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await api.get("/api/cameras/door")).status_code == 404
    assert [c["id"] for c in (await api.get("/api/cameras")).json()] == ["yard"]
    async with engine.connect() as conn:
        # The history goes too: the id may be registered again, by another site.
        for table in (counting_lines, camera_status, camera_events):
            left = await conn.execute(select(table).where(table.c.camera_id == "door"))
            assert left.all() == [], table.name


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_an_unknown_camera_is_404(api: httpx.AsyncClient, method: str) -> None:
    await add_camera(api, "yard")
    response = await api.request(method, "/api/cameras/nope", json={"name": "x"})
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    if method == "DELETE":  # deleted once, gone: the second delete is a 404 too
        assert (await api.delete("/api/cameras/yard")).status_code == 204
        assert (await api.delete("/api/cameras/yard")).status_code == 404


# --- the live test: a running node follows the API ---------------------------------------------


@dataclass(frozen=True)
class Seen:
    at: float  # monotonic, on arrival here
    headers: BatchHeaders
    width: int


@contextlib.asynccontextmanager
async def two_mounts() -> AsyncIterator[tuple[RecordingSimulator, int]]:
    specs = [MountSpec(name=name, seed=i, fps=5, width=w, height=h, loop=True)
             for i, (name, (w, h)) in enumerate(SIZES.items())]
    # On this machine's own address: camera urls on loopback are refused.
    async with recording_simulator(specs, camera_host()) as served:
        yield served


async def now_(value: T) -> T:
    """A value read now, as an awaitable for `eventually`."""
    return value


@pytest.mark.slow
async def test_a_running_node_follows_cameras_added_changed_disabled_and_deleted(
    isolated: Isolated, engine: AsyncEngine, channel: AbstractChannel,
) -> None:
    seen: list[Seen] = []

    async def on_batch(message: AbstractIncomingMessage) -> None:
        headers = BatchHeaders.from_amqp(message.headers)
        seen.append(Seen(time.monotonic(), headers, decode_batch(message.body)[0].width))

    await (await channel.get_queue(broker.FRAMES_INGRESS)).consume(on_batch, no_ack=True)

    def after(t: float) -> list[Seen]:
        return [s for s in seen if s.at >= t and s.headers.camera_id == "door"]

    async def batches_after(t: float, newer_than: int = -1) -> list[Seen]:
        return [s for s in after(t) if s.headers.stream_epoch > newer_than]

    async def quiet_after_stop() -> None:
        """Nothing more arrives once the node dropped the camera (pipeline stopped first)."""
        await eventually(lambda: now_(node.cameras), lambda held: "door" not in held,
                         timeout_s=10)
        await asyncio.sleep(0.3)  # a batch confirmed before the stop may still be on its way
        stopped = time.monotonic()
        await asyncio.sleep(SETTLE_S)
        assert after(stopped) == []
        assert sim.playing() == set()

    settings = IngestSettings(
        rabbitmq_url=isolated.rabbitmq_url, database_url=isolated.database_url, node_id=NODE,
        camera_poll_s=POLL_S, lease_ttl_s=2.0, reconnect_initial_s=0.2, status_refresh_s=0.5)
    node = Ingest(settings)
    stop = asyncio.Event()
    host = camera_host()
    async with (two_mounts() as (sim, port),
                registry(isolated, engine, **camera_settings(port)) as api):
        running = asyncio.create_task(node.run(stop))
        try:
            await eventually(lambda: now_(node.polling), bool, timeout_s=15)
            (started,) = (await api.get("/api/ingest/nodes")).json()

            # Added: the node takes it on its next round and publishes its batches.
            t = time.monotonic()
            await add_camera(api, url=f"rtsp://{host}:{port}/a", target_fps=5,
                             batch_frames=2, batch_ms=1000)
            first = (await eventually(lambda: batches_after(t), bool, timeout_s=20))[0]
            assert first.width == SIZES["a"][0] and first.headers.frame_count == 2
            token = node.health()["leases"]["door"]

            # Stream settings changed: the same lease, a new pipeline, a new stream epoch.
            t = time.monotonic()
            await patch(api, "door", target_fps=4, batch_frames=3, batch_ms=2000)
            fresh = await eventually(lambda: batches_after(t, first.headers.stream_epoch),
                                     bool, timeout_s=15)
            assert fresh[0].headers.frame_count == 3 and fresh[0].width == SIZES["a"][0]
            assert node.health()["leases"]["door"] == token
            epoch = fresh[0].headers.stream_epoch

            # Another mount, with credentials: the simulator plays `b` now, and only `b`.
            t = time.monotonic()
            url_b = f"rtsp://viewer:{SECRET}@{host}:{port}/b"
            moved = await patch(api, "door", url=url_b)
            assert moved["url"] == f"rtsp://viewer:***@{host}:{port}/b"
            fresh = await eventually(lambda: batches_after(t, epoch), bool, timeout_s=15)
            assert {s.width for s in fresh} == {SIZES["b"][0]}
            await eventually(lambda: now_(sim.playing()), lambda p: p == {"b"}, timeout_s=10)
            epoch = fresh[0].headers.stream_epoch

            # The dashboard's masked round trip changes nothing the node sees: no restart.
            t = time.monotonic()
            await patch(api, "door", name="Front door", url=moved["url"])
            await asyncio.sleep(SETTLE_S)
            assert node.cameras["door"].spec.url == url_b
            assert {s.headers.stream_epoch for s in after(t)} == {epoch}
            assert after(t), "batches keep coming"

            # Disabled: stopped, its lease released, no more batches; the API says disabled.
            off = await patch(api, "door", enabled=False)
            assert off["status"]["status"] == "disabled"
            await quiet_after_stop()
            async with engine.connect() as conn:
                lease = (await conn.execute(select(
                    camera_leases.c.token, camera_leases.c.expires_at <= func.now()).where(
                    camera_leases.c.camera_id == "door"))).one()
            assert tuple(lease) == (token, True), "released, not left to expire"
            status = (await api.get("/api/cameras/door")).json()["status"]
            assert (status["status"], status["reason"]) == (
                "disabled", "disabled through the API")
            # Since the change through the API, or the node's stop a moment later (it records
            # `disabled` so a re-enabled camera does not show its old `live`).
            since, changed = (datetime.fromisoformat(status["since"]),
                              datetime.fromisoformat(off["updated_at"]))
            assert changed <= since < changed + timedelta(seconds=5)

            # Enabled again: taken under a new lease, new epoch, and live again.
            t = time.monotonic()
            on = await patch(api, "door", enabled=True)
            fresh = await eventually(lambda: batches_after(t, epoch), bool, timeout_s=20)
            assert fresh[0].width == SIZES["b"][0]
            assert node.health()["leases"]["door"] > token
            # Live as judged after it was enabled, not the row left from before disabling.
            live = await eventually(
                lambda: api.get("/api/cameras/door"),
                lambda r: r.json()["status"]["status"] == "live"
                and ts(r.json()["status"]["since"]) > ts(on["updated_at"]), timeout_s=15)
            assert live.json()["status"]["node_id"] == NODE

            # Deleted: stopped and gone.
            assert (await api.delete("/api/cameras/door")).status_code == 204
            await quiet_after_stop()
            assert (await api.get("/api/cameras/door")).status_code == 404

            # The same node, never restarted, all along.
            assert not running.done()
            (ended,) = (await api.get("/api/ingest/nodes")).json()
            assert (ended["id"], ended["boot_id"], ended["started_at"], ended["alive"]) == (
                NODE, started["boot_id"], started["started_at"], True)
            assert ended["camera_ids"] == []
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
