"""`POST /api/ws-ticket` on the registry, and its tickets at a running broadcaster: the key's
site travels with the ticket; the shared secret is required and never shown."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect
from websockets.typing import Origin

from broadcaster.settings import BroadcasterSettings
from contracts import tickets
from registry import api_keys
from registry.settings import RegistrySettings
from tests.conftest import Isolated
from tests.integration.broadcaster_rig import ORIGIN, SECRET, add_camera, running, subscribe
from tests.integration.registry_client import new_key, registry

pytestmark = pytest.mark.timeout(120)
PUBLIC_URL = "wss://live.example/ws"


async def test_a_viewer_gets_a_ticket_that_the_broadcaster_takes_for_its_site(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    await add_camera(engine, "a1", "shop-a", "north")
    await add_camera(engine, "b1", "shop-b", "north")
    key = await new_key(engine, "viewer", "shop-a")
    async with registry(isolated, engine, key=key, ws_ticket_secret=SECRET,
                        broadcaster_public_url=PUBLIC_URL) as api:
        response = await api.post("/api/ws-ticket")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"ticket", "expires_at", "websocket_url"}
    assert body["websocket_url"] == PUBLIC_URL and SECRET not in response.text
    expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert 0 < expires_at - time.time() <= tickets.DEFAULT_TTL_S
    parsed = api_keys.parse(key)
    assert parsed is not None
    claims = tickets.verify(SECRET, body["ticket"], now=time.time())
    assert (claims.key_id, claims.role, claims.site) == (parsed[0], "viewer", "shop-a")

    async with running(isolated) as broadcaster, connect(
        f"ws://127.0.0.1:{broadcaster.port}/ws?ticket={body['ticket']}", origin=Origin(ORIGIN),
    ) as ws:
        assert json.loads(await ws.recv()) == {"type": "hello", "site": "shop-a"}
        assert (await subscribe(ws, cameras=["b1"]))["message"] == "no camera 'b1'"
        assert (await subscribe(ws, cameras=["a1"]))["type"] == "subscribed"


async def test_tickets_need_a_key_and_a_configured_secret(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    async with registry(isolated, engine, ws_ticket_secret=SECRET) as api:
        refused = await api.post("/api/ws-ticket", headers={"Authorization": ""})
        assert refused.status_code == 401
    async with registry(isolated, engine) as api:  # WS_TICKET_SECRET unset
        unconfigured = await api.post("/api/ws-ticket")
        assert unconfigured.status_code == 503
        assert "WS_TICKET_SECRET" in unconfigured.json()["detail"]


def test_the_shared_secret_is_required_long_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WS_TICKET_SECRET", raising=False)
    with pytest.raises(ValidationError, match="ws_ticket_secret"):
        BroadcasterSettings()
    for settings_class in (BroadcasterSettings, RegistrySettings):
        with pytest.raises(ValidationError, match="at least 32"):
            settings_class(ws_ticket_secret="too-short")
    settings = BroadcasterSettings(ws_ticket_secret=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
