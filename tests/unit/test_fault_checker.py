"""The fault suite's checker (tests/faults/checker.py): clean generated histories pass; every
injected loss, double apply or miscount is found, and only those."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.faults.checker import (
    CLOCK_SLACK_S,
    GAP_MARGIN_S,
    Applied,
    BatchKey,
    Confirmed,
    Crossing,
    Gap,
    History,
    check,
)

BATCH_S = 0.5
CROSSING_EVERY_S = 4.0  # the scenes' crossings are at least 3.6 s apart


@dataclass(frozen=True)
class Generated:
    history: History
    applied_keys: tuple[BatchKey, ...]  # applied exactly once
    gapped_keys: tuple[BatchKey, ...]  # recorded as a gap instead


@st.composite
def clean_histories(draw: st.DrawFn, max_offset_s: float = 0.9 * CLOCK_SLACK_S) -> Generated:
    """Cameras streaming from t=1000: each confirmed batch applied once or inside a recorded
    gap; crossings every few seconds, counted (with a little clock offset) unless they fall
    within a gap's margin, where the checker must accept either."""
    confirmed: list[Confirmed] = []
    applied: list[Applied] = []
    gaps: list[Gap] = []
    truth: list[Crossing] = []
    counted: list[Crossing] = []
    windows: dict[str, list[tuple[float, float]]] = {}
    applied_keys: list[BatchKey] = []
    gapped_keys: list[BatchKey] = []
    for c in range(draw(st.integers(1, 3))):
        camera = f"cam-{c}"
        start = 1000.0
        n = draw(st.integers(1, 60))
        in_gap = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        blind: list[tuple[float, float]] = []
        for seq in range(n):
            key = BatchKey(camera, 1, seq)
            at = start + seq * BATCH_S
            confirmed.append(Confirmed(key, at, at + BATCH_S))
            if not in_gap[seq]:
                applied.append(Applied(key, "w"))
                applied_keys.append(key)
                continue
            gapped_keys.append(key)
            blind.append((at, at + BATCH_S))
            if seq and in_gap[seq - 1]:  # one gap row per run of gapped batches
                last = gaps.pop()
                gaps.append(replace(last, seq_to=seq))
            else:
                gaps.append(Gap(camera, 1, draw(st.sampled_from(["stale", "dead_lettered"])),
                                seq, seq))
        end = start + n * BATCH_S
        windows[camera] = [(start, end)]
        t = start + draw(st.floats(0.0, 2.0))
        while t < end:
            truth.append(Crossing(camera, t, draw(st.sampled_from(["in", "out"]))))
            near_gap = any(s - GAP_MARGIN_S <= t <= e + GAP_MARGIN_S for s, e in blind)
            if not near_gap or draw(st.booleans()):
                offset = draw(st.floats(-max_offset_s, max_offset_s))
                counted.append(Crossing(camera, t + offset, truth[-1].direction))
            t += CROSSING_EVERY_S + draw(st.floats(0.0, 3.0))
    history = History(confirmed, applied, gaps, counted, truth, windows=windows)
    return Generated(history, tuple(applied_keys), tuple(gapped_keys))


@settings(max_examples=200, deadline=None)
@given(clean_histories())
def test_a_clean_history_passes(generated: Generated) -> None:
    verdict = check(generated.history)
    assert verdict.ok, verdict.summary()
    assert verdict.applied_once == len(generated.applied_keys)
    assert verdict.recorded_as_gap == len(generated.gapped_keys)
    assert verdict.confirmed == verdict.applied_once + verdict.recorded_as_gap
    assert not verdict.unexpected


@settings(max_examples=200, deadline=None)
@given(clean_histories(), st.data())
def test_every_batch_lost_without_a_gap_is_found(generated: Generated, data: st.DataObject,
                                                 ) -> None:
    keys = generated.applied_keys
    lost = set(data.draw(st.lists(st.sampled_from(keys), min_size=1, unique=True)
                         if keys else st.just([])))
    history = replace(generated.history,
                      applied=[a for a in generated.history.applied if a.key not in lost])
    verdict = check(history)
    assert set(verdict.lost) == lost
    assert not verdict.applied_twice
    assert verdict.ok == (not lost)


@settings(max_examples=200, deadline=None)
@given(clean_histories(), st.data())
def test_every_double_apply_is_found(generated: Generated, data: st.DataObject) -> None:
    candidates = generated.applied_keys + generated.gapped_keys
    doubled = data.draw(st.lists(st.sampled_from(candidates), min_size=1, unique=True))
    extra = [Applied(k, "w2") for k in doubled]
    extra += [Applied(k, "w3") for k in doubled if k in generated.gapped_keys]  # 0 -> 2
    history = replace(generated.history, applied=[*generated.history.applied, *extra])
    verdict = check(history)
    assert set(verdict.applied_twice) == set(doubled)
    assert not verdict.lost
    assert not verdict.ok


