"""`python -m bench.load.clients`: a group of WebSocket clients for the fan-out bench.

Reads one JSON object on stdin: {"urls": [...one per client...], "origin": str | null,
"events": E, "timeout_s": T}. Connects every client (at most CONNECT_AT_ONCE at a time),
subscribes each to every camera (counts only) and waits for the server's "subscribed", then
prints `ready N` (N clients subscribed). Each client then receives until it holds E count
events or T seconds pass, noting for each the receive time minus the event's committed_at
(the instant its sender stamped: the outbox commit for camcount, the broadcast call for the
bare server). Finally one JSON line: {"clients", "subscribed", "latencies_ms", "missing"}.

The clients live in processes of their own, several of them, so that receiving a thousand
copies of every event is not limited by one Python process (the same groups serve both
contestants).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin

CONNECT_AT_ONCE = 50
SUBSCRIBE = json.dumps({"op": "subscribe", "cameras": "*", "alerts": False})


async def _open(url: str, origin: str | None, gate: asyncio.Semaphore) -> ClientConnection:
    async with gate:
        ws = await connect(url, origin=Origin(origin) if origin else None, open_timeout=60,
                           max_queue=None)
        await ws.send(SUBSCRIBE)
        while json.loads(await ws.recv()).get("type") != "subscribed":
            pass
        return ws


async def _receive(ws: ClientConnection, events: int, deadline: float,
                   latencies: list[float]) -> int:
    """Count events until `events` or the deadline; returns how many are missing."""
    got = 0
    try:
        while got < events:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            raw = await asyncio.wait_for(ws.recv(), left)
            received = time.time()
            message = json.loads(raw)
            if message.get("type") == "counts":
                latencies.append((received - float(message["committed_at"])) * 1000)
                got += 1
    except (TimeoutError, ConnectionClosed):
        pass
    finally:
        await ws.close()
    return events - got


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    urls: list[str] = spec["urls"]
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    opened = await asyncio.gather(*(_open(u, spec.get("origin"), gate) for u in urls),
                                  return_exceptions=True)
    clients = [ws for ws in opened if isinstance(ws, ClientConnection)]
    for error in {repr(e) for e in opened if isinstance(e, BaseException)}:
        print(f"connect failed: {error}", file=sys.stderr, flush=True)
    print(f"ready {len(clients)}", flush=True)
    deadline = time.monotonic() + float(spec["timeout_s"])
    latencies: list[float] = []
    missing = await asyncio.gather(*(_receive(ws, int(spec["events"]), deadline, latencies)
                                     for ws in clients))
    return {"clients": len(urls), "subscribed": len(clients), "latencies_ms": latencies,
            "missing": sum(missing) + (len(urls) - len(clients)) * int(spec["events"])}


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    try:
        result = asyncio.run(run(spec))
    except WebSocketException as exc:
        print(f"clients failed: {exc!r}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
