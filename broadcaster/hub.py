"""Fan-out of relayed events to WebSocket clients. Pure bookkeeping, no sockets.

Each client has a bounded buffer: a client too slow to keep up is dropped (it can reconnect and
resume from its last event_seq) so that it never holds memory or delays the others. Events are
serialised once; the buffers hold references to the same objects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from broadcaster.events import Event
from broadcaster.subscription import Subscription


class EventBuffer:
    """A bounded FIFO of events from which a given seq can be taken out in O(1) (an event a
    resuming client got by replay while it was also queued live)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._events: deque[Event] = deque()
        self._queued: set[int] = set()  # seqs in _events not taken out
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued)

    def put(self, event: Event) -> bool:
        """False when full (nothing is queued then)."""
        if event.seq in self._queued:
            return True  # the same row relayed twice (a failed commit): one copy is enough
        if len(self._queued) >= self.capacity:
            return False
        self._events.append(event)
        self._queued.add(event.seq)
        self._ready.set()
        return True

    def pop(self) -> Event | None:
        while self._events:
            event = self._events.popleft()
            if event.seq in self._queued:
                self._queued.discard(event.seq)
                if not self._queued:
                    self._ready.clear()
                return event
        self._ready.clear()
        return None

    def discard(self, seq: int) -> None:
        self._queued.discard(seq)
        if not self._queued:
            self._ready.clear()
        if len(self._events) > 2 * len(self._queued) + 64:  # taken-out entries stay bounded
            self._events = deque(e for e in self._events if e.seq in self._queued)

    def retain(self, keep: Callable[[Event], bool]) -> None:
        self._events = deque(e for e in self._events if e.seq in self._queued and keep(e))
        self._queued = {e.seq for e in self._events}
        if not self._queued:
            self._ready.clear()

    async def wait(self) -> None:
        await self._ready.wait()


@dataclass(eq=False)
class Client:
    site: str  # the ticket's
    queue_size: int = 256
    subscription: Subscription | None = None  # None: nothing yet
    buffer: EventBuffer = field(init=False)
    dropped: asyncio.Event = field(init=False)

    def __post_init__(self) -> None:
        self.buffer = EventBuffer(self.queue_size)
        self.dropped = asyncio.Event()

    def subscribe(self, subscription: Subscription) -> None:
        """Replace the subscription; queued events it does not want are forgotten."""
        self.subscription = subscription
        self.buffer.retain(subscription.wants)

    def wants(self, event: Event) -> bool:
        return self.subscription is not None and self.subscription.wants(event)


@dataclass
class Hub:
    clients: set[Client] = field(default_factory=set)
    # Rows committed as published whose events are not handed to the clients yet: a replay
    # that reads one leaves it to the live path (see websocket.Connection._replay).
    relaying: set[int] = field(default_factory=set)

    def join(self, client: Client) -> None:
        self.clients.add(client)

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    def begin(self, seqs: Iterable[int]) -> None:
        self.relaying.update(seqs)

    def end(self, seqs: Iterable[int]) -> None:
        self.relaying.difference_update(seqs)

    def publish(self, events: Sequence[Event]) -> list[Client]:
        """Queue the events for every interested client; return the clients dropped."""
        slow = []
        for client in self.clients:
            for event in events:
                if client.wants(event) and not client.buffer.put(event):
                    client.dropped.set()
                    slow.append(client)
                    break
        for client in slow:
            self.leave(client)
        self.end(e.seq for e in events)
        return slow
