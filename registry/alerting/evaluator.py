"""The alert evaluator: every ALERT_EVAL_S, measure every enabled rule, step the state machine
(rules.py) and write the transitions with their outbox rows; then hand them to the webhooks.

One registry evaluates at a time: the one holding a PostgreSQL advisory lock on a dedicated
connection. Everything it reads and writes goes through that same connection, so a registry
that lost its connection (and with it the lock) cannot write another alert: its next statement
fails. The others stand by, trying the lock every interval, and one takes over within an
interval of the holder's connection closing (a crash closes it; the server notices a vanished
host within its TCP keepalive time).

State lives in `alerts`: an open alert is adopted, not re-fired, after a restart or takeover,
and the cooldowns are re-read from the last resolutions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.secrets import mask_credentials
from registry.alerting import metrics
from registry.alerting.alert_store import last_resolutions, open_alerts, write_transitions
from registry.alerting.events import Change
from registry.alerting.measures import Measures, SubjectReadings
from registry.alerting.queues import QueueStats
from registry.alerting.rule_store import StoredRule, all_rules
from registry.alerting.rules import Board, Policy
from registry.alerting.webhook import WebhookSender
from registry.settings import RegistrySettings

log = logging.getLogger("camcount.registry.alerts")

# pg_try_advisory_lock key: "camalert" in ASCII. Advisory locks are per database.
LOCK_KEY = int.from_bytes(b"camalert", "big")

Role = Literal["starting", "standby", "evaluating"]


class Evaluator:
    def __init__(self, settings: RegistrySettings, engine: AsyncEngine,
                 webhooks: WebhookSender | None, *, queues: QueueStats | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._settings, self._engine, self._webhooks = settings, engine, webhooks
        self._queues, self._clock, self._sleep = queues, clock, sleep
        self.role: Role = "starting"
        self.evaluations = 0
        self._bad_rules: set[tuple[int, str]] = set()

    async def run(self) -> None:
        """Until cancelled: stand by until this registry holds the lock, then evaluate."""
        queues = self._queues or QueueStats(self._settings)
        try:
            while True:
                try:
                    await self._hold_and_evaluate(queues)
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("alert evaluation lost its database connection (%s); "
                                "trying again", mask_credentials(str(exc)).splitlines()[0][:200])
                self._set_role("standby")
                await self._sleep(self._settings.alert_eval_s)
        finally:
            metrics.EVALUATING.set(0)
            if self._queues is None:
                await queues.aclose()

    def _set_role(self, role: Role) -> None:
        if role == "standby" and self.role != "standby":
            log.info("alert evaluator standing by: another registry evaluates")
        self.role = role
        metrics.EVALUATING.set(1 if role == "evaluating" else 0)

    async def _hold_and_evaluate(self, queues: QueueStats) -> None:
        async with self._engine.connect() as conn:
            locked = (await conn.execute(select(func.pg_try_advisory_lock(LOCK_KEY)))
                      ).scalar_one()
            await conn.commit()
            if not locked:
                return  # back to the pool: it holds nothing
            try:
                board = Board()
                async with conn.begin():
                    board.seed(await last_resolutions(conn, self._clock()))
                self._set_role("evaluating")
                log.info("alert evaluator ready: evaluating every %g s",
                         self._settings.alert_eval_s)
                while True:
                    started = time.monotonic()
                    await self._evaluate_once(conn, board, queues)
                    elapsed = time.monotonic() - started
                    await self._sleep(max(0.0, self._settings.alert_eval_s - elapsed))
            finally:
                # Never back into the pool: it would keep holding the session's lock.
                await conn.invalidate()

    async def _evaluate_once(self, conn: AsyncConnection, board: Board,
                             queues: QueueStats) -> None:
        try:
            with metrics.EVALUATION_SECONDS.time():
                changes = await self.evaluate(conn, board, queues)
        except Exception as exc:
            # Counted and retried at the next interval: the evaluator must not take the
            # registry (its API) down with it.
            metrics.EVALUATION_ERRORS.inc()
            if isinstance(exc, SQLAlchemyError):
                log.warning("alert evaluation failed: %s",
                            mask_credentials(str(exc)).splitlines()[0][:300])
            else:
                log.exception("alert evaluation failed")
            await conn.rollback()
            await conn.execute(select(1))  # a broken connection ends the hold here
            await conn.commit()
            return
        for change in changes:
            metrics.TRANSITIONS.labels(change.event.kind, change.event.state).inc()
            if change.webhook_url and self._webhooks is not None:
                self._webhooks.submit(change.webhook_url, change.event)

    async def evaluate(self, conn: AsyncConnection, board: Board,
                       queues: QueueStats | None) -> list[Change]:
        """One evaluation in one transaction: what it committed."""
        now = self._clock()
        async with conn.begin():
            rules = await all_rules(conn)
            opened, states = await open_alerts(conn)
            measures = Measures(conn, queues, now,
                                worker_down_after_s=self._settings.worker_down_after_s,
                                stale_after_s=self._settings.alert_stale_after_s)
            policies: dict[int, Policy] = {}
            found: dict[int, SubjectReadings | None] = {}
            for rule in rules:
                if not rule.enabled:
                    continue
                policies[rule.id], found[rule.id] = await self._measure(rule, measures)
            values = {rule_id: None if got is None else {s: r.value for s, r in got.items()}
                      for rule_id, got in found.items()}
            transitions = board.step(now, policies, values, opened)
            changes = await write_transitions(conn, transitions, {r.id: r for r in rules},
                                              found)
        self.evaluations += 1
        metrics.EVALUATIONS.inc()
        for state, n in states.items():
            metrics.OPEN.labels(state).set(n)
        return changes

    async def _measure(self, rule: StoredRule, measures: Measures,
                       ) -> tuple[Policy, SubjectReadings | None]:
        try:
            params, policy = rule.parsed(), rule.policy()
        except ValidationError as exc:
            # A rule stored by another release with params this one cannot read: hold its
            # alerts as they are (unknown) rather than resolve or fire them on a guess.
            if (rule.id, rule.updated_at.isoformat()) not in self._bad_rules:
                self._bad_rules.add((rule.id, rule.updated_at.isoformat()))
                log.warning("alert rule %d has params this registry cannot read: %s",
                            rule.id, str(exc).splitlines()[0])
            metrics.UNMEASURED.labels(rule.kind).inc()
            return Policy(rule.threshold, rule.clear_threshold, rule.for_s, 0.0,
                          rule.cooldown_s), None
        got = await measures.read(rule, params)
        if got is None:
            metrics.UNMEASURED.labels(rule.kind).inc()
        return policy, got
