"""bench/soak's pure cores: the growth detector on synthetic series (flat with noise passes, a
leak fails, a GC sawtooth passes, a restart starts a new series), the fault plan and the
books."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.soak.growth import (
    DetectorConfig,
    Point,
    Rule,
    SeriesKey,
    judge,
    judged_window,
    longest_stall,
    rising_share,
    theil_sen,
)
from bench.soak.rules import DEFAULT_RULES
from bench.soak.schedule import FaultKind, each_kind_once, plan_faults
from bench.soak.totals import GapRow, metric_by_camera, read_confirm_log, tally
from contracts.ids import BatchId

MIB = 2.0**20
SOAK_S, WARMUP_S, EVERY_S = 1800, 300, 5
CONFIG = DetectorConfig(warmup_s=WARMUP_S)
RSS = SeriesKey("worker:soak-motion-1", "rss_bytes", "4242")


def series(value_at: object, start: int = 0, end: int = SOAK_S) -> list[Point]:
    assert callable(value_at)
    return [(float(t), float(value_at(t))) for t in range(start, end, EVERY_S)]


def findings(points: list[Point], key: SeriesKey = RSS) -> list[str]:
    return [str(f) for f in judge({key: points}, DEFAULT_RULES, CONFIG).findings]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level_mib=st.floats(30, 1500),
       noise_mib=st.floats(0, 3))
def test_a_flat_process_with_noise_passes(seed: int, level_mib: float,
                                          noise_mib: float) -> None:
    rng = random.Random(seed)
    assert findings(series(lambda t: (level_mib + rng.gauss(0, noise_mib)) * MIB)) == []


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), leak_mib_per_min=st.floats(1.5, 50),
       noise_mib=st.floats(0, 2))
def test_a_leak_fails_naming_the_process_and_metric(seed: int, leak_mib_per_min: float,
                                                    noise_mib: float) -> None:
    rng = random.Random(seed)
    found = findings(series(lambda t: (200 + leak_mib_per_min * t / 60
                                       + rng.gauss(0, noise_mib)) * MIB))
    assert len(found) == 1
    assert found[0].startswith("GROWTH: worker:soak-motion-1 (pid 4242) rss_bytes: grew")


@settings(max_examples=40, deadline=None)
@given(period_s=st.integers(10, 300), tooth_mib=st.floats(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_a_garbage_collector_sawtooth_passes(period_s: int, tooth_mib: float,
                                             seed: int) -> None:
    rng = random.Random(seed)
    phase = rng.uniform(0, period_s)
    assert findings(series(lambda t: (150 + tooth_mib * ((t + phase) % period_s) / period_s
                                      + rng.gauss(0, 0.5)) * MIB)) == []


def test_a_descriptor_leaked_per_fault_fails_and_a_reconnect_does_not() -> None:
    fds = SeriesKey("ingest", "fds", "77")
    # One descriptor more after each fault, a fault a minute: a staircase.
    assert findings(series(lambda t: 40 + t // 60), fds)
    # A reconnect closes one and opens one: a blip, no trend.
    assert findings(series(lambda t: 40 + (1 if t % 60 < 5 else 0)), fds) == []


def test_a_restart_is_a_new_series_not_growth() -> None:
    old = series(lambda t: 100 * MIB, end=1200)
    # The replacement warms up (imports, its model, caches) to a bit more than the old one.
    new = series(lambda t: (100 + 60 * min(1.0, (t - 1200) / 300)) * MIB, start=1200)
    restarted = SeriesKey(RSS.subject, RSS.metric, "5151")
    apart = judge({RSS: old, restarted: new}, DEFAULT_RULES, CONFIG)
    assert apart.ok, apart.findings
    # The same samples read as one process would be 60 MiB of growth.
    assert findings(old + new)


def test_a_restarted_series_gets_its_own_warm_up() -> None:
    points = series(lambda t: t, start=1200)
    window = judged_window(points, WARMUP_S)
    assert window[0][0] >= 1200 + WARMUP_S + (SOAK_S - 1200 - WARMUP_S) / 2 - EVERY_S
    # Started too late to have a steady half: held to its ceiling only.
    late = judge({RSS: series(lambda t: t * MIB, start=1700)}, DEFAULT_RULES, CONFIG)
    assert late.ok and not late.judgements[0].judged


def test_a_ceiling_fails_even_when_flat_and_even_in_warm_up() -> None:
    queue = SeriesKey("queue:frames.ingress", "messages")
    full = DEFAULT_RULES["messages"].ceiling
    assert full is not None
    assert any(f.startswith("CEILING") for f in findings(series(lambda t: full + 1), queue))
    spike = series(lambda t: full * 2 if t == 100 else 3)
    assert [f.split(":")[0] for f in findings(spike, queue)] == ["CEILING"]


def test_metrics_without_a_rule_are_not_judged() -> None:
    applied = SeriesKey("pipeline", "applied_batches")
    verdict = judge({applied: series(lambda t: t * 20)}, DEFAULT_RULES, CONFIG)
    assert verdict.ok and verdict.judgements == []


def test_theil_sen_ignores_outliers_that_least_squares_would_follow() -> None:
    points = [(float(t), 2.0 * t) for t in range(50)]
    points[45] = (45.0, 10_000.0)
    points[46] = (46.0, 10_000.0)
    assert theil_sen(points) == pytest.approx(2.0)
    assert theil_sen([(1.0, 5.0)]) == 0.0
    assert rising_share([(0.0, 1.0), (1.0, 1.0)]) == 0.5


def test_growth_is_relative_to_the_level_for_large_processes() -> None:
    rule = Rule(tolerance_abs=8 * MIB, tolerance_rel=0.03)
    key = SeriesKey("ingest", "rss_bytes", "1")
    # 12 MiB over the judged window: a leak for a 100 MiB process, noise for a 1 GiB one.
    small = series(lambda t: 100 * MIB + 12 * MIB * max(0, t - 1050) / 750)
    big = series(lambda t: 1024 * MIB + 12 * MIB * max(0, t - 1050) / 750)
    assert not judge({key: small}, {"rss_bytes": rule}, CONFIG).ok
    assert judge({key: big}, {"rss_bytes": rule}, CONFIG).ok


def test_longest_stall_finds_the_longest_flat_stretch_of_a_counter() -> None:
    points = [(0.0, 0.0), (5.0, 10.0), (10.0, 10.0), (15.0, 10.0), (20.0, 11.0),
              (25.0, 11.0), (30.0, 20.0)]
    assert longest_stall(points) == (5.0, 10.0)
    assert longest_stall(points, after_s=20) == (20.0, 5.0)
    assert longest_stall([(float(t), float(t)) for t in range(10)]) == (0.0, 0.0)


def test_the_fault_plan_is_seeded_spaced_and_covers_every_kind() -> None:
    plan = plan_faults(7, 60, 1800, mean_gap_s=60, min_gap_s=30)
    assert plan == plan_faults(7, 60, 1800, mean_gap_s=60, min_gap_s=30)
    assert plan != plan_faults(8, 60, 1800, mean_gap_s=60, min_gap_s=30)
    assert plan[0].at_s == 60 and all(f.at_s < 1800 for f in plan)
    assert all(b.at_s - a.at_s >= 30 - 1e-9 for a, b in itertools.pairwise(plan))
    kinds = len(FaultKind)
    for start in range(0, len(plan) - kinds + 1, kinds):  # shuffled rounds of every kind
        assert {f.kind for f in plan[start:start + kinds]} == set(FaultKind)
    assert plan_faults(7, 60, 50, 60, 30) == []
    smoke = each_kind_once(10, 6)
    assert [f.at_s for f in smoke] == [10, 16, 22, 28, 34]
    assert {f.kind for f in smoke} == set(FaultKind)


def test_the_books_sort_confirmed_batches_into_applied_gapped_lost_and_doubled() -> None:
    confirmed = {BatchId("a", 1, s) for s in range(10)} | {BatchId("b", 2, s) for s in range(6)}
    applied = [BatchId("a", 1, s) for s in range(10)] + [BatchId("a", 1, 3)]
    applied += [BatchId("b", 2, s) for s in (0, 1, 4)] + [BatchId("b", 2, 9)]
    gaps = [GapRow("b", 2, 2, 3, "stale"), GapRow("b", 2, 4, 4, "stale"),
            GapRow("b", 2, None, None, "camera_down")]
    totals = tally(confirmed, applied, gaps)
    assert totals.exact and totals.confirmed == 16
    assert (totals.applied_once, totals.applied_twice, totals.gapped) == (12, 1, 2)
    assert totals.lost == 1  # b's seq 5: neither applied nor inside a gap
    assert totals.unexpected == 1  # b's seq 9: applied, never confirmed (reported only)
    assert totals.seq_gaps == {"stale": 2} and totals.time_gaps == {"camera_down": 1}
    assert not totals.ok
    assert "applied twice 1" in totals.summary() and "lost without a gap 1" in totals.summary()
    clean = tally({BatchId("a", 1, s) for s in range(3)},
                  [BatchId("a", 1, s) for s in range(4)], [])
    assert clean.ok and clean.lost == 0 and clean.unexpected == 1
    assert not tally(set(), [], []).ok  # nothing counted at all is no pass


def test_without_a_confirm_log_the_books_balance_counts() -> None:
    applied = [BatchId("a", 1, s) for s in range(10)] + [BatchId("a", 1, 3)]
    gaps = [GapRow("a", 1, 10, 11, "stale")]
    totals = tally(13, applied, gaps)
    assert not totals.exact
    assert (totals.applied_once, totals.applied_twice, totals.gapped, totals.lost) == (
        9, 1, 2, 1)
    assert tally(11, applied, gaps).ok is False  # applied twice
    fewer = tally(9, [BatchId("a", 1, s) for s in range(10)], [])
    assert fewer.ok and fewer.unexpected == 1 and fewer.lost == 0


def test_the_confirm_log_is_read_as_batch_ids(tmp_path: Path) -> None:
    log = tmp_path / "confirmed.jsonl"
    assert read_confirm_log(log) is None
    log.write_text('{"camera_id": "cam-0001", "stream_epoch": 2, "seq": 7, "frames": 5}\n'
                   '{"camera_id": "cam-0001", "stream_epoch": 2, "seq": 8, "frames": 5}\n')
    assert read_confirm_log(log) == {BatchId("cam-0001", 2, 7), BatchId("cam-0001", 2, 8)}


def test_confirmed_batches_are_read_per_camera_from_ingest_metrics() -> None:
    text = "\n".join([
        "# TYPE camcount_ingest_batches_published_total counter",
        'camcount_ingest_batches_published_total{camera="cam-0001"} 40.0',
        'camcount_ingest_batches_published_total{camera="cam-0002"} 2.0',
        "# TYPE camcount_ingest_batches_republished_total counter",
        'camcount_ingest_batches_republished_total{camera="cam-0001"} 7.0',
    ]) + "\n"
    assert metric_by_camera(text, "camcount_ingest_batches_published_total") == {
        "cam-0001": 40.0, "cam-0002": 2.0}
