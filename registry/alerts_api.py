"""Routes for alert rules and alerts.

Operators write rules and acknowledge alerts; viewers read. A key of one site sees the rules
and alerts of that site only: anything else, fleet-wide ones (site null) included, answers 404
exactly like something that does not exist. Fleet kinds (worker_down, queue_lag, latency,
dlq_not_empty) are about the shared workers and queues: only keys of every site have them.
A rule's webhook URL must point where webhooks may be sent (registry/webhook_urls.py).

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time, and the page-size bound closes over settings.
"""

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.alerting import AlertKind
from registry.alerting import alert_store, rule_store
from registry.alerting.api_models import (
    SLUG_PATTERN,
    AlertOut,
    RuleIn,
    RuleOut,
    RulePatch,
    StateFilter,
    checked_camera,
    checked_params,
    checked_thresholds,
    refused,
    webhook_to_store,
)
from registry.alerting.events import Change
from registry.alerting.params import FLEET_KINDS, MAX_DB_ID
from registry.alerting.rule_store import CameraRef, StoredRule
from registry.alerting.webhook import WebhookSender, mask_webhook
from registry.auth import Auth, Principal
from registry.camera_urls import Resolver, system_resolver
from registry.errors import AUTHENTICATED, ErrorOut, error_responses
from registry.settings import RegistrySettings
from registry.webhook_urls import WebhookPolicy, WebhookUrlGuard, WebhookUrlRefused

DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
CameraFilter = Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=63)]


def submit_webhooks(request: Request, changes: Iterable[Change]) -> None:
    """Webhooks of changes made by a request (the registry's service puts its sender on the
    app's state; an app without one, as in tests of the API alone, sends none)."""
    sender: WebhookSender | None = getattr(request.app.state, "alert_webhooks", None)
    for change in changes:
        if sender is not None and change.webhook_url:
            sender.submit(change.webhook_url, change.event)


async def _check_webhook(guard: WebhookUrlGuard, url: str | None) -> None:
    """A 422 naming webhook_url when it points somewhere webhooks are never sent (or the
    masked form of a stored URL: see webhook_to_store)."""
    if url is None:
        return
    try:
        await guard.check(url)
    except WebhookUrlRefused as exc:
        raise refused(("webhook_url",), str(exc), mask_webhook(url)) from None


async def _check_lines_and_zones(engine: AsyncEngine, camera_id: str | None,
                                 params: Mapping[str, Any]) -> None:
    if camera_id is None:
        return
    line_id, zone_id = params.get("line_id"), params.get("zone_id")
    if line_id is not None and not await rule_store.camera_has(engine, camera_id,
                                                                line_id=line_id):
        raise refused(("params", "line_id"), f"camera {camera_id!r} has no line {line_id}",
                      line_id)
    if zone_id is not None and not await rule_store.camera_has(engine, camera_id,
                                                                zone_id=zone_id):
        raise refused(("params", "zone_id"), f"camera {camera_id!r} has no zone {zone_id}",
                      zone_id)


def _site_of_new_rule(caller: Principal, body: RuleIn, camera: CameraRef | None) -> str | None:
    if body.kind in FLEET_KINDS:
        if body.site is not None:
            raise refused(("site",), f"a {body.kind} rule is fleet-wide: leave site out",
                          body.site)
        return None
    if camera is not None:
        if body.site is not None and body.site != camera.site:
            raise refused(("site",), f"camera {camera.id!r} belongs to site {camera.site!r}",
                          body.site)
        return camera.site
    if caller.all_sites:
        return body.site  # None: every camera of every site
    if body.site is not None and body.site != caller.site:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"a key of site {caller.site!r} makes rules of that site only")
    return caller.site


