"""The worker pool view in real Chromium against the registry app, a real PostgreSQL and
RabbitMQ's management API: workers as heartbeats and the balancer leave them (load, breaker,
liveness), throughput from the processed counter between two heartbeats, the error rate, and
the frame queues' depths from the broker (a dead-lettered batch stands out)."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import broker
from tests.conftest import Endpoints, Isolated
from tests.e2e.browser import chromium, dashboard, screenshot
from tests.integration.registry_client import new_key, registry_in_process

LOAD = {"in_flight": 1, "queue_depth": 3, "max_jobs": 2, "processing_ema_s": 0.12,
        "latency_ema_s": 0.45, "capacity_per_s": 8.0, "processed": 100, "batches_ok": 8,
        "batches_failed": 1, "batches_timed_out": 1, "batches_data_errors": 4}


async def add_worker(engine: AsyncEngine, worker_id: str, *, heartbeat_ago_s: float,
                     breaker: dict[str, Any], load: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO workers (id, boot_id, worker_type, region, capabilities, queue, status, "
            "in_flight, processed, latency_ema_s, first_seen_at, last_heartbeat_at, load, "
            "liveness, breaker, judged_by, judged_at) VALUES (:id, 'boot-1', 'motion', 'local', "
            "'[\"motion\"]', :queue, 'up', 1, :processed, 0.45, now() - interval '1 hour', "
            "now() - make_interval(secs => :ago), CAST(:load AS jsonb), 'up', "
            "CAST(:breaker AS jsonb), 'b1', now())"),
            {"id": worker_id, "queue": f"frames.worker.{worker_id}", "ago": heartbeat_ago_s,
             "processed": load["processed"], "load": json.dumps(load),
             "breaker": json.dumps(breaker)})


def breaker(state: str, failures: int, calls: int) -> dict[str, Any]:
    return {"state": state, "failure_rate": failures / calls, "calls": calls,
            "failures": failures, "opened_at": None, "probes": {"admitted": 0, "succeeded": 0}}


async def test_the_pool_shows_load_breakers_throughput_errors_and_queues(
    isolated: Isolated, engine: AsyncEngine, endpoints: Endpoints, channel: AbstractChannel,
) -> None:
    await add_worker(engine, "w-1", heartbeat_ago_s=20, breaker=breaker("closed", 1, 5),
                     load=LOAD)
    await add_worker(engine, "w-2", heartbeat_ago_s=300, breaker=breaker("open", 6, 10),
                     load={**LOAD, "processed": 7})
    await channel.default_exchange.publish(aio_pika.Message(b"poison"),
                                           routing_key=broker.FRAMES_DEAD)
    key = await new_key(engine, "viewer")
    async with registry_in_process(isolated, engine, worker_down_after_s=60,
                                   rabbitmq_url=isolated.rabbitmq_url,
                                   rabbitmq_management_url=endpoints.management_url) as base, \
            chromium() as browser, dashboard(browser, base, key) as page:
        w1 = page.locator('#workers tr[data-worker="w-1"]')
        await w1.locator("td.breaker-closed").filter(has_text="closed · 20 %").wait_for(
            timeout=10_000)
        assert await w1.locator("td.queue").inner_text() == "3"
        assert await w1.locator("td.latency").inner_text() == "450 ms"
        # 2 of 10 settled batches failed or timed out (data errors are not the worker's fault).
        assert await w1.locator("td.errors").inner_text() == "20 %"
        assert await w1.locator("td.throughput").inner_text() == "—"  # one reading so far

        # The next heartbeat, 10 s of the worker's time later: 50 batches more.
        async with engine.begin() as conn:
            await conn.execute(text(
                "UPDATE workers SET processed = 150, last_heartbeat_at = last_heartbeat_at "
                "+ interval '10 seconds' WHERE id = 'w-1'"))
        await w1.locator("td.throughput").filter(has_text="5.0/s").wait_for(timeout=10_000)

        w2 = page.locator('#workers tr[data-worker="w-2"]')
        await w2.locator("td.breaker-open").wait_for(timeout=5000)
        assert await w2.locator("td.status-down").count() == 1
        assert await w2.locator("td.heartbeat.stale").count() == 1
        summary = await page.locator("#pool-summary").inner_text()
        assert summary.startswith("1 of 2 workers up · 1 breaker not closed · 3 batches queued")
        await page.locator("#fleet-summary").filter(has_text="balancer b1").wait_for(
            timeout=10_000)

        dead = page.locator(f'#queues tr[data-queue="{broker.FRAMES_DEAD}"]')
        await dead.locator("td.stale").filter(has_text="1").wait_for(timeout=15_000)
        await page.locator(f'#queues tr[data-queue="{broker.FRAMES_INGRESS}"]').wait_for(
            timeout=5000)
        await screenshot(page, "dashboard-pool")
