"""Alert evaluation against the real PostgreSQL and RabbitMQ: rules of every kind fire and
resolve on what the other roles write, each change is an outbox event, webhooks reach a real
HTTP server, and one registry evaluates at a time."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.broker import FRAMES_DEAD, FRAMES_DLX, FRAMES_INGRESS
from infra.db import create_engine
from registry.alerting.webhook import WebhookSender
from registry.service import Registry
from tests.conftest import Endpoints, Isolated
from tests.integration.alerts_harness import (
    add_crossings,
    alert_events,
    alert_settings,
    api_with_webhooks,
    evaluations,
    running,
    sql,
    webhook_receiver,
)
from tests.support import eventually, seed_camera


async def alerts_of(api: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/alerts", params=query)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def make_rule(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    created = await api.post("/api/alert-rules", json={"name": body.pop("name", "rule"), **body})
    assert created.status_code == 201, created.text
    rule: dict[str, Any] = created.json()
    return rule


async def test_count_over_fires_is_acknowledged_resolves_and_keeps_its_cooldown(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine,
) -> None:
    settings = alert_settings(isolated, endpoints)
    line_id = await seed_camera(engine, "door")
    webhooks = WebhookSender(settings)
    async with (webhook_receiver() as hook, api_with_webhooks(settings, engine, webhooks) as api,
                running(settings, engine, webhooks) as evaluator):
        rule = await make_rule(api, name="busy door", kind="count_over", camera_id="door",
                               params={"window_s": 4, "line_id": line_id, "direction": "in"},
                               threshold=2, clear_threshold=0, cooldown_s=3600,
                               webhook_url=hook.url)
        assert rule["site"] == "default" and rule["params"]["clear_for_s"] == 0
        assert "s3cr3t" not in rule["webhook_url"] and "pa55" not in rule["webhook_url"]

        await add_crossings(engine, "door", line_id, 2)
        await add_crossings(engine, "door", line_id, 5, direction="out")  # not counted
        await evaluations(evaluator, 3)
        assert await alerts_of(api) == []  # 2 is not over 2

        await add_crossings(engine, "door", line_id, 1)
        [firing] = await eventually(lambda: alerts_of(api), lambda a: len(a) == 1)
        assert (firing["state"], firing["subject"], firing["camera_id"], firing["value"]) == (
            "firing", "door", "door", 3)
        assert firing["message"] == "busy door: door 3 crossings in the last 4 s (over 2 crossings)"

        acked = await api.post(f"/api/alerts/{firing['id']}/ack")
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acknowledged" and acked.json()["acknowledged_by"]
        again = await api.post(f"/api/alerts/{firing['id']}/ack")
        assert again.status_code == 200 and again.json() == acked.json()  # idempotent

        # The crossings leave the 4 s window: it resolves (acknowledged or not).
        [resolved] = await eventually(lambda: alerts_of(api, state="resolved"),
                                      lambda a: len(a) == 1)
        assert resolved["id"] == firing["id"] and resolved["resolved_at"] is not None
        assert (await api.post(f"/api/alerts/{firing['id']}/ack")).status_code == 409

        # Over the threshold again, inside the cooldown: evaluated, not fired.
        await add_crossings(engine, "door", line_id, 10)
        await evaluations(evaluator, 5)
        assert [a["id"] for a in await alerts_of(api)] == [firing["id"]]

        # The cooldown shortened, it fires again: a new alert, newest first.
        patched = await api.patch(f"/api/alert-rules/{rule['id']}", json={"cooldown_s": 0})
        assert patched.status_code == 200, patched.text
        latest = await eventually(lambda: alerts_of(api), lambda a: len(a) == 2)
        assert latest[0]["state"] == "firing" and latest[1]["id"] == firing["id"]
        assert [a["id"] for a in await alerts_of(api, state="open")] == [latest[0]["id"]]

        events = await alert_events(engine)
        assert [(e.alert_id, e.state) for e in events] == [
            (firing["id"], "firing"), (firing["id"], "acknowledged"),
            (firing["id"], "resolved"), (latest[0]["id"], "firing")]
        first = events[0]
        assert (first.rule_id, first.rule_name, first.kind, first.site, first.camera_id,
                first.region, first.subject, first.value, first.threshold) == (
            rule["id"], "busy door", "count_over", "default", "door", "local", "door", 3, 2)
        assert events[1].acknowledged_by == acked.json()["acknowledged_by"]
        assert events[2].value == 0 and events[2].fired_at == first.fired_at
        await eventually(lambda: asyncio.sleep(0, hook.states()),
                         lambda s: s == ["firing", "acknowledged", "resolved", "firing"])
        assert hook.events[0] == first.model_dump(mode="json")


async def test_camera_status_rule_covers_the_site_and_resolves_a_deleted_camera(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    settings = alert_settings(isolated, endpoints)
    for camera in ("door", "yard", "dock"):
        await seed_camera(engine, camera)
    await sql(engine, "UPDATE cameras SET site = 'other' WHERE id = 'dock'")
    await make_rule(api, name="offline", kind="camera_status", site="default")
    status_row = ("INSERT INTO camera_status (camera_id, status, reason, since) VALUES "
                  "(:camera, :status, :reason, now()) ON CONFLICT (camera_id) DO UPDATE SET "
                  "status = EXCLUDED.status, reason = EXCLUDED.reason")
    async with running(settings, engine):
        await sql(engine, status_row, camera="door", status="live", reason="ok")
        for camera in ("yard", "dock"):  # dock is of another site: not covered
            await sql(engine, status_row, camera=camera, status="stalled",
                      reason="no frame for 5 s from rtsp://admin:pa55word@10.0.0.9/s")
        [stalled] = await eventually(lambda: alerts_of(api), lambda a: len(a) == 1)
        assert (stalled["subject"], stalled["site"]) == ("yard", "default")
        assert stalled["message"] == ("offline: yard is stalled: no frame for 5 s from "
                                      "rtsp://***@10.0.0.9/s")

        await sql(engine, status_row, camera="door", status="frozen", reason="same picture")
        await eventually(lambda: alerts_of(api, state="open"), lambda a: len(a) == 2)
        await sql(engine, status_row, camera="door", status="live", reason="ok")
        await sql(engine, "DELETE FROM cameras WHERE id = 'yard'")
        await eventually(lambda: alerts_of(api, state="open"), lambda a: a == [])
    events = await alert_events(engine)
    assert sorted((e.subject, e.state) for e in events) == [
        ("door", "firing"), ("door", "resolved"), ("yard", "firing"), ("yard", "resolved")]
    gone = next(e for e in events if e.subject == "yard" and e.state == "resolved")
    assert "no longer measured" in gone.message and gone.region is None
    assert all("pa55word" not in e.model_dump_json() for e in events)


async def test_worker_down_fires_for_a_stale_worker_and_not_for_a_stopped_one(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    settings = alert_settings(isolated, endpoints, worker_down_after_s=5)
    worker = ("INSERT INTO workers (id, boot_id, worker_type, region, capabilities, queue, "
              "status, first_seen_at, last_heartbeat_at) VALUES (:id, 'b', 'motion', 'local', "
              "'[\"motion\"]', 'frames.worker.' || :id, :status, now(), now())")
    await sql(engine, worker, id="w-1", status="up")
    await sql(engine, worker, id="w-2", status="stopping")
    await make_rule(api, name="worker down", kind="worker_down", cooldown_s=0)
    async with running(settings, engine) as evaluator:
        await evaluations(evaluator, 3)
        assert await alerts_of(api) == []
        await sql(engine, "UPDATE workers SET last_heartbeat_at = now() - interval '1 minute'")
        [down] = await eventually(lambda: alerts_of(api), lambda a: len(a) == 1)
        assert (down["subject"], down["site"], down["camera_id"]) == ("w-1", None, None)
        assert "no heartbeat for 6" in down["message"]
        await sql(engine, "UPDATE workers SET last_heartbeat_at = now() WHERE id = 'w-1'")
        await eventually(lambda: alerts_of(api, state="resolved"), lambda a: len(a) == 1)
        # The balancer's verdict counts too, even with a fresh heartbeat.
        await sql(engine, "UPDATE workers SET liveness = 'down', judged_by = 'balancer-1'")
        await eventually(lambda: alerts_of(api, state="open"),
                         lambda a: [x["subject"] for x in a] == ["w-1"])


async def test_queue_rules_read_the_broker(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, api: httpx.AsyncClient,
    channel: AbstractChannel,
) -> None:
    settings = alert_settings(isolated, endpoints)
    await make_rule(api, name="dead letters", kind="dlq_not_empty")
    await make_rule(api, name="ingress lag", kind="queue_lag", threshold=3, clear_threshold=0)
    async with running(settings, engine) as evaluator:
        await evaluations(evaluator, 3)
        assert await alerts_of(api) == []
        dlx = await channel.get_exchange(FRAMES_DLX)
        await dlx.publish(aio_pika.Message(b"poison", headers={"x-camcount-error": "bad"}),
                          routing_key=FRAMES_DEAD)
        for i in range(4):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()),
                                                   routing_key=FRAMES_INGRESS)
        # The management API refreshes its counts every few seconds.
        found = await eventually(lambda: alerts_of(api), lambda a: len(a) == 2, timeout_s=60)
        assert {(a["rule_name"], a["subject"], a["value"]) for a in found} == {
            ("dead letters", FRAMES_DEAD, 1), ("ingress lag", FRAMES_INGRESS, 4)}
        await (await channel.get_queue(FRAMES_DEAD)).purge()
        await (await channel.get_queue(FRAMES_INGRESS)).purge()
        await eventually(lambda: alerts_of(api, state="resolved"), lambda a: len(a) == 2,
                         timeout_s=60)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_webhooks_retry_and_a_dead_one_does_not_stop_evaluation(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine,
) -> None:
    settings = alert_settings(isolated, endpoints)
    line_id = await seed_camera(engine, "door")
    webhooks = WebhookSender(settings)
    gave_up = _metric("camcount_alert_webhook_failures_total", reason="gave_up")
    async with webhook_receiver() as gone:
        dead_url = gone.url  # its server stops with the block: connections are refused
    async with (webhook_receiver(fail_first=2) as flaky,
                api_with_webhooks(settings, engine, webhooks) as api,
                running(settings, engine, webhooks) as evaluator):
        for name, url in (("to a dead port", dead_url), ("to a flaky one", flaky.url)):
            await make_rule(api, name=name, kind="count_over", camera_id="door",
                            params={"window_s": 60}, threshold=0, webhook_url=url)
        await add_crossings(engine, "door", line_id, 1)
        await eventually(lambda: asyncio.sleep(0, flaky.states()), lambda s: s == ["firing"])
        assert flaky.attempts == 3  # two 500s, then accepted
        await eventually(lambda: asyncio.sleep(0, _metric(
            "camcount_alert_webhook_failures_total", reason="gave_up")), lambda v: v > gave_up)
        before = evaluator.evaluations
        await evaluations(evaluator, 3)
        assert evaluator.evaluations > before and evaluator.role == "evaluating"


async def test_one_evaluator_at_a_time_and_an_open_alert_survives_a_takeover(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    settings = alert_settings(isolated, endpoints)
    line_id = await seed_camera(engine, "door")
    await make_rule(api, name="busy", kind="count_over", camera_id="door",
                    params={"window_s": 600}, threshold=0)
    await add_crossings(engine, "door", line_id, 1)
    other_engine = create_engine(isolated.database_url)  # another registry's
    try:
        async with contextlib.AsyncExitStack() as first_registry:
            first = await first_registry.enter_async_context(running(settings, engine))
            await eventually(lambda: alerts_of(api), lambda a: len(a) == 1)
            async with running(settings, other_engine) as second:
                await evaluations(first, 3)
                assert (first.role, second.role, second.evaluations) == (
                    "evaluating", "standby", 0)
                await first_registry.aclose()  # the first goes away, the second takes over
                await evaluations(second, 3)
                assert second.role == "evaluating"
        # The open alert was adopted, not fired again.
        assert len(await alerts_of(api)) == 1
        assert [e.state for e in await alert_events(engine)] == ["firing"]
    finally:
        await other_engine.dispose()


async def test_the_registry_runs_the_evaluator(
    isolated: Isolated, endpoints: Endpoints,
) -> None:
    registry = Registry(alert_settings(isolated, endpoints, http_port=0))
    stop = asyncio.Event()
    task = asyncio.create_task(registry.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, registry.health()),
                         lambda h: h["alerts"] == "evaluating")
    finally:
        stop.set()
        await task


async def test_zone_occupancy_latency_and_line_versions(
    isolated: Isolated, endpoints: Endpoints, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    settings = alert_settings(isolated, endpoints, alert_stale_after_s=30)
    line_v1 = await seed_camera(engine, "door")
    async with engine.begin() as conn:
        zone_id = (await conn.execute(text("SELECT id FROM zones"))).scalar_one()
        line_v2 = (await conn.execute(text(
            "INSERT INTO counting_lines (camera_id, name, version, geometry) SELECT camera_id, "
            "name, 2, geometry FROM counting_lines RETURNING id"))).scalar_one()
        await conn.execute(text(
            "INSERT INTO camera_progress (camera_id, stream_epoch, last_seq, tracker_checkpoint, "
            "totals, occupancy, worker_id) VALUES ('door', 1, 1, '{}', '{}', "
            "CAST(:occupancy AS jsonb), 'w-1')"),
            {"occupancy": f'{{"{zone_id}:person": 3, "{zone_id}:car": 2, "999:person": 9}}'})
        await conn.execute(text(
            "INSERT INTO workers (id, boot_id, worker_type, region, capabilities, queue, status, "
            "latency_ema_s, first_seen_at, last_heartbeat_at) VALUES ('w-1', 'b', 'motion', "
            "'local', '[]', 'q', 'up', 4.5, now(), now())"))
    await make_rule(api, name="crowd", kind="zone_occupancy", camera_id="door", threshold=4,
                    clear_threshold=1, params={"zone_id": zone_id, "object_class": "person"})
    await make_rule(api, name="full", kind="zone_occupancy", camera_id="door", threshold=4,
                    params={"zone_id": zone_id})
    await make_rule(api, name="slow", kind="latency", threshold=2)
    await make_rule(api, name="entries", kind="count_over", camera_id="door", threshold=1,
                    params={"window_s": 600, "line_id": line_v1})
    await add_crossings(engine, "door", line_v2, 2)  # counted: the same line, edited
    async with running(settings, engine) as evaluator:
        found = await eventually(lambda: alerts_of(api), lambda a: len(a) == 3)
        assert {(a["rule_name"], a["subject"], a["value"]) for a in found} == {
            ("full", "door", 5), ("slow", "w-1", 4.5), ("entries", "door", 2)}
        assert next(a for a in found if a["rule_name"] == "slow")["message"] == (
            "slow: w-1 capture-to-commit latency 4.50 s (over 2 s)")
        # Stale occupancy is unknown: the open alert neither resolves nor changes.
        await sql(engine, "UPDATE camera_progress SET occupancy = '{}', "
                  "updated_at = now() - interval '1 minute'")
        await evaluations(evaluator, 3)
        assert len(await alerts_of(api, state="open")) == 3
        await sql(engine, "UPDATE camera_progress SET updated_at = now()")
        await eventually(lambda: alerts_of(api, state="resolved"),
                         lambda a: [x["rule_name"] for x in a] == ["full"])
