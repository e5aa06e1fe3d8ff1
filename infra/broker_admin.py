"""Queue depths from RabbitMQ's management HTTP API: what the fleet view and the queue alerts
read. Thin: one GET per reading, parsed into typed rows; the virtual host comes from the AMQP
URL. The counts are as fresh as the broker's statistics interval (5 s by default)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

_COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers"


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int  # ready and delivered-but-unacknowledged
    ready: int  # waiting to be delivered
    unacked: int
    consumers: int


def vhost_of(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def management_client(management_url: str, timeout_s: float,
                      transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client for the API at `management_url`, its credentials taken out of the URL."""
    parts = urlsplit(management_url)
    netloc = parts.hostname or "127.0.0.1"
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    return httpx.AsyncClient(base_url=urlunsplit(parts._replace(netloc=netloc)), auth=auth,
                             timeout=timeout_s, transport=transport)


async def read_queue_depths(http: httpx.AsyncClient, vhost: str) -> list[QueueDepth]:
    """Every queue of `vhost`. Raises httpx.HTTPError, or ValueError/KeyError/TypeError for an
    answer that is not the API's."""
    response = await http.get(f"/api/queues/{quote(vhost, safe='')}",
                              params={"columns": _COLUMNS})
    response.raise_for_status()
    return [
        QueueDepth(name=str(r["name"]), messages=int(r.get("messages") or 0),
                   ready=int(r.get("messages_ready") or 0),
                   unacked=int(r.get("messages_unacknowledged") or 0),
                   consumers=int(r.get("consumers") or 0))
        for r in response.json()
    ]


async def queue_depths(management_url: str, vhost: str, timeout_s: float = 3.0,
                       ) -> list[QueueDepth]:
    """One reading with a client of its own."""
    async with management_client(management_url, timeout_s) as http:
        return await read_queue_depths(http, vhost)