@settings(max_examples=200, deadline=None)
@given(clean_histories())
def test_counts_lost_in_covered_time_are_found(generated: Generated) -> None:
    covered_truth = sum(c.truth for c in check(generated.history).counts)
    verdict = check(replace(generated.history, counted=[]))
    assert sum(c.missed for c in verdict.counts) == covered_truth
    assert verdict.ok == (covered_truth == 0)


@settings(max_examples=200, deadline=None)
@given(clean_histories(max_offset_s=0.0))  # a twin is then judged exactly where its truth is
def test_counts_doubled_in_covered_time_are_found(generated: Generated) -> None:
    before = check(generated.history)
    doubled = [*generated.history.counted, *generated.history.counted]
    verdict = check(replace(generated.history, counted=doubled))
    assert sum(c.spurious for c in verdict.counts) == sum(c.truth for c in before.counts)


@settings(max_examples=100, deadline=None)
@given(clean_histories())
def test_a_batch_applied_but_never_confirmed_is_reported_not_failed(generated: Generated,
                                                                    ) -> None:
    ghost = BatchKey("cam-0", 1, 10_000)
    history = replace(generated.history, applied=[*generated.history.applied, Applied(ghost)])
    verdict = check(history)
    assert verdict.unexpected == (ghost,)
    assert verdict.ok, verdict.summary()


def _simple(counted_at: list[float], truth_at: list[float],
            gaps: tuple[Gap, ...] = ()) -> History:
    return History(
        truth=[Crossing("cam", t, "in") for t in truth_at],
        counted=[Crossing("cam", t, "in") for t in counted_at],
        gaps=gaps, windows={"cam": [(0.0, 100.0)]},
    )


def test_a_missed_or_doubled_crossing_in_covered_time_fails() -> None:
    truth = [20.0, 30.0, 40.0]
    assert check(_simple([20.3, 30.1, 39.8], truth)).ok
    missed = check(_simple([20.3, 39.8], truth))
    assert [(c.missed, c.spurious) for c in missed.count_mismatches] == [(1, 0)]
    doubled = check(_simple([20.3, 30.1, 30.5, 39.8], truth))
    assert [(c.missed, c.spurious) for c in doubled.count_mismatches] == [(0, 1)]
    assert "COUNT MISMATCH cam in" in doubled.summary()


def test_crossings_near_a_gap_or_a_session_edge_may_go_either_way() -> None:
    gap = Gap("cam", 1, "camera_down", started_at=29.0, ended_at=31.0)
    verdict = check(_simple([20.0, 40.0], [20.0, 30.0, 40.0], (gap,)))
    assert verdict.ok, verdict.summary()
    assert sum(c.uncertain_truth for c in verdict.counts) == 1
    # Before the first session's edge margin: neither a miss nor a spurious count.
    assert check(_simple([1.0], [])).ok
    assert check(_simple([], [99.0])).ok
    # Far from any gap: a spurious count fails.
    assert not check(_simple([60.0], [])).ok


def test_a_batch_recorded_as_a_gap_makes_its_capture_time_uncertain() -> None:
    key = BatchKey("cam", 1, 0)
    history = replace(
        _simple([], [50.0]), confirmed=[Confirmed(key, 49.0, 50.5)],
        gaps=[Gap("cam", 1, "stale", 0, 0)],
    )
    verdict = check(history)
    assert verdict.ok and verdict.recorded_as_gap == 1, verdict.summary()


def test_the_summary_prints_the_totals_the_ci_log_shows() -> None:
    key = BatchKey("cam", 1, 0)
    verdict = check(History(confirmed=[Confirmed(key, 0, 1)], applied=[Applied(key)]))
    text = verdict.summary()
    assert "lost without gap 0" in text and "applied twice 0" in text
    verdict.assert_ok()


def test_a_miss_right_after_a_takeover_fails_like_any_other() -> None:
    """Takeovers are counted and reported, but the time after one is compared like the rest
    (the motion background travels with the camera: workers/backgrounds.py)."""
    keys = [BatchKey("cam", 1, seq) for seq in range(3)]
    history = replace(
        _simple([40.0], [30.2, 40.0]),
        confirmed=[Confirmed(k, 29.5 + 0.5 * k.seq, 30.0 + 0.5 * k.seq) for k in keys],
        applied=[Applied(keys[0], "w1"), Applied(keys[1], "w2"), Applied(keys[2], "w2")])
    verdict = check(history)
    assert not verdict.ok and verdict.takeovers == 1, verdict.summary()
    assert "1 takeovers" in verdict.summary()
    back = replace(history, applied=[*history.applied[:2], Applied(keys[2], "w1")])
    assert check(back).takeovers == 2
