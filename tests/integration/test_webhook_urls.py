"""Alert webhooks cannot be aimed at this system or its host (SSRF): hostile webhook URLs are
refused with a 422 naming webhook_url, and at send time every connection is checked again, so
a name that later resolves to loopback (DNS rebinding), or a URL written to the database past
the API, sends nothing there: a canary listener on 127.0.0.1 sees no connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.messages import AlertEvent
from registry.alerting.webhook import WebhookSender
from registry.settings import RegistrySettings
from tests.camera_host import camera_host
from tests.conftest import Isolated
from tests.fake_dns import FakeDns
from tests.integration.registry_client import registry
from tests.support import serving

PUBLIC = "203.0.113.5"  # TEST-NET-3: a documentation address no test connects to

HOSTILE = [
    "http://127.0.0.1:9000/hook",
    "http://127.1:9000/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://[::1]:9000/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0:9000/hook",
    "http://255.255.255.255/hook",
    "http://localhost:9000/hook",  # the fake resolver: 127.0.0.1
    "http://loopback6.test/hook",  # ::1
    "http://mixed.test/hook",  # a public address and a loopback one
    "http://metadata.test/hook",  # 169.254.169.254
    "http://hooks.test:5432/hook",  # PostgreSQL's port
    "http://hooks.test:15672/hook",  # RabbitMQ's management port
    "http://hooks.test:8080/hook",  # the registry's own (HTTP_PORT)
    "http://nowhere.test/hook",  # does not resolve
    "http://user@evil.test@hooks.test/hook",
    "http://hooks.test\\@127.0.0.1/hook",
    "http://hooks.test/ho ok",
    "http://%31%32%37.0.0.1/hook",
    "ftp://hooks.test/hook",
    "file:///etc/passwd",
    "gopher://hooks.test:70/_hook",
]


def fake_dns() -> FakeDns:
    return FakeDns({
        "hooks.test": [PUBLIC], "localhost": ["127.0.0.1"], "loopback6.test": ["::1"],
        "mixed.test": [PUBLIC, "127.0.0.1"], "metadata.test": ["169.254.169.254"],
        "evil.test": [PUBLIC], "narrow.test": ["198.51.100.7"],
    })


def rule(webhook_url: str) -> dict[str, Any]:
    return {"name": "dead letters", "kind": "dlq_not_empty", "webhook_url": webhook_url}


async def rules_stored(engine: AsyncEngine) -> list[str | None]:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT webhook_url FROM alert_rules ORDER BY id"))
        return [row.webhook_url for row in found]


def loc(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, (response.status_code, response.text)
    return [e["loc"] for e in response.json()["detail"]]


@pytest.mark.parametrize("url", HOSTILE)
async def test_a_hostile_webhook_url_is_refused_naming_the_field(
    isolated: Isolated, engine: AsyncEngine, url: str,
) -> None:
    async with registry(isolated, engine, resolver=fake_dns()) as api:
        refused = await api.post("/api/alert-rules", json=rule(url))
        assert loc(refused) == [["body", "webhook_url"]]
        assert "hook" in refused.json()["detail"][0]["msg"]
    assert await rules_stored(engine) == []


async def test_allowed_webhooks_and_the_webhook_networks(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    dns = fake_dns()
    async with registry(isolated, engine, resolver=dns) as api:
        made = await api.post("/api/alert-rules", json=rule("https://hooks.test/s3cr3t"))
        assert made.status_code == 201, made.text
        assert made.json()["webhook_url"] == "https://hooks.test/***"
        literal = await api.post("/api/alert-rules", json=rule(f"http://{PUBLIC}:9000/x"))
        assert literal.status_code == 201, literal.text

        # PATCH: a hostile URL is refused and changes nothing; the masked form keeps the URL.
        url = f"/api/alert-rules/{made.json()['id']}"
        assert loc(await api.patch(url, json={"webhook_url": "http://localhost/x"})) == [
            ["body", "webhook_url"]]
        kept = await api.patch(url, json={"webhook_url": "https://hooks.test/***"})
        assert kept.status_code == 200, kept.text
        asked = len(dns.asked)
        assert (await api.patch(url, json={"name": "renamed"})).status_code == 200
        assert len(dns.asked) == asked  # an unchanged webhook is not resolved again
    assert await rules_stored(engine) == ["https://hooks.test/s3cr3t",
                                          f"http://{PUBLIC}:9000/x"]

    async with registry(isolated, engine, resolver=dns,
                        webhook_networks="198.51.100.0/24") as api:
        outside = await api.post("/api/alert-rules", json=rule("https://hooks.test/x"))
        assert loc(outside) == [["body", "webhook_url"]]
        assert "WEBHOOK_NETWORKS" in outside.json()["detail"][0]["msg"]
        inside = await api.post("/api/alert-rules", json=rule("https://narrow.test/x"))
        assert inside.status_code == 201, inside.text


# --- send time ----------------------------------------------------------------------------------


@dataclass
class Listeners:
    """A webhook receiver on this machine's address and a canary on 127.0.0.1, on one port."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    canary_connections: int = 0


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """Sockets on 127.0.0.1:P and camera_host():P for one free P."""
    for _ in range(50):
        canary = socket.socket()
        canary.bind(("127.0.0.1", 0))
        port = canary.getsockname()[1]
        receiver = socket.socket()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            receiver.bind((camera_host(), port))
        except OSError:
            canary.close()
            receiver.close()
            continue
        return canary, receiver
    raise RuntimeError("no port free on both 127.0.0.1 and the host address")


