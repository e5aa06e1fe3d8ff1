"""`POST /api/ws-ticket`: a short-lived ticket to open the broadcaster's WebSocket with.

The page calls this with its API key, then connects to `${websocket_url}?ticket=${ticket}`
(browsers cannot send headers on a WebSocket; the key itself never goes into a URL). See
contracts/tickets.py for the format.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition time.
"""

import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, Field

from contracts import tickets
from registry.auth import Auth, Principal
from registry.errors import AUTHENTICATED, ErrorOut
from registry.settings import RegistrySettings

log = logging.getLogger("camcount.registry")

NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "WebSocket tickets are not configured here "
                                            "(WS_TICKET_SECRET is unset)"},
}


class TicketOut(BaseModel):
    ticket: str = Field(description="pass as ?ticket=... when opening the WebSocket; valid "
                        "for one connect until expires_at (an open connection outlives it)")
    expires_at: datetime
    websocket_url: str = Field(description="where the broadcaster listens")


def tickets_router(settings: RegistrySettings, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["live"], responses=AUTHENTICATED)
    Viewer = Annotated[Principal, Depends(auth.viewer)]
    secret = settings.ws_ticket_secret
    if secret is None:
        log.warning("WS_TICKET_SECRET is not set: POST /api/ws-ticket answers 503 and no page "
                    "can open the live WebSocket")

    @router.post("/api/ws-ticket", responses=NOT_CONFIGURED)
    async def ws_ticket(caller: Viewer, response: Response) -> TicketOut:
        """A ticket for the live WebSocket, carrying this key's id, role and site: the
        connection sees the cameras and alerts of that site only."""
        if secret is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                "WebSocket tickets are not configured (WS_TICKET_SECRET)")
        token, ticket = tickets.issue(
            secret.get_secret_value(), key_id=caller.key_id, role=caller.role,
            site=caller.site, now=time.time(), ttl_s=settings.ws_ticket_ttl_s)
        response.headers["Cache-Control"] = "no-store"
        return TicketOut(ticket=token, expires_at=datetime.fromtimestamp(ticket.expires_at, UTC),
                         websocket_url=settings.broadcaster_public_url)

    return router
