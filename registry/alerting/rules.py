"""The alert state machine per (rule, subject): pure, with the clock passed in.

A subject (a camera, a worker, a queue) is *hot* while its value is over the rule's threshold
and *cool* while it is at or below the clear threshold. Between the two (the hysteresis band)
it is neither: an open alert stays open and a closed one stays closed, so a value wandering
inside the band never flaps.

- fire: hot without a break for `for_s`, and not within `cooldown_s` of the subject's last
  resolution;
- resolve: cool without a break for `clear_for_s`;
- acknowledge (an operator): firing -> acknowledged. Nothing here depends on it: an
  acknowledged alert stays acknowledged while the condition holds and resolves like a firing one.

No data is handled deliberately:
- a value of None (the measurement could not be taken: the broker's API did not answer, a
  camera's occupancy is stale) breaks every streak and changes nothing else: an open alert
  stays open and nothing fires without evidence;
- a subject that is no longer measured at all (its camera disabled or deleted, its worker row
  removed, its queue deleted) resolves its open alert as "gone";
- a rule no longer enabled resolves its open alerts as "rule_disabled".

The store (PostgreSQL) is the truth about which alerts are open: `Board.step` adopts it on every
evaluation, so a restart, another registry taking over, or a write that failed all converge.
Only the streaks live in memory (a restart restarts them: later, never earlier), and the last
resolution times, seeded from the store after a restart (`Board.seed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from contracts.alerting import AlertState

Key = tuple[int, str]
"""(rule id, subject)"""

Verdict = Literal["fire", "resolve"]
Reason = Literal["condition", "cleared", "gone", "rule_disabled"]

MAX_COOLDOWN_S = 86_400.0
"""The longest cooldown a rule may have; resolutions older than this no longer matter."""


@dataclass(frozen=True)
class Policy:
    """A rule's thresholds and timings."""

    threshold: float
    clear_threshold: float | None = None  # None: the threshold itself (no hysteresis band)
    for_s: float = 0.0
    clear_for_s: float = 0.0
    cooldown_s: float = 0.0

    @property
    def clear_at(self) -> float:
        # A clear threshold above the threshold would resolve a hot value: never above it.
        if self.clear_threshold is None:
            return self.threshold
        return min(self.clear_threshold, self.threshold)

    def hot(self, value: float) -> bool:
        return value > self.threshold

    def cool(self, value: float) -> bool:
        return value <= self.clear_at


@dataclass(frozen=True)
class Subject:
    """What is remembered of one (rule, subject)."""

    fired_at: float | None = None  # set while an alert is open
    hot_since: float | None = None
    cool_since: float | None = None
    resolved_at: float | None = None  # the last resolution: the cooldown counts from it

    @property
    def is_open(self) -> bool:
        return self.fired_at is not None

    def quiet(self, policy: Policy, now: float) -> bool:
        """Whether the cooldown after the last resolution still forbids firing."""
        return self.resolved_at is not None and now < self.resolved_at + policy.cooldown_s


def observe(state: Subject, policy: Policy, value: float | None, now: float,
            ) -> tuple[Subject, Verdict | None]:
    """One measurement of a subject: its next state and whether an alert fires or resolves."""
    if value is None:
        return replace(state, hot_since=None, cool_since=None), None
    if state.is_open:
        if not policy.cool(value):
            return replace(state, cool_since=None, hot_since=None), None
        since = now if state.cool_since is None else state.cool_since
        if now - since >= policy.clear_for_s:
            return Subject(resolved_at=now), "resolve"
        return replace(state, cool_since=since), None
    if not policy.hot(value):
        return replace(state, hot_since=None, cool_since=None), None
    since = now if state.hot_since is None else state.hot_since
    if now - since >= policy.for_s and not state.quiet(policy, now):
        return Subject(fired_at=now, resolved_at=state.resolved_at), "fire"
    return replace(state, hot_since=since, cool_since=None), None


AckOutcome = Literal["acknowledged", "unchanged", "conflict"]


def acknowledge(state: AlertState) -> tuple[AlertState, AckOutcome]:
    """An operator's acknowledgement: idempotent; a resolved alert cannot be acknowledged."""
    if state == "firing":
        return "acknowledged", "acknowledged"
    if state == "acknowledged":
        return state, "unchanged"
    return state, "conflict"


@dataclass(frozen=True)
class OpenAlert:
    """An open alert as the store has it."""

    alert_id: int
    fired_at: float


@dataclass(frozen=True)
class Transition:
    rule_id: int
    subject: str
    verdict: Verdict
    reason: Reason
    at: float
    value: float | None  # None: resolved without a measurement (gone, rule disabled)
    alert_id: int | None  # the alert resolved; None for a firing (the store assigns the id)


Readings = Mapping[int, Mapping[str, float | None] | None]
"""Per rule id: each subject's value, or None for a rule that could not be measured at all
(its subjects are then unknown, not gone)."""


class Board:
    """Every (rule, subject) of the enabled rules, stepped together once per evaluation."""

    def __init__(self) -> None:
        self._subjects: dict[Key, Subject] = {}

    def seed(self, resolved_at: Mapping[Key, float]) -> None:
        """The last resolution of each subject, read from the store after taking over, so no
        alert fires inside its cooldown because the evaluator restarted."""
        for key, at in resolved_at.items():
            state = self._subjects.get(key, Subject())
            if state.resolved_at is None or state.resolved_at < at:
                self._subjects[key] = replace(state, resolved_at=at)

    def subject(self, key: Key) -> Subject | None:
        return self._subjects.get(key)

    def step(self, now: float, policies: Mapping[int, Policy], readings: Readings,
             open_alerts: Mapping[Key, OpenAlert]) -> list[Transition]:
        """One evaluation: `policies` of the enabled rules, their `readings`, and the alerts
        the store has open (the truth). Returns what to write, in a stable order."""
        self._adopt(open_alerts)
        out: list[Transition] = []
        for key in sorted(self._subjects):
            rule_id, subject = key
            state = self._subjects[key]
            policy = policies.get(rule_id)
            measured = readings.get(rule_id)
            if policy is None:
                reason: Reason = "rule_disabled"
            elif measured is None:
                self._subjects[key] = observe(state, policy, None, now)[0]
                continue
            elif subject not in measured:
                reason = "gone"
            else:
                continue  # measured below
            if state.is_open:
                found = open_alerts.get(key)
                out.append(Transition(rule_id, subject, "resolve", reason, now, None,
                                      None if found is None else found.alert_id))
                self._subjects[key] = Subject(resolved_at=now)
            else:
                self._subjects[key] = Subject(resolved_at=state.resolved_at)
        for rule_id in sorted(policies):
            measured = readings.get(rule_id)
            if measured is None:
                continue
            policy = policies[rule_id]
            for subject in sorted(measured):
                key = (rule_id, subject)
                value = measured[subject]
                state, verdict = observe(self._subjects.get(key, Subject()), policy, value, now)
                self._subjects[key] = state
                if verdict is None:
                    continue
                assert value is not None  # no verdict without a value
                found = open_alerts.get(key)
                out.append(Transition(
                    rule_id, subject, verdict, "condition" if verdict == "fire" else "cleared",
                    now, value, None if verdict == "fire" or found is None else found.alert_id))
        self._forget(now, policies)
        return out

    def _adopt(self, open_alerts: Mapping[Key, OpenAlert]) -> None:
        for key in set(self._subjects) | set(open_alerts):
            state = self._subjects.get(key, Subject())
            found = open_alerts.get(key)
            if found is not None and not state.is_open:
                # Open in the store, not here: fired before a restart or by the registry that
                # evaluated before this one. Its streaks start again.
                state = Subject(fired_at=found.fired_at, resolved_at=state.resolved_at)
            elif found is None and state.is_open:
                # Closed in the store: the write of its firing failed, or its rule was deleted.
                state = Subject(resolved_at=state.resolved_at)
            self._subjects[key] = state

    def _forget(self, now: float, policies: Mapping[int, Policy]) -> None:
        """Drop subjects that remember nothing that matters any more: memory stays bounded by
        the subjects measured, plus those resolved within a cooldown."""
        def matters(key: Key, state: Subject) -> bool:
            if state.is_open or state.hot_since is not None or state.cool_since is not None:
                return True
            if state.resolved_at is None:
                return False
            policy = policies.get(key[0])
            cooldown_s = MAX_COOLDOWN_S if policy is None else policy.cooldown_s
            return now - state.resolved_at < cooldown_s

        self._subjects = {k: s for k, s in self._subjects.items() if matters(k, s)}
