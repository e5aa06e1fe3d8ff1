"""cancel_and_wait swallows its helper's cancellation, never its caller's."""

from __future__ import annotations

import asyncio

import pytest

from infra.runner import cancel_and_wait


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
