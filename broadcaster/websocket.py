"""One WebSocket client: subscribe (broadcaster/subscription.py), resume, live events.

Server -> client: {"type": "hello", "site": ...} on connect; {"type": "subscribed", "cameras":
..., "regions": ..., "alerts": ..., "replayed": n} once a subscription is in place (after the
events it replayed); then {"type": "counts", "event_seq": ..., ...} (contracts.messages.
CountUpdate) and {"type": "alert", "event_seq": ..., ...} (AlertEvent), event_seq rising;
{"type": "error", "message": ...} for a refused message (the subscription stays as it was).
A camera the ticket's site does not see is refused exactly like one that does not exist.
Close codes: 1009 a frame over max_message_bytes; 1013 too slow (resume from the last
event_seq).

Resume without gaps or duplicates: the new subscription is put in place first, so every event
relayed from then on is queued for the client; the replay then sends the matching published
events after `resume_from`, taking each one it sends out of that queue, and leaves a row the
relay has committed but not queued yet to the live path; the queue follows. Nothing is sent
live meanwhile (the send lock).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from broadcaster import metrics
from broadcaster.cameras import CameraDirectory
from broadcaster.events import BadRow
from broadcaster.hub import Client, Hub
from broadcaster.relay import newest_seq, replay_page, to_event
from broadcaster.settings import BroadcasterSettings
from broadcaster.subscription import SubscribeMessage, Subscription
from contracts.tickets import Ticket

log = logging.getLogger("camcount.broadcaster")


class Refused(Exception):
    """A client message that changes nothing; the text goes back to the client."""


class Connection:
    def __init__(self, ws: ServerConnection, ticket: Ticket, hub: Hub, engine: AsyncEngine,
                 cameras: CameraDirectory, settings: BroadcasterSettings) -> None:
        self.ws, self.ticket, self.hub, self.engine = ws, ticket, hub, engine
        self.cameras, self.settings = cameras, settings
        self.client = Client(ticket.site, settings.client_queue_size)
        self._sending = asyncio.Lock()

    async def serve(self) -> None:
        self.hub.join(self.client)
        metrics.CLIENTS.inc()
        try:
            await self.ws.send(json.dumps({"type": "hello", "site": self.ticket.site}))
            tasks = [
                asyncio.create_task(self._send_live()),
                asyncio.create_task(self._receive()),
                asyncio.create_task(self.client.dropped.wait()),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            if self.client.dropped.is_set():
                await self.ws.close(1013, "too slow: resume from your last event_seq")
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionClosed):
                    raise result
        except ConnectionClosed:
            pass
        finally:
            self.hub.leave(self.client)
            metrics.CLIENTS.dec()

    async def _send_live(self) -> None:
        while True:
            await self.client.buffer.wait()
            async with self._sending:
                event = self.client.buffer.pop()
                if event is not None:
                    await self.ws.send(event.text)

    async def _receive(self) -> None:
        async for raw in self.ws:
            try:
                await self._subscribe(self._parse(raw))
            except Refused as exc:
                await self._send({"type": "error", "message": str(exc)})

    def _parse(self, raw: str | bytes) -> SubscribeMessage:
        try:
            message = SubscribeMessage.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Refused(f"{where}: {first['msg']}" if where else first["msg"]) from None
        if message.items > self.settings.max_subscription_items:
            raise Refused(f"at most {self.settings.max_subscription_items} cameras and regions "
                          "in one subscribe")
        return message

    async def _subscribe(self, message: SubscribeMessage) -> None:
        for camera_id in message.named_cameras():
            if await self.cameras.find(camera_id, self.ticket.site) is None:
                raise Refused(f"no camera {camera_id!r}")
        resume_from = message.resume_from
        if resume_from is not None:
            behind = await newest_seq(self.engine) - resume_from
            if behind > self.settings.max_replay_events:
                raise Refused(f"resume_from {resume_from} is {behind} events behind, more "
                              f"than {self.settings.max_replay_events}: reload over the REST "
                              "API and subscribe without resume_from")
        subscription = Subscription.of(message, self.ticket.site)
        async with self._sending:
            self.client.subscribe(subscription)
            replayed = 0 if resume_from is None else await self._replay(subscription,
                                                                        resume_from)
            await self.ws.send(json.dumps({"type": "subscribed", **subscription.describe(),
                                           "replayed": replayed}))

    async def _replay(self, subscription: Subscription, after: int) -> int:
        sent = 0
        page = self.settings.replay_page
        while True:
            rows = await replay_page(self.engine, after, subscription, page)
            for row in rows:
                after = row.id
                if row.id in self.hub.relaying:
                    continue  # committed, about to be queued live: it comes from there
                try:
                    event = await to_event(row, self.cameras)
                except BadRow:
                    continue  # logged by the relay
                if subscription.wants(event):
                    await self.ws.send(event.text)
                    self.client.buffer.discard(event.seq)
                    sent += 1
            if len(rows) < page:
                metrics.REPLAYED.inc(sent)
                return sent

    async def _send(self, payload: dict[str, Any]) -> None:
        async with self._sending:
            await self.ws.send(json.dumps(payload))
