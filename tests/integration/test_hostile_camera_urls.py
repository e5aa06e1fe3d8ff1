"""Hostile camera URLs through the real API, and DNS rebinding, with a canary listening on
loopback: nothing is ever registered that would make ingest connect there, and a running
ingest node connects to the address pinned at registration, never re-resolving the name.

The canary listens on 127.0.0.1 and ::1 on the simulator's own port, which the registry is
told is a camera port: only the address checks stand between a URL and the canary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.secrets import SecretMasker
from contracts.tables import cameras
from ingest.service import Ingest
from ingest.settings import IngestSettings
from registry.camera_urls import Resolver, system_resolver
from simulator.mounts import MountSpec
from tests.camera_host import camera_host, camera_settings
from tests.conftest import Isolated
from tests.fake_dns import FakeDns
from tests.integration.recording_simulator import RecordingSimulator, recording_simulator
from tests.integration.registry_client import registry
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)

SECRET = "Can@ry:S3cret/%é"  # every character that needs an encoding somewhere
QUOTED = "Can%40ry%3AS3cret%2F%25%C3%A9"


@dataclass
class Canary:
    """TCP listeners on loopback that record every connection made to them."""

    port: int
    connections: list[str] = field(default_factory=list)

    async def _record(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(str(writer.get_extra_info("peername")))
        writer.close()


@contextlib.asynccontextmanager
async def canary_on(port: int) -> AsyncIterator[Canary]:
    canary = Canary(port)
    servers = [await asyncio.start_server(canary._record, "127.0.0.1", port)]
    with contextlib.suppress(OSError):  # a machine without IPv6 loopback
        servers.append(await asyncio.start_server(canary._record, "::1", port,
                                                  family=socket.AF_INET6))
    try:
        yield canary
    finally:
        for server in servers:
            server.close()


@dataclass
class Stack:
    host: str
    port: int
    simulator: RecordingSimulator
    canary: Canary
    api: httpx.AsyncClient
    requests: list[str]  # the simulator's request lines: "DESCRIBE rtsp://... from peer"


class _RequestLog(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.asynccontextmanager
async def stack(isolated: Isolated, engine: AsyncEngine, resolver: Resolver,
                ) -> AsyncIterator[Stack]:
    """The simulator on this machine's address, the canary on loopback at the same port, and
    the registry accepting cameras on that port."""
    host = camera_host()
    spec = MountSpec(name="a", seed=1, fps=5, width=160, height=100, loop=True)
    lines: list[str] = []
    log = logging.getLogger("simulator.rtsp_server")
    handler = _RequestLog(lines)
    async with recording_simulator([spec], host) as (sim, port), canary_on(port) as canary:
        level = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        try:
            # A burst as large as the corpus: it goes in twice (POST and PATCH) at once.
            async with registry(isolated, engine, resolver=resolver, rate_limit_burst=1000,
                                **camera_settings(port)) as api:
                yield Stack(host, port, sim, canary, api, lines)
        finally:
            log.removeHandler(handler)
            log.setLevel(level)


@contextlib.asynccontextmanager
async def ingest_node(isolated: Isolated) -> AsyncIterator[Ingest]:
    settings = IngestSettings(
        rabbitmq_url=isolated.rabbitmq_url, database_url=isolated.database_url,
        node_id="canary-node", camera_poll_s=0.3, reconnect_initial_s=0.2, status_refresh_s=0.5)
    node = Ingest(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(node.run(stop))
    try:
        yield node
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def live(node: Ingest, camera_id: str) -> None:
    async def status() -> Any:
        return node.health()["cameras"].get(camera_id)

    await eventually(status, lambda s: s == "live", timeout_s=30)


async def pinned_of(engine: AsyncEngine, camera_id: str) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(cameras.c.url, cameras.c.pinned_address)
                                  .where(cameras.c.id == camera_id))).one()
    return row.url, row.pinned_address


def corpus(port: int, host: str, amqp_port: int, pg_port: int) -> Iterator[str]:
    """Hostile URLs, each aimed at the canary (loopback at `port`) or at something else no
    camera may be; `host` is an allowed camera address."""
    p = port
    for target in (f"127.0.0.1:{p}", f"127.1:{p}", f"2130706433:{p}", f"0x7f000001:{p}",
                   f"0177.0.0.1:{p}", f"127.0.0.1.:{p}", f"[::1]:{p}", f"[::ffff:127.0.0.1]:{p}",
                   f"[::ffff:7f00:1]:{p}", f"[::127.0.0.1]:{p}", f"0.0.0.0:{p}", f"0:{p}",
                   f"localhost:{p}", f"LOCALHOST:{p}", f"ip6-localhost:{p}",
                   f"loopy.example:{p}", f"%31%32%37.0.0.1:{p}"):
        yield f"rtsp://admin:{QUOTED}@{target}/a"
        yield f"http://{target}/video.mjpg"
    yield "http://169.254.169.254/latest/meta-data/"
    yield "http://169.254.169.254:80/latest/meta-data/iam/security-credentials/"
    yield f"rtsp://[fe80::1]:{p}/a"
    # Userinfo tricks and parser differentials that end at, or pass through, loopback.
    yield f"rtsp://{host}:{p}@127.0.0.1:{p}/a"
    yield f"rtsp://127.0.0.1:{p}#@{host}:{p}/a"
    yield f"rtsp://{host}:{p}\\@127.0.0.1:{p}/a"
    yield f"http://user:{QUOTED}@127.0.0.1:{p}@{host}:{p}/a"
    yield f"rtsp://127.0.0.1:{p}\\{host}:{p}/a"
    yield f"rtsp://{host}:{p} @127.0.0.1:{p}/a"
    # Other schemes.
    for scheme in ("ftp", "gopher", "dict", "ldap", "sftp", "rtspt", "ws"):
        yield f"{scheme}://127.0.0.1:{p}/a"
    yield "file:///etc/passwd"
    yield "javascript:alert(document.cookie)"
    yield "data:text/plain;base64,aGk="
    # This system's own servers on an allowed address, a port no camera uses, a public host.
    yield f"rtsp://{host}:{amqp_port}/a"
    yield f"http://{host}:{amqp_port + 10000}/api/overview"
    yield f"rtsp://{host}:{pg_port}/a"
    yield f"rtsp://{host}:22/a"
    yield "rtsp://8.8.8.8/a"


def _port(url: str) -> int:
    found = urlsplit(url).port
    assert found is not None
    return found


def assert_refused_naming_url(response: httpx.Response, url: str) -> None:
    assert response.status_code == 422, (url, response.text)
    errors = response.json()["detail"]
    assert any(e["loc"] == ["body", "url"] for e in errors), (url, errors)
    assert SecretMasker([SECRET]).mask(response.text) == response.text, (url, response.text)


async def test_hostile_urls_are_refused_and_nothing_ever_connects_to_the_canary(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    # The machine's own resolver for localhost and ip6-localhost; a name that resolves to
    # loopback; the good camera's name, which resolves nowhere on this machine.
    host = camera_host()
    dns = FakeDns({"loopy.example": ["127.0.0.1"], "camera.invalid": [host]},
                  fallback=system_resolver)
    async with stack(isolated, engine, dns) as s:
        good = f"rtsp://admin:{QUOTED}@camera.invalid:{s.port}/a"
        created = await s.api.post("/api/cameras", json={"id": "good", "name": "Good",
                                                         "url": good})
        assert created.status_code == 201, created.text
        urls = list(corpus(s.port, host, _port(isolated.rabbitmq_url),
                           _port(isolated.database_url)))
        for i, url in enumerate(urls):
            response = await s.api.post("/api/cameras", json={
                "id": f"hostile-{i}", "name": "Hostile", "url": url})
            assert_refused_naming_url(response, url)
            response = await s.api.patch("/api/cameras/good", json={"url": url})
            assert_refused_naming_url(response, url)
        assert [c["id"] for c in (await s.api.get("/api/cameras")).json()] == ["good"]
        assert await pinned_of(engine, "good") == (
            f"rtsp://admin:{QUOTED}@camera.invalid:{s.port}/a", host)

        # An ingest node over what was registered: it reads the good camera, at its address.
        async with ingest_node(isolated) as node:
            await live(node, "good")
            await asyncio.sleep(3)  # a few seconds of sessions, reconnects and polls
        assert s.simulator.sessions, "the good camera was read"
        assert s.canary.connections == []


@pytest.mark.parametrize("name", ["localhost", "camera.invalid"])
async def test_ingest_connects_to_the_pinned_address_after_the_name_moves(
    isolated: Isolated, engine: AsyncEngine, name: str,
) -> None:
    """DNS rebinding: the name resolved to an allowed address at registration; now it resolves
    to loopback (localhost: the canary) or nowhere (camera.invalid). Ingest goes live at the
    pinned address and asks the camera for the URL as registered, host name and all."""
    dns = FakeDns({name: [camera_host()]})
    async with stack(isolated, engine, dns) as s:
        url = f"rtsp://{name}:{s.port}/a"
        created = await s.api.post("/api/cameras", json={"id": "door", "name": "Door",
                                                         "url": url})
        assert created.status_code == 201, created.text
        assert await pinned_of(engine, "door") == (url, s.host)
        del dns.names[name]  # the registry's view moves on too: nothing resolves it now

        async with ingest_node(isolated) as node:
            await live(node, "door")
            await asyncio.sleep(1)
        assert any(line.startswith(f"DESCRIBE {url} from {s.host}:") for line in s.requests), (
            s.requests[:5])
        assert s.canary.connections == []


async def test_a_changed_url_is_pinned_anew_and_an_unchanged_one_is_not_resolved_again(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    dns = FakeDns({"cam.example": ["10.0.0.5"], "other.example": ["192.168.7.7"]})
    async with registry(isolated, engine, resolver=dns) as api:
        url = f"rtsp://admin:{QUOTED}@cam.example/live"
        created = await api.post("/api/cameras", json={"id": "door", "name": "D", "url": url})
        assert created.status_code == 201, created.text
        assert await pinned_of(engine, "door") == (url, "10.0.0.5")

        # The name now points at loopback: the masked round trip changes nothing, so nothing
        # is re-judged and the pinned address stays.
        dns.names["cam.example"] = ["127.0.0.1"]
        same = await api.patch("/api/cameras/door", json={"url": created.json()["url"],
                                                          "name": "Door"})
        assert same.status_code == 200, same.text
        assert await pinned_of(engine, "door") == (url, "10.0.0.5")

        # Changed to a url whose name resolves to loopback now: refused, nothing changes.
        moved = await api.patch("/api/cameras/door", json={
            "url": f"rtsp://admin:{QUOTED}@cam.example:8554/live"})
        assert_refused_naming_url(moved, url)
        assert "loopback" in moved.json()["detail"][0]["msg"]
        assert await pinned_of(engine, "door") == (url, "10.0.0.5")

        # Changed to another allowed camera: pinned there.
        other = f"rtsp://admin:{QUOTED}@other.example/live"
        ok = await api.patch("/api/cameras/door", json={"url": other})
        assert ok.status_code == 200, ok.text
        assert await pinned_of(engine, "door") == (other, "192.168.7.7")
        assert "pinned" not in ok.text  # the address is ingest's business, not the API's

        # Nobody sets it through the API (no mass assignment).
        forced = await api.patch("/api/cameras/door", json={"pinned_address": "127.0.0.1"})
        assert forced.status_code == 422
        forced = await api.post("/api/cameras", json={
            "id": "yard", "name": "Y", "url": other, "pinned_address": "127.0.0.1"})
        assert forced.status_code == 422
        assert await pinned_of(engine, "door") == (other, "192.168.7.7")
