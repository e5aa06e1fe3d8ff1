"""The alerts API against a real PostgreSQL: rule validation by kind, site scoping with no
existence oracle, roles, masking of webhook secrets, pagination, and deleting a rule."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import ALL_SITES
from tests.conftest import Isolated
from tests.integration.alerts_harness import alert_events, sql
from tests.integration.registry_client import bearer, new_key, registry
from tests.support import seed_camera

# A literal address: webhook hosts are resolved when a rule is written.
HOOK = "https://hooks:pa55@203.0.113.7/services/T0/B0/s3cr3t?token=abc"


async def two_sites(engine: AsyncEngine) -> dict[str, int]:
    """Cameras shop-a/a-1 and shop-b/b-1, each with a line and a zone; their line ids."""
    lines = {"a-1": await seed_camera(engine, "a-1"), "b-1": await seed_camera(engine, "b-1")}
    await sql(engine, "UPDATE cameras SET site = 'shop-' || substr(id, 1, 1)")
    return lines


async def fire(engine: AsyncEngine, rule_id: int, subject: str, site: str | None,
               camera_id: str | None, state: str = "firing") -> int:
    """An alert row as the evaluator writes one."""
    async with engine.begin() as conn:
        found = await conn.execute(text(
            "INSERT INTO alerts (rule_id, site, camera_id, subject, state, message, value, "
            "threshold, fired_at) VALUES (:rule, :site, :camera, :subject, :state, 'm', 5, 1, "
            "now()) RETURNING id"),
            {"rule": rule_id, "site": site, "camera": camera_id, "subject": subject,
             "state": state})
        return int(found.scalar_one())


def loc(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [e["loc"] for e in response.json()["detail"]]


async def test_rules_are_checked_against_their_kind(
    isolated: Isolated, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    lines = await two_sites(engine)
    count = {"name": "busy", "kind": "count_over", "camera_id": "a-1", "threshold": 5,
             "params": {"window_s": 60}}

    async def post(**changes: Any) -> httpx.Response:
        return await api.post("/api/alert-rules", json={**count, **changes})

    assert loc(await post(params={"window_s": 60, "bogus": 1})) == [
        ["body", "params", "bogus"]]
    assert loc(await post(params={})) == [["body", "params", "window_s"]]
    assert loc(await post(params={"window_s": -1})) == [["body", "params", "window_s"]]
    assert loc(await post(params={"window_s": 60, "line_id": lines["b-1"]})) == [
        ["body", "params", "line_id"]]  # a line of another camera
    assert loc(await post(camera_id=None, params={"window_s": 60, "line_id": lines["a-1"]})
               ) == [["body", "params", "line_id"]]
    assert loc(await post(threshold=None)) == [["body", "threshold"]]
    assert loc(await post(clear_threshold=6)) == [["body", "clear_threshold"]]
    infinite = await api.post("/api/alert-rules", headers={"content-type": "application/json"},
                              content=b'{"name": "x", "kind": "latency", "threshold": 1e400}')
    assert loc(infinite) == [["body", "threshold"]]
    assert loc(await post(camera_id="nope")) == [["body", "camera_id"]]
    assert loc(await post(kind="zone_occupancy", camera_id=None, params={"zone_id": 1})
               ) == [["body", "camera_id"]]
    assert loc(await post(kind="camera_status", params={})) == [["body", "threshold"]]
    assert loc(await post(kind="camera_status", threshold=None,
                          params={"statuses": ["disabled"]})) == [
        ["body", "params", "statuses", 0]]
    assert loc(await post(kind="worker_down", threshold=None, params={})) == [
        ["body", "camera_id"]]
    assert loc(await post(webhook_url="ftp://x/y")) == [["body", "webhook_url"]]
    assert loc(await post(unknown=1)) == [["body", "unknown"]]
    assert loc(await post(name="bad\x00name")) == [["body", "name"]]

    created = await post(clear_threshold=2, webhook_url=HOOK)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["site"] == "shop-a" and rule["params"] == {
        "window_s": 60, "clear_for_s": 0, "line_id": None, "object_class": None,
        "direction": None}
    assert rule["webhook_url"] == "https://hooks:***@203.0.113.7/***"
    assert "s3cr3t" not in created.text and "pa55" not in created.text

    # PATCH: the masked webhook round-trips, fields are checked with the stored ones.
    url = f"/api/alert-rules/{rule['id']}"
    same = await api.patch(url, json={"webhook_url": rule["webhook_url"], "threshold": 9})
    assert same.status_code == 200 and same.json()["threshold"] == 9
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT webhook_url FROM alert_rules"))).scalar_one()
    assert stored == HOOK
    assert loc(await api.patch(url, json={"clear_threshold": 10})) == [["body", "clear_threshold"]]
    assert loc(await api.patch(url, json={"webhook_url": "https://other.example/***"})) == [
        ["body", "webhook_url"]]
    assert loc(await api.patch(url, json={"kind": "latency"})) == [["body", "kind"]]
    assert loc(await api.patch(url, json={"threshold": None})) == [["body", "threshold"]]
    assert loc(await api.patch(url, json={"params": {"window_s": 0}})) == [
        ["body", "params", "window_s"]]
    off = await api.patch(url, json={"enabled": False, "webhook_url": None})
    assert off.status_code == 200 and off.json()["webhook_url"] is None
    assert (await api.patch("/api/alert-rules/99999", json={})).status_code == 404
    assert (await api.get(f"/api/alert-rules/{2**63}")).status_code == 422

    status_rule = await post(kind="camera_status", threshold=None, camera_id=None,
                             site="shop-b", params={})
    assert status_rule.status_code == 201, status_rule.text
    assert status_rule.json()["params"]["statuses"] == [
        "auth_failed", "frozen", "stalled", "unassigned", "unreachable"]
    assert status_rule.json()["threshold"] == 0


async def test_a_key_of_one_site_sees_only_that_site(
    isolated: Isolated, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    await two_sites(engine)
    rules = {}
    for camera in ("a-1", "b-1"):
        made = await api.post("/api/alert-rules", json={
            "name": camera, "kind": "camera_status", "camera_id": camera})
        assert made.status_code == 201, made.text
        rules[camera] = made.json()["id"]
    fleet = (await api.post("/api/alert-rules", json={"name": "dlq", "kind": "dlq_not_empty"}))
    assert fleet.status_code == 201 and fleet.json()["site"] is None
    alerts = {"a-1": await fire(engine, rules["a-1"], "a-1", "shop-a", "a-1"),
              "b-1": await fire(engine, rules["b-1"], "b-1", "shop-b", "b-1"),
              "dlq": await fire(engine, fleet.json()["id"], "frames.dead", None, None)}

    shop_a = await new_key(engine, "operator", "shop-a")
    async with registry(isolated, engine, key=shop_a) as a:
        listed = (await a.get("/api/alert-rules")).json()
        assert [r["id"] for r in listed] == [rules["a-1"]]
        assert [x["id"] for x in (await a.get("/api/alerts")).json()] == [alerts["a-1"]]
        for hidden in (rules["b-1"], fleet.json()["id"], 424242):
            for method in ("GET", "PATCH", "DELETE"):
                response = await a.request(method, f"/api/alert-rules/{hidden}",
                                           json={} if method == "PATCH" else None)
                assert response.status_code == 404, (method, hidden, response.text)
                assert response.json() == {"detail": f"no alert rule {hidden}"}
        for hidden in (alerts["b-1"], alerts["dlq"], 424242):
            assert (await a.get(f"/api/alerts/{hidden}")).json() == {
                "detail": f"no alert {hidden}"}
            ack = await a.post(f"/api/alerts/{hidden}/ack")
            assert ack.status_code == 404 and ack.json() == {"detail": f"no alert {hidden}"}
        # Another site's camera reads as missing; fleet kinds need a key of every site.
        refused = await a.post("/api/alert-rules", json={
            "name": "x", "kind": "camera_status", "camera_id": "b-1"})
        assert loc(refused) == [["body", "camera_id"]] and "b-1" in refused.text
        assert refused.json()["detail"][0]["msg"] == "no camera 'b-1'"
        for kind in ("worker_down", "queue_lag", "latency", "dlq_not_empty"):
            assert (await a.post("/api/alert-rules", json={
                "name": "x", "kind": kind, "threshold": 1})).status_code == 403
        assert (await a.post("/api/alert-rules", json={
            "name": "x", "kind": "camera_status", "site": "shop-b"})).status_code == 403
        own = await a.post("/api/alert-rules", json={"name": "all mine",
                                                      "kind": "camera_status"})
        assert own.status_code == 201 and own.json()["site"] == "shop-a"
        acked = await a.post(f"/api/alerts/{alerts['a-1']}/ack")
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"

    viewer = await new_key(engine, "viewer", ALL_SITES)
    async with registry(isolated, engine, key=viewer) as v:
        assert len((await v.get("/api/alerts")).json()) == 3
        assert (await v.get(f"/api/alerts/{alerts['dlq']}")).status_code == 200
        writes = [v.post("/api/alert-rules", json={"name": "x", "kind": "dlq_not_empty"}),
                  v.patch(f"/api/alert-rules/{rules['a-1']}", json={"enabled": False}),
                  v.delete(f"/api/alert-rules/{rules['a-1']}"),
                  v.post(f"/api/alerts/{alerts['b-1']}/ack")]
        for write in writes:
            response = await write
            assert response.status_code == 403, response.text
    assert [e.state for e in await alert_events(engine)] == ["acknowledged"]


async def test_alerts_are_newest_first_filtered_and_paginated(
    isolated: Isolated, engine: AsyncEngine, api: httpx.AsyncClient,
) -> None:
    await two_sites(engine)
    rule = (await api.post("/api/alert-rules", json={
        "name": "r", "kind": "camera_status"})).json()
    ids = [await fire(engine, rule["id"], f"cam-{i}", None, f"cam-{i}",
                      "resolved" if i % 2 else "firing") for i in range(5)]
    await sql(engine, "UPDATE alerts SET fired_at = now() - make_interval(secs => 100 - id)")
    newest = [x["id"] for x in (await api.get("/api/alerts")).json()]
    assert newest == ids[::-1]
    page = (await api.get("/api/alerts", params={"limit": 2, "offset": 1})).json()
    assert [x["id"] for x in page] == ids[::-1][1:3]
    assert [x["id"] for x in (await api.get("/api/alerts", params={"state": "resolved"})
                              ).json()] == [ids[3], ids[1]]
    assert [x["id"] for x in (await api.get("/api/alerts", params={"camera_id": "cam-2"})
                              ).json()] == [ids[2]]
    for bad in ({"limit": 0}, {"limit": 100_000}, {"state": "bogus"},
                {"camera_id": "Not A Slug"}, {"rule_id": 0}):
        assert (await api.get("/api/alerts", params=bad)).status_code == 422, bad


@pytest.mark.parametrize("state", ["firing", "acknowledged"])
async def test_deleting_a_rule_resolves_its_open_alerts_first(
    isolated: Isolated, engine: AsyncEngine, api: httpx.AsyncClient, state: str,
) -> None:
    await two_sites(engine)
    rule = (await api.post("/api/alert-rules", json={
        "name": "gone soon", "kind": "camera_status", "camera_id": "a-1"})).json()
    alert_id = await fire(engine, rule["id"], "a-1", "shop-a", "a-1", state)
    assert (await api.delete(f"/api/alert-rules/{rule['id']}")).status_code == 204
    assert (await api.get(f"/api/alerts/{alert_id}")).status_code == 404
    assert (await api.delete(f"/api/alert-rules/{rule['id']}")).status_code == 404
    [event] = await alert_events(engine)
    assert (event.alert_id, event.state, event.camera_id, event.site) == (
        alert_id, "resolved", "a-1", "shop-a")
    assert event.message == "gone soon: a-1: the rule was deleted; resolved"


async def test_unauthenticated_requests_are_refused(
    isolated: Isolated, engine: AsyncEngine,
) -> None:
    async with registry(isolated, engine) as api:
        for path in ("/api/alerts", "/api/alert-rules", "/api/alerts/1"):
            response = await api.get(path, headers=bearer("cck_nope"))
            assert response.status_code == 401, path