def _planned(stored: StoredRule, sent: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a PATCH changes in `stored`, checked as on creation."""
    merged = {**stored.__dict__, **sent}
    if "params" in sent:
        merged["params"] = checked_params(stored.kind, sent["params"])
    checked_camera(stored.kind, stored.camera_id, merged["params"])
    merged["threshold"], merged["clear_threshold"] = checked_thresholds(
        stored.kind, merged["threshold"], merged["clear_threshold"])
    if "webhook_url" in sent:
        merged["webhook_url"] = webhook_to_store(sent["webhook_url"], stored.webhook_url)
    names = ("name", "params", "threshold", "clear_threshold", "for_s", "cooldown_s",
             "webhook_url", "enabled")
    return {n: merged[n] for n in names if merged[n] != getattr(stored, n)}


def alerts_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth,
                  resolver: Resolver = system_resolver) -> APIRouter:
    router = APIRouter(tags=["alerts"], responses=AUTHENTICATED)
    webhooks = WebhookUrlGuard(WebhookPolicy.from_settings(settings), resolver)
    Operator = Annotated[Principal, Depends(auth.operator)]
    Viewer = Annotated[Principal, Depends(auth.viewer)]
    Limit = Annotated[int, Query(ge=1, le=settings.max_page_size)]
    Offset = Annotated[int, Query(ge=0, le=1_000_000)]
    not_found = error_responses(404)

    @router.post("/api/alert-rules", status_code=status.HTTP_201_CREATED)
    async def create_rule(body: RuleIn, caller: Operator) -> RuleOut:
        """A rule; its params are checked against its kind (see the kinds' models)."""
        if body.kind in FLEET_KINDS and not caller.all_sites:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{body.kind} rules are fleet-wide: they need a key of every "
                                "site")
        params = checked_params(body.kind, body.params)
        checked_camera(body.kind, body.camera_id, params)
        threshold, clear = checked_thresholds(body.kind, body.threshold, body.clear_threshold)
        camera = None
        if body.camera_id is not None:
            camera = await rule_store.find_camera(engine, body.camera_id, caller.site_filter)
            if camera is None:
                raise refused(("camera_id",), f"no camera {body.camera_id!r}", body.camera_id)
        await _check_lines_and_zones(engine, body.camera_id, params)
        site = _site_of_new_rule(caller, body, camera)
        await _check_webhook(webhooks, body.webhook_url)
        rule = await rule_store.create_rule(engine, {
            "site": site, "name": body.name, "kind": body.kind, "camera_id": body.camera_id,
            "params": params, "threshold": threshold, "clear_threshold": clear,
            "for_s": body.for_s, "cooldown_s": body.cooldown_s,
            "webhook_url": webhook_to_store(body.webhook_url, None), "enabled": body.enabled,
        })
        return RuleOut.of(rule)

    @router.get("/api/alert-rules")
    async def list_rules(caller: Viewer, limit: Limit = 100, offset: Offset = 0,
                         kind: AlertKind | None = None, camera_id: CameraFilter = None,
                         ) -> list[RuleOut]:
        """The rules the key sees, oldest first."""
        found = await rule_store.list_rules(engine, caller.site_filter, limit=limit,
                                            offset=offset, kind=kind, camera_id=camera_id)
        return [RuleOut.of(r) for r in found]

    @router.get("/api/alert-rules/{rule_id}", responses=not_found)
    async def get_rule(rule_id: DbId, caller: Viewer) -> RuleOut:
        found = await rule_store.get_rule(engine, rule_id, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert rule {rule_id}")
        return RuleOut.of(found)

    @router.patch("/api/alert-rules/{rule_id}", responses=not_found)
    async def update_rule(rule_id: DbId, patch: RulePatch, caller: Operator) -> RuleOut:
        """Change the fields sent. Takes effect at the next evaluation; an open alert whose
        value is now at or below the clear threshold resolves then."""
        sent = patch.model_dump(exclude_unset=True)
        stored = await rule_store.get_rule(engine, rule_id, caller.site_filter)
        if stored is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert rule {rule_id}")
        if "params" in sent:
            await _check_lines_and_zones(engine, stored.camera_id,
                                         checked_params(stored.kind, sent["params"]))
        if "webhook_url" in sent:
            new_url = webhook_to_store(sent["webhook_url"], stored.webhook_url)
            if new_url != stored.webhook_url:
                await _check_webhook(webhooks, new_url)
        updated = await rule_store.update_rule(engine, rule_id, caller.site_filter,
                                               lambda current: _planned(current, sent))
        if updated is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert rule {rule_id}")
        return RuleOut.of(updated)

    @router.delete("/api/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT,
                   responses=not_found)
    async def delete_rule(rule_id: DbId, caller: Operator, request: Request) -> None:
        """Delete a rule with its alerts; its open alerts are resolved first (broadcast)."""
        changes = await alert_store.delete_rule(engine, rule_id, caller.site_filter)
        if changes is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert rule {rule_id}")
        submit_webhooks(request, changes)

    @router.get("/api/alerts")
    async def list_alerts(caller: Viewer, limit: Limit = 100, offset: Offset = 0,
                          state: StateFilter | None = None, camera_id: CameraFilter = None,
                          rule_id: Annotated[int | None, Query(ge=1, le=MAX_DB_ID)] = None,
                          ) -> list[AlertOut]:
        """The alerts the key sees, newest first; `state=open`: firing or acknowledged."""
        found = await alert_store.list_alerts(
            engine, caller.site_filter, limit=limit, offset=offset,
            states=alert_store.state_filter(state), camera_id=camera_id, rule_id=rule_id)
        return [AlertOut.of(a) for a in found]

    @router.get("/api/alerts/{alert_id}", responses=not_found)
    async def get_alert(alert_id: DbId, caller: Viewer) -> AlertOut:
        found = await alert_store.get_alert(engine, alert_id, caller.site_filter)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
        return AlertOut.of(found)

    @router.post("/api/alerts/{alert_id}/ack", responses={
        **not_found,
        409: {"model": ErrorOut, "description": "the alert is resolved already"}})
    async def acknowledge(alert_id: DbId, caller: Operator, request: Request) -> AlertOut:
        """Firing -> acknowledged. Acknowledging again changes nothing (200); a resolved
        alert cannot be acknowledged (409)."""
        done = await alert_store.acknowledge(engine, alert_id, caller.site_filter,
                                             caller.key_id)
        if done is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
        alert, outcome, change = done
        if outcome == "conflict":
            raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is resolved")
        submit_webhooks(request, [] if change is None else [change])
        return AlertOut.of(alert)

    return router
