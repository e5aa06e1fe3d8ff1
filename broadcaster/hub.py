"""Fan-out of count updates to WebSocket clients. Pure bookkeeping, no sockets.

Each client has a bounded queue: a client too slow to keep up is dropped (it can reconnect and
resume from its last event_seq) so that it never holds memory or delays the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

ALL = "*"


@dataclass(eq=False)
class Client:
    queue_size: int = 256
    cameras: set[str] | None = None  # None: nothing yet; {ALL}: everything
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    dropped: asyncio.Event = field(init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)
        self.dropped = asyncio.Event()

    def wants(self, camera_id: str) -> bool:
        return self.cameras is not None and (ALL in self.cameras or camera_id in self.cameras)


@dataclass
class Hub:
    clients: set[Client] = field(default_factory=set)

    def join(self, client: Client) -> None:
        self.clients.add(client)

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, camera_id: str, event: dict[str, Any]) -> list[Client]:
        """Queue the event for every interested client; return the clients to drop."""
        slow = []
        for client in self.clients:
            if not client.wants(camera_id):
                continue
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                client.dropped.set()
                slow.append(client)
        for client in slow:
            self.leave(client)
        return slow
