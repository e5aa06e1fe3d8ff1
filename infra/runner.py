"""Running a role's service until SIGINT/SIGTERM, with a clean, awaited, and bounded shutdown.

Exit codes: 0 a clean stop; 130 a second signal cancelled the shutdown; 124 the shutdown took
longer than its timeout and what still hung was abandoned (one log line names it). Kubernetes
and systemd SIGKILL after a grace period, and a role whose broker and database are gone must not
sit in a reconnect loop, a consumer cancel or a pool close until then."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sysconfig
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("camcount.shutdown")

DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
EXIT_ABANDONED = 124
EXIT_SECOND_SIGNAL = 130
# After the timeout the main task is cancelled; its cleanup gets this much more before the
# process ends with os._exit (a cleanup that blocks the event loop, or a thread the interpreter
# would join at exit, cannot be cancelled).
HARD_EXIT_AFTER_S = 1.5
# One shutdown step (closing a broker connection, a consumer, a database pool): each waits on
# a server that may be gone, and several of them share the shutdown timeout.
STEP_TIMEOUT_S = 2.0
_STDLIB = sysconfig.get_paths()["stdlib"]


def run_until_signalled(
    main: Callable[[asyncio.Event], Awaitable[None]],
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
) -> int:
    """Run `main(stop)`; the first SIGINT/SIGTERM sets `stop`, a second one cancels, and a
    shutdown still running `shutdown_timeout_s` after the first is cancelled, then cut short."""
    outcome = {"code": 0}

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None

        def abandon() -> None:
            if task.done():
                return
            pending = sorted({_where(t) for t in asyncio.all_tasks()
                              if t is not task and not t.done()} | {_where(task)})
            log.warning("shutdown took over %gs: abandoned %s", shutdown_timeout_s,
                        ", ".join(pending) or "the main task's cleanup")
            outcome["code"] = EXIT_ABANDONED
            task.cancel()

        def on_signal() -> None:
            if stop.is_set():
                outcome["code"] = EXIT_SECOND_SIGNAL
                task.cancel()
                return
            stop.set()
            loop.call_later(shutdown_timeout_s, abandon)
            _arm_hard_exit(shutdown_timeout_s + HARD_EXIT_AFTER_S)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await main(stop)

    try:
        asyncio.run(runner())
    except asyncio.CancelledError:
        return outcome["code"] or EXIT_SECOND_SIGNAL
    return outcome["code"]


def _where(task: asyncio.Task[Any]) -> str:
    """The task's coroutine and the innermost line its await chain waits on (the operator's
    clue to what hung)."""
    coro: Any = task.get_coro()
    name = str(getattr(coro, "__qualname__", task.get_name()))
    where = ""
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        frame = coro.cr_frame
        if not frame.f_code.co_filename.startswith(_STDLIB):  # asyncio's own lines say little
            where = f" at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        coro = coro.cr_await
    return name + where


def _arm_hard_exit(after_s: float) -> None:
    def hard_exit() -> None:
        log.error("shutdown still running %gs after the signal: abandoned everything, exiting",
                  after_s)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)

    timer = threading.Timer(after_s, hard_exit)
    timer.daemon = True  # it must never be what keeps the process alive
    timer.start()


async def shutdown_step(step: Awaitable[Any], what: str,
                        timeout_s: float = STEP_TIMEOUT_S) -> bool:
    """Await one shutdown step, abandoning it (with a log line) after `timeout_s`: its server
    may be gone, and a robust connection waits for it to come back. True if it completed."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.wait({task}, timeout=timeout_s)
    finally:
        if not task.done():
            # Cancelled, not awaited: some library waits swallow the first cancellation, and
            # awaiting them (as wait_for does) would hang the shutdown all the same.
            task.cancel()
    if not task.done():
        log.warning("abandoned %s after %gs", what, timeout_s)
        return False
    if task.cancelled():
        log.warning("%s was cancelled", what)
        return False
    if (exc := task.exception()) is not None:  # the process is going away: say so, go on
        log.warning("%s failed (%s); going on", what, exc)
        return False
    return True


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
