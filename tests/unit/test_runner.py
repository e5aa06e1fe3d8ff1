"""cancel_and_wait swallows its helper's cancellation, never its caller's; a shutdown step or a
whole shutdown that hangs is abandoned."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from infra.runner import cancel_and_wait, shutdown_step

REPO = Path(__file__).resolve().parents[2]


async def _stubborn() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)  # unwinding takes a moment, as closing a session does
        raise


async def test_the_helpers_cancellation_is_swallowed() -> None:
    helper = asyncio.create_task(_stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(helper)
    assert helper.cancelled()


async def test_a_caller_cancelled_while_waiting_stays_cancelled() -> None:
    reached_after = False

    async def caller() -> None:
        nonlocal reached_after
        helper = asyncio.create_task(_stubborn())
        await asyncio.sleep(0)
        await cancel_and_wait(helper)
        reached_after = True  # a swallowed cancel would carry on here (and reconnect...)
        await asyncio.sleep(3600)

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)  # the caller is inside cancel_and_wait now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)  # a swallowed cancel times out here instead
    assert not reached_after


async def test_a_cancelled_callers_cleanup_stops_every_helper() -> None:
    """In the `finally` of a task being cancelled, each helper's own cancellation is expected:
    the cleanup goes on to the next helper, and the caller still ends cancelled."""
    first = asyncio.create_task(_stubborn())
    second = asyncio.create_task(_stubborn())
    cleaned = False

    async def caller() -> None:
        nonlocal cleaned
        try:
            await asyncio.sleep(3600)
        finally:
            await cancel_and_wait(first)
            await cancel_and_wait(second)
            cleaned = True

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert first.cancelled() and second.cancelled() and cleaned


async def _swallows_one_cancel() -> None:
    """As some library waits on a lost broker do: the first cancellation is not the end."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(3600)


async def test_a_step_that_swallows_its_cancellation_is_abandoned() -> None:
    # wait_for would await the cancelled step, and hang with it: the bound here is the proof.
    done = await asyncio.wait_for(shutdown_step(_swallows_one_cancel(), "a stuck close", 0.05), 5)
    assert done is False


async def test_a_step_that_completes_or_fails_says_so() -> None:
    async def fails() -> None:
        raise ConnectionError("broker gone")

    assert await shutdown_step(asyncio.sleep(0), "a quick close") is True
    assert await shutdown_step(fails(), "a failing close") is False


CHILD = """
import asyncio, sys, time
from infra.runner import run_until_signalled

async def main(stop: asyncio.Event) -> None:
    print("ready", flush=True)
    await stop.wait()
    if sys.argv[1] == "hangs":
        await asyncio.sleep(3600)
    elif sys.argv[1] == "blocks":
        try:
            await asyncio.sleep(3600)
        finally:
            time.sleep(3600)  # a cleanup that blocks the event loop: only os._exit ends it

sys.exit(run_until_signalled(main, shutdown_timeout_s=0.3))
"""


@pytest.mark.parametrize(("behaviour", "code"), [("clean", 0), ("hangs", 124), ("blocks", 124)])
def test_sigterm_ends_the_process_whatever_its_shutdown_does(behaviour: str, code: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, behaviour], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)  # not a timing claim: a hang fails here
    finally:
        child.kill()
    assert child.returncode == code, err
    if code:
        assert "abandoned" in err
