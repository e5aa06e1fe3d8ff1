"""Queue depths from RabbitMQ's management HTTP API: what the fleet view and the queue alerts
read. Thin: one GET, parsed into typed rows; the virtual host comes from the AMQP URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import httpx


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int
    ready: int
    unacked: int
    consumers: int


def vhost_of(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


async def queue_depths(management_url: str, vhost: str, timeout_s: float = 3.0,
                       ) -> list[QueueDepth]:
    """Every queue of `vhost`. Raises httpx.HTTPError when the API cannot be read."""
    parts = urlsplit(management_url)
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    async with httpx.AsyncClient(base_url=base, auth=auth, timeout=timeout_s) as http:
        response = await http.get(f"/api/queues/{quote(vhost, safe='')}",
                                  params={"columns": "name,messages,messages_ready,"
                                          "messages_unacknowledged,consumers"})
        response.raise_for_status()
        rows = response.json()
    return [
        QueueDepth(name=r["name"], messages=int(r.get("messages") or 0),
                   ready=int(r.get("messages_ready") or 0),
                   unacked=int(r.get("messages_unacknowledged") or 0),
                   consumers=int(r.get("consumers") or 0))
        for r in rows
    ]
