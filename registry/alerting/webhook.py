"""Webhook delivery of alert events: after the commit, never in the way of evaluation.

`submit` only enqueues (a full queue drops the event and counts it). Deliveries run in
`concurrency` lanes; a URL always maps to the same lane, so one receiver gets an alert's events
in order, and a slow or dead receiver holds up only its own lane. Each delivery is retried on
network errors, timeouts, 5xx and 429 with capped exponential back-off and full jitter, then
given up and counted. Other 4xx are the receiver refusing the event: not retried.

Webhook URLs often carry their secret in the path (chat services) or userinfo: logs name the
origin only, responses show `mask_webhook`.

Every connection goes through registry/webhook_urls.py's guard: the host is resolved again and
only a checked address is connected to, so a rule whose name now resolves to loopback (DNS
rebinding) or a rule written to the database past the API sends nothing there. Such a delivery
is given up at once and counted (reason `address_refused`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from contracts.messages import AlertEvent
from contracts.secrets import MASK, mask_credentials
from registry.alerting import metrics
from registry.camera_urls import Resolver, system_resolver
from registry.settings import RegistrySettings
from registry.webhook_urls import (
    GuardedTransport,
    WebhookPolicy,
    WebhookUrlGuard,
    WebhookUrlRefused,
)

log = logging.getLogger("camcount.registry.alerts")

Sleep = Callable[[float], Awaitable[None]]


def backoff_s(retry: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry number `retry` (0 first): full jitter over a doubling, capped span,
    so many failing deliveries do not retry in lockstep."""
    return rng.uniform(0.0, min(max_s, initial_s * 2.0 ** min(retry, 62)))


def webhook_origin(url: str) -> str:
    """What a log line may say of a webhook: scheme, host and port, nothing secret."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def mask_webhook(url: str) -> str:
    """A webhook URL as the API shows it: the origin, with the password of any userinfo,
    the path and the query masked (they are where webhook secrets live)."""
    origin = webhook_origin(url)
    if origin == MASK:
        return MASK
    parts = urlsplit(url)
    user = f"{parts.username}:{MASK}@" if parts.password is not None else (
        f"{parts.username}@" if parts.username else "")
    scheme, host = origin.split("://", 1)
    path = f"/{MASK}" if parts.path.strip("/") or parts.query else ""
    return urlunsplit((scheme, f"{user}{host}", path, "", ""))


class WebhookSender:
    def __init__(self, settings: RegistrySettings, *, rng: random.Random | None = None,
                 sleep: Sleep = asyncio.sleep,
                 transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver = system_resolver) -> None:
        """`transport` replaces the guarded one (tests of delivery alone); `resolver` is the
        guard's name resolution."""
        self._settings = settings
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._transport = transport
        self._guard = WebhookUrlGuard(WebhookPolicy.from_settings(settings), resolver)
        lanes = settings.webhook_concurrency
        per_lane = max(1, -(-settings.webhook_queue_size // lanes))
        self._lanes: list[asyncio.Queue[tuple[str, AlertEvent]]] = [
            asyncio.Queue(per_lane) for _ in range(lanes)]

    def submit(self, url: str, event: AlertEvent) -> bool:
        """Queue a delivery; False (and counted) when its lane is full."""
        lane = self._lanes[zlib.crc32(url.encode()) % len(self._lanes)]
        try:
            lane.put_nowait((url, event))
        except asyncio.QueueFull:
            metrics.WEBHOOKS_DROPPED.inc()
            log.warning("webhook to %s dropped: delivery queue full", webhook_origin(url))
            return False
        return True

    def pending(self) -> int:
        return sum(lane.qsize() for lane in self._lanes)

    def client(self) -> httpx.AsyncClient:
        """The HTTP client deliveries use: no redirects, no proxies, guarded connections."""
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self._settings.webhook_timeout_s), follow_redirects=False,
            trust_env=False, transport=self._transport or GuardedTransport(self._guard),
            headers={"user-agent": "camcount-alerts"})

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with self.client() as client:
            log.info("alert webhooks ready: %d lanes, %d attempts each",
                     len(self._lanes), self._settings.webhook_attempts)
            async with asyncio.TaskGroup() as tg:
                for lane in self._lanes:
                    tg.create_task(self._drain(client, lane))

    async def _drain(self, client: httpx.AsyncClient,
                     lane: asyncio.Queue[tuple[str, AlertEvent]]) -> None:
        while True:
            url, event = await lane.get()
            try:
                await self.deliver(client, url, event)
            finally:
                lane.task_done()

    async def deliver(self, client: httpx.AsyncClient, url: str, event: AlertEvent) -> bool:
        """One event to one URL, with retries; True when the receiver accepted it."""
        body = event.model_dump_json().encode()
        attempts = self._settings.webhook_attempts
        origin = webhook_origin(url)
        problem = ""
        for attempt in range(attempts):
            if attempt:
                metrics.WEBHOOK_RETRIES.inc()
                await self._sleep(backoff_s(attempt - 1, self._settings.webhook_backoff_initial_s,
                                            self._settings.webhook_backoff_max_s, self._rng))
            try:
                response = await client.post(url, content=body,
                                             headers={"content-type": "application/json"})
            except WebhookUrlRefused as exc:
                metrics.WEBHOOK_FAILURES.labels("address_refused").inc()
                log.warning("webhook to %s not sent for alert %d (%s): %s", origin,
                            event.alert_id, event.state, exc)
                return False
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {mask_credentials(str(exc))}"[:300]
                continue
            if response.is_success:
                metrics.WEBHOOKS_SENT.inc()
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                metrics.WEBHOOK_FAILURES.labels("refused").inc()
                log.warning("webhook to %s refused alert %d (%s): %s; not retried",
                            origin, event.alert_id, event.state, problem)
                return False
        metrics.WEBHOOK_FAILURES.labels("gave_up").inc()
        log.warning("webhook to %s gave up on alert %d (%s) after %d attempts: %s",
                    origin, event.alert_id, event.state, attempts, problem)
        return False
