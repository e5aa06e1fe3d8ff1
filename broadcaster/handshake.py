"""Who may open a WebSocket: checked on the HTTP upgrade request, before any frame.

1. The path is `/ws` (else 404).
2. `?ticket=` holds a ticket from the registry (contracts/tickets.py) signed with the shared
   secret and not expired (else 401). Browsers cannot set headers on a WebSocket, hence the
   query string; tickets live a minute and query strings are masked in every log line.
3. The Origin header is one of `allowed_origins` (else 403, by websockets' own `origins`
   check, which runs after this one). A request without an Origin is accepted only with a
   valid ticket and `allow_no_origin`: browsers always send one, so only non-browser clients
   (scripts, services) come without, and the ticket alone decides for them.
4. Fewer than `max_clients` are connected (else 503).
"""

from __future__ import annotations

import http
import logging
import re
import time
import weakref
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Origin

from broadcaster import metrics
from broadcaster.settings import BroadcasterSettings
from contracts.tickets import Ticket, TicketError, verify

PATH = "/ws"
_QUERY = re.compile(r"(?<=\?)[^\s\"']+")


class MaskQueryStrings(logging.Filter):
    """websockets logs request lines (at DEBUG) with their query string: the ticket."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _QUERY.sub("***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def websocket_logger() -> logging.Logger:
    logger = logging.getLogger("camcount.broadcaster.websocket")
    if not any(isinstance(f, MaskQueryStrings) for f in logger.filters):
        logger.addFilter(MaskQueryStrings())
    return logger


def origins(settings: BroadcasterSettings) -> Sequence[Origin | None]:
    allowed: list[Origin | None] = [Origin(o) for o in settings.allowed_origins]
    return [*allowed, None] if settings.allow_no_origin else allowed


class Gate:
    def __init__(self, settings: BroadcasterSettings, connected: Callable[[], int],
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = settings.ws_ticket_secret.get_secret_value()
        self._max_clients = settings.max_clients
        self._connected, self._clock = connected, clock
        self._tickets: weakref.WeakKeyDictionary[ServerConnection, Ticket] = \
            weakref.WeakKeyDictionary()
        # Tickets already let in, until they expire: a ticket that leaked (a proxy's log of
        # the query string) cannot open a second connection.
        self._used: dict[str, float] = {}

    def ticket(self, connection: ServerConnection) -> Ticket:
        """The ticket a connection was let in with."""
        return self._tickets.pop(connection)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != PATH:
            return self._refuse(connection, http.HTTPStatus.NOT_FOUND, "path",
                                f"the WebSocket is at {PATH}")
        tokens = parse_qs(url.query).get("ticket")
        if not tokens:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "no_ticket",
                                "a ticket is required: POST /api/ws-ticket to the registry, "
                                f"then connect to {PATH}?ticket=<ticket>")
        now = self._clock()
        try:
            ticket = verify(self._secret, tokens[0], now=now)
        except TicketError as exc:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "bad_ticket", str(exc))
        self._forget_expired(now)
        if ticket.nonce in self._used:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "reused_ticket",
                                "the ticket was used already: get a new one for each connect")
        self._used[ticket.nonce] = ticket.expires_at
        if self._connected() >= self._max_clients:
            return self._refuse(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "full",
                                "too many connections; try again later")
        self._tickets[connection] = ticket
        return None

    def _forget_expired(self, now: float) -> None:
        # Amortised: the map holds only tickets still valid, at most what the registry issued
        # in the last ticket lifetime (its API keys are rate limited).
        if len(self._used) >= 1024 and len(self._used) % 256 == 0:
            self._used = {nonce: until for nonce, until in self._used.items() if until > now}

    def process_response(self, connection: ServerConnection, request: Request,
                         response: Response) -> None:
        if response.status_code == http.HTTPStatus.FORBIDDEN:
            metrics.REFUSED.labels("origin").inc()

    @staticmethod
    def _refuse(connection: ServerConnection, status: http.HTTPStatus, reason: str,
                message: str) -> Response:
        metrics.REFUSED.labels(reason).inc()
        return connection.respond(status, message + "\n")