@contextlib.asynccontextmanager
async def listeners() -> AsyncIterator[Listeners]:
    canary_sock, receiver_sock = _bind_pair()
    found = Listeners(port=receiver_sock.getsockname()[1])

    async def hook(request: Request) -> Response:
        found.received.append(await request.json())
        return Response(status_code=204)

    def on_canary(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.canary_connections += 1
        writer.close()

    canary = await asyncio.start_server(on_canary, sock=canary_sock)
    receiver = Starlette(routes=[Route("/hooks/s3cr3t", hook, methods=["POST"])])
    try:
        async with serving(receiver, sock=receiver_sock):
            yield found
    finally:
        canary.close()
        await canary.wait_closed()


def event() -> AlertEvent:
    return AlertEvent(event_seq=1, alert_id=7, rule_id=3, rule_name="dead letters",
                      kind="dlq_not_empty", state="firing", site=None, camera_id=None,
                      region=None, subject="frames.dead", message="1 message", value=1,
                      threshold=0, at=1.0, fired_at=1.0)


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("camcount_alert_webhook_failures_total",
                                     {"reason": reason}) or 0.0


async def _no_sleep(_: float) -> None:
    return None


def sender(dns: FakeDns, **overrides: Any) -> WebhookSender:
    settings = RegistrySettings(media_dir=None, webhook_attempts=2, webhook_timeout_s=2,
                                **overrides)
    return WebhookSender(settings, sleep=_no_sleep, resolver=dns)


async def test_a_name_rebound_to_loopback_gets_no_webhook() -> None:
    async with listeners() as at:
        dns = FakeDns({"hooks.test": [camera_host()]})
        send = sender(dns)
        url = f"http://hooks.test:{at.port}/hooks/s3cr3t"
        async with send.client() as client:
            assert await send.deliver(client, url, event())
        assert len(at.received) == 1  # the name is honoured while it points somewhere allowed

        refused = failures("address_refused")
        for rebound in (["127.0.0.1"], ["::ffff:127.0.0.1"], [camera_host(), "127.0.0.1"]):
            dns.names["hooks.test"] = rebound
            asked = len(dns.asked)
            async with send.client() as client:
                assert not await send.deliver(client, url, event())
            assert len(dns.asked) == asked + 1  # resolved again, once: refusals are not retried
        assert failures("address_refused") == refused + 3
        assert (len(at.received), at.canary_connections) == (1, 0)


async def test_urls_written_past_the_api_are_checked_when_sent() -> None:
    async with listeners() as at:
        send = sender(FakeDns())
        refused = failures("address_refused")
        async with send.client() as client:
            for url in (f"http://127.0.0.1:{at.port}/hooks/s3cr3t",
                        f"http://[::ffff:127.0.0.1]:{at.port}/hooks/s3cr3t"):
                assert not await send.deliver(client, url, event())
        assert failures("address_refused") == refused + 2
        assert at.canary_connections == 0

        # The receiver's own address passes, unless WEBHOOK_NETWORKS leaves it out.
        url = f"http://{camera_host()}:{at.port}/hooks/s3cr3t"
        async with send.client() as client:
            assert await send.deliver(client, url, event())
        narrow = sender(FakeDns(), webhook_networks="198.51.100.0/24")
        async with narrow.client() as client:
            assert not await narrow.deliver(client, url, event())
        assert (len(at.received), at.canary_connections) == (1, 0)


async def test_a_name_that_stops_resolving_is_retried_then_given_up() -> None:
    dns = FakeDns()
    send = sender(dns)
    gave_up = failures("gave_up")
    async with send.client() as client:
        assert not await send.deliver(client, "http://gone.test:9000/x", event())
    assert dns.asked == ["gone.test", "gone.test"]  # both attempts (network trouble, retried)
    assert failures("gave_up") == gave_up + 1
