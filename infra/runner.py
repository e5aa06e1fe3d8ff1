"""Running a role's service until SIGINT/SIGTERM, with a clean, awaited shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)`; the first SIGINT/SIGTERM sets `stop`, a second one cancels."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await main(stop)

    try:
        asyncio.run(runner())
    except asyncio.CancelledError:
        return 130
    return 0


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Stop a helper task of ours and wait until it has unwound.

    The helper's CancelledError is expected and swallowed; one aimed at the caller (cancelled
    while it waits here) is passed on. Swallowing that too once kept an ingest camera
    reconnecting after SIGTERM, until the supervisor's SIGKILL."""
    current = asyncio.current_task()
    # Compared, not tested for zero: in the `finally` of a task that is itself being cancelled
    # the count is already 1, and the helper's own CancelledError must not end that cleanup.
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise
