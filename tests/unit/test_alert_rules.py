"""The alert state machine (registry/alerting/rules.py): table tests of one subject, the board
of many, and a Hypothesis state machine against a model store that survives restarts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from registry.alerting.rules import (
    Board,
    Key,
    OpenAlert,
    Policy,
    Subject,
    Transition,
    acknowledge,
    observe,
)

HOT, BAND, COOL = 11.0, 7.0, 4.0
P = Policy(threshold=10, clear_threshold=5)


def run(policy: Policy, samples: Sequence[tuple[float, float | None]],
        state: Subject | None = None) -> list[tuple[float, str]]:
    """Feed (time, value) samples to one subject; the verdicts with their times."""
    state = state or Subject()
    out: list[tuple[float, str]] = []
    for at, value in samples:
        state, verdict = observe(state, policy, value, at)
        if verdict:
            out.append((at, verdict))
    return out


@pytest.mark.parametrize(
    ("policy", "samples", "verdicts"),
    [
        # Strictly over the threshold fires; at it does not.
        (P, [(0, 10.0), (1, 10.0)], []),
        (P, [(0, 10.0), (1, HOT)], [(1, "fire")]),
        # for_s: the condition must hold that long without a break.
        (Policy(10, 5, for_s=5), [(0, HOT), (2, HOT), (4, HOT), (5, HOT)], [(5, "fire")]),
        (Policy(10, 5, for_s=5), [(0, HOT), (2, BAND), (3, HOT), (6, HOT), (8, HOT)],
         [(8, "fire")]),
        (Policy(10, 5, for_s=5), [(0, HOT), (2, None), (3, HOT), (7, HOT), (8, HOT)],
         [(8, "fire")]),  # no data breaks the streak too
        # Hysteresis: it resolves only at or below the clear threshold.
        (P, [(0, HOT), (1, BAND), (2, 5.1), (3, 5.0)], [(0, "fire"), (3, "resolve")]),
        (Policy(10), [(0, HOT), (1, 10.0)], [(0, "fire"), (1, "resolve")]),  # no band
        (Policy(10, 50), [(0, HOT), (1, 10.0)], [(0, "fire"), (1, "resolve")]),  # capped
        # clear_for_s: cool without a break that long.
        (Policy(10, 5, clear_for_s=3), [(0, HOT), (1, COOL), (2, BAND), (3, COOL), (5, COOL),
                                        (6, COOL)], [(0, "fire"), (6, "resolve")]),
        # No data holds an open alert.
        (P, [(0, HOT), (1, None), (60, None)], [(0, "fire")]),
        # Cooldown after a resolution; the condition held meanwhile fires when it ends.
        (Policy(10, 5, cooldown_s=60), [(0, HOT), (10, COOL), (20, HOT), (69, HOT), (70, HOT)],
         [(0, "fire"), (10, "resolve"), (70, "fire")]),
        # Acknowledged or not, a hot value never re-fires an open alert.
        (P, [(0, HOT), (1, HOT), (2, 1e9)], [(0, "fire")]),
    ],
)
def test_one_subject(policy: Policy, samples: list[tuple[float, float | None]],
                     verdicts: list[tuple[float, str]]) -> None:
    assert run(policy, samples) == verdicts


def test_a_streak_may_run_through_the_cooldown_but_fires_only_after_it() -> None:
    policy = Policy(10, 5, for_s=30, cooldown_s=20)
    assert run(policy, [(0, HOT), (5, HOT)], Subject(resolved_at=0)) == []
    assert run(policy, [(0, HOT), (30, HOT)], Subject(resolved_at=0)) == [(30, "fire")]
    assert run(policy, [(0, HOT), (19, HOT)], Subject(resolved_at=10)) == []
    assert run(policy, [(0, HOT), (30, HOT)], Subject(resolved_at=20)) == []  # 40 s cooldown end
    assert run(policy, [(0, HOT), (40, HOT)], Subject(resolved_at=20)) == [(40, "fire")]


def test_acknowledge_is_idempotent_and_refused_once_resolved() -> None:
    assert acknowledge("firing") == ("acknowledged", "acknowledged")
    assert acknowledge("acknowledged") == ("acknowledged", "unchanged")
    assert acknowledge("resolved") == ("resolved", "conflict")


@given(
    threshold=st.floats(0, 1000), band=st.floats(0, 1000),
    steps=st.lists(st.tuples(st.floats(0.001, 100), st.floats(0, 1)), max_size=40),
    start_open=st.booleans(), for_s=st.sampled_from([0.0, 5.0]),
    clear_for_s=st.sampled_from([0.0, 5.0]), cooldown_s=st.sampled_from([0.0, 30.0]),
)
def test_a_value_inside_the_band_never_flaps(
    threshold: float, band: float, steps: list[tuple[float, float]], start_open: bool,
    for_s: float, clear_for_s: float, cooldown_s: float,
) -> None:
    """Values anywhere in [clear_threshold, threshold]: never a firing, at most one resolution
    (an alert open at the start, at the clear threshold itself)."""
    clear = max(0.0, threshold - band)
    policy = Policy(threshold, clear, for_s, clear_for_s, cooldown_s)
    t, samples = 0.0, []
    for dt, where in steps:
        t += dt
        samples.append((t, clear + where * (threshold - clear)))
    verdicts = [v for _, v in run(policy, samples, Subject(fired_at=0.0) if start_open else None)]
    assert "fire" not in verdicts
    assert verdicts in ([], ["resolve"])


# --- the board: many subjects, the store as the truth ---

def test_a_subject_gone_resolves_and_an_unmeasured_rule_holds() -> None:
    board = Board()
    fired = board.step(0, {1: P, 2: P}, {1: {"cam-a": HOT, "cam-b": HOT}, 2: {"q": HOT}}, {})
    assert [(t.rule_id, t.subject, t.verdict, t.reason) for t in fired] == [
        (1, "cam-a", "fire", "condition"), (1, "cam-b", "fire", "condition"),
        (2, "q", "fire", "condition")]
    store = {(1, "cam-a"): OpenAlert(11, 0), (1, "cam-b"): OpenAlert(12, 0),
             (2, "q"): OpenAlert(13, 0)}
    # cam-b was deleted; rule 2 could not be measured (the broker API is down).
    step = board.step(1, {1: P, 2: P}, {1: {"cam-a": HOT}, 2: None}, store)
    assert [(t.subject, t.verdict, t.reason, t.alert_id, t.value) for t in step] == [
        ("cam-b", "resolve", "gone", 12, None)]


def test_a_disabled_rule_resolves_its_alerts() -> None:
    board = Board()
    board.step(0, {1: P}, {1: {"cam-a": HOT}}, {})
    step = board.step(1, {}, {}, {(1, "cam-a"): OpenAlert(7, 0)})
    assert [(t.verdict, t.reason, t.alert_id) for t in step] == [("resolve", "rule_disabled", 7)]


def test_after_a_restart_an_open_alert_is_adopted_not_refired() -> None:
    board = Board()  # a fresh process: memory empty, the store has the alert open
    store = {(1, "cam-a"): OpenAlert(5, 0)}
    assert board.step(100, {1: P}, {1: {"cam-a": HOT}}, store) == []
    step = board.step(101, {1: P}, {1: {"cam-a": COOL}}, store)
    assert [(t.verdict, t.alert_id, t.reason) for t in step] == [("resolve", 5, "cleared")]


def test_after_a_restart_the_cooldown_is_seeded_from_the_store() -> None:
    policy = Policy(10, 5, cooldown_s=60)
    board = Board()
    board.seed({(1, "cam-a"): 100.0})
    assert board.step(120, {1: policy}, {1: {"cam-a": HOT}}, {}) == []
    assert [t.verdict for t in board.step(160, {1: policy}, {1: {"cam-a": HOT}}, {})] == [
        "fire"]


def test_an_alert_closed_in_the_store_is_forgotten_without_a_cooldown() -> None:
    policy = Policy(10, 5, cooldown_s=600)
    board = Board()
    assert board.step(0, {1: policy}, {1: {"cam-a": HOT}}, {})  # its write then failed
    again = board.step(1, {1: policy}, {1: {"cam-a": HOT}}, {})
    assert [t.verdict for t in again] == ["fire"]


def test_memory_is_bounded_by_what_still_matters() -> None:
    board = Board()
    for i in range(100):
        board.step(float(i), {1: P}, {1: {f"cam-{i}": 0.0}}, {})
    assert board.subject((1, "cam-0")) is None
    board.step(200, {1: Policy(10, 5, cooldown_s=50)}, {1: {"x": HOT}}, {})
    board.step(201, {1: Policy(10, 5, cooldown_s=50)}, {1: {"x": COOL}},
               {(1, "x"): OpenAlert(1, 200)})
    board.step(240, {1: Policy(10, 5, cooldown_s=50)}, {1: {}}, {})
    assert board.subject((1, "x")) == Subject(resolved_at=201)  # gone, still in its cooldown
    board.step(252, {1: Policy(10, 5, cooldown_s=50)}, {1: {}}, {})
    assert board.subject((1, "x")) is None


# --- a Hypothesis state machine over evaluations, acknowledgements, restarts, rule toggles ---

RULES = (1, 2)
SUBJECTS = ("a", "b", "c")
VALUES = st.sampled_from([0.0, 4.0, 5.0, 7.0, 10.0, 11.0, 50.0])
POLICIES = st.builds(Policy, threshold=st.just(10.0),
                     clear_threshold=st.sampled_from([None, 5.0, 10.0]),
                     for_s=st.sampled_from([0.0, 2.0, 5.0]),
                     clear_for_s=st.sampled_from([0.0, 3.0]),
                     cooldown_s=st.sampled_from([0.0, 4.0, 30.0]))
READINGS = st.fixed_dictionaries({
    r: st.one_of(st.none(), st.dictionaries(st.sampled_from(SUBJECTS),
                                            st.one_of(st.none(), VALUES)))
    for r in RULES})


@dataclass
class StoredAlert:
    id: int
    key: Key
    state: str
    fired_at: float
    resolved_at: float | None = None


class AlertMachine(RuleBasedStateMachine):
    """The store is a list of alerts that outlives the board (restarts). Every transition is
    checked against the rules' promises before it is applied."""

    @initialize(policies=st.tuples(POLICIES, POLICIES))
    def setup(self, policies: tuple[Policy, Policy]) -> None:
        self.policies = dict(zip(RULES, policies, strict=True))
        self.enabled = set(RULES)
        self.board = Board()
        self.now = 1000.0
        self.store: list[StoredAlert] = []
        self.hot_from: dict[Key, float] = {}  # streaks as measured, unbroken
        self.cool_from: dict[Key, float] = {}

    def _open(self) -> dict[Key, StoredAlert]:
        return {a.key: a for a in self.store if a.state != "resolved"}

    def _last_resolved(self, key: Key) -> float | None:
        times = [a.resolved_at for a in self.store if a.key == key and a.resolved_at is not None]
        return max(times) if times else None

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 10.0, 40.0]), readings=READINGS)
    def evaluate(self, dt: float, readings: dict[int, dict[str, float | None] | None]) -> None:
        self.now += dt
        policies = {r: p for r, p in self.policies.items() if r in self.enabled}
        for r in RULES:
            measured = readings[r] if r in self.enabled else None
            for s in SUBJECTS:
                key, value = (r, s), None if measured is None else measured.get(s)
                p = self.policies[r]
                if value is not None and p.hot(value):
                    self.hot_from.setdefault(key, self.now)
                else:
                    self.hot_from.pop(key, None)
                if value is not None and p.cool(value):
                    self.cool_from.setdefault(key, self.now)
                else:
                    self.cool_from.pop(key, None)
        opened = {k: OpenAlert(a.id, a.fired_at) for k, a in self._open().items()}
        for t in self.board.step(self.now, policies, readings, opened):
            self._apply(t, readings)
        self._check_progress(policies, readings)

    def _apply(self, t: Transition, readings: dict[int, dict[str, float | None] | None]) -> None:
        key, open_now, policy = (t.rule_id, t.subject), self._open(), self.policies[t.rule_id]
        if t.verdict == "fire":
            assert key not in open_now, "two open alerts for one subject"
            assert t.rule_id in self.enabled and t.value is not None and policy.hot(t.value)
            assert self.now - self.hot_from[key] >= policy.for_s, "fired before for_s"
            last = self._last_resolved(key)
            assert last is None or self.now >= last + policy.cooldown_s, "fired in cooldown"
            self.store.append(StoredAlert(len(self.store) + 1, key, "firing", self.now))
            return
        alert = open_now[key]
        assert t.alert_id == alert.id
        if t.reason == "cleared":
            assert t.value is not None and policy.cool(t.value)
            assert self.now - self.cool_from[key] >= policy.clear_for_s, "resolved too soon"
        elif t.reason == "gone":
            measured = readings[t.rule_id]
            assert measured is not None and t.subject not in measured
        else:
            assert t.reason == "rule_disabled" and t.rule_id not in self.enabled
        alert.state, alert.resolved_at = "resolved", self.now

    def _check_progress(self, policies: dict[int, Policy],
                        readings: dict[int, dict[str, float | None] | None]) -> None:
        """Not only safe but live: without timers in the way, a transition is never missed."""
        open_now = self._open()
        for r, policy in policies.items():
            for s, value in (readings[r] or {}).items():
                if value is None:
                    continue
                last = self._last_resolved((r, s))
                quiet = last is not None and self.now < last + policy.cooldown_s
                if policy.hot(value) and policy.for_s == 0 and not quiet:
                    assert (r, s) in open_now, "a hot subject did not fire"
                if policy.cool(value) and policy.clear_for_s == 0:
                    assert (r, s) not in open_now, "a cool subject did not resolve"

    @rule(data=st.data())
    def acknowledge_one(self, data: st.DataObject) -> None:
        candidates = sorted(self._open().values(), key=lambda a: a.id)
        if candidates:
            alert = data.draw(st.sampled_from(candidates))
            alert.state, outcome = acknowledge(alert.state)  # type: ignore[arg-type]
            assert outcome in ("acknowledged", "unchanged")

    @rule()
    def restart(self) -> None:
        self.board = Board()
        keys = {a.key for a in self.store}
        self.board.seed({k: at for k in keys if (at := self._last_resolved(k)) is not None})

    @rule(rule_id=st.sampled_from(RULES))
    def toggle(self, rule_id: int) -> None:
        self.enabled ^= {rule_id}

    @invariant()
    def one_open_alert_per_subject(self) -> None:
        keys = [a.key for a in self.store if a.state != "resolved"]
        assert len(keys) == len(set(keys))


AlertMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                          deadline=None)
test_alert_state_machine = AlertMachine.TestCase
