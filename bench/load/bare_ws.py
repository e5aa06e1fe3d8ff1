"""`python -m bench.load.bare_ws`: the fan-out baseline, a bare `websockets` server.

It answers a client's subscribe with "subscribed" (as the broadcaster does) and, once
`--clients` clients have subscribed, broadcasts `--events` count messages at `--rate` per
second with `websockets.broadcast`, each shaped exactly like the broadcaster's (the same JSON,
committed_at stamped just before the broadcast call). No tickets, no database, no broker, no
per-client queues: what the fan-out alone costs. It exits once every client has gone (or 60 s
after the last event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.load.fanout_events import count_text, paced

LINGER_S = 60.0


async def run(port: int, clients: int, events: int, rate_per_s: float) -> None:
    subscribed: set[ServerConnection] = set()
    everyone, gone = asyncio.Event(), asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "hello", "site": "*"}))
        try:
            async for _ in ws:
                await ws.send(json.dumps({"type": "subscribed", "cameras": "*", "regions": [],
                                          "alerts": False, "replayed": 0}))
                subscribed.add(ws)
                if len(subscribed) >= clients:
                    everyone.set()
        finally:
            subscribed.discard(ws)
            if not subscribed and everyone.is_set():
                gone.set()

    async with serve(handler, "127.0.0.1", port, max_queue=None):
        print(f"listening on {port}", flush=True)
        await everyone.wait()
        await asyncio.sleep(1.0)
        async for seq in paced(events, rate_per_s):
            broadcast(subscribed, count_text(seq, time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gone.wait(), LINGER_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.bare_ws", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    args = parser.parse_args(argv)
    asyncio.run(run(args.port, args.clients, args.events, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
