"""The fault suite's memory judgement (tests/faults/memory.py): a plateau with wobble passes,
steady growth fails, a process too short-lived to show a trend is not judged."""

from __future__ import annotations

import os

from tests.faults.memory import MIN_SAMPLES, WARMUP_SAMPLES, MemorySampler, Series, rss_bytes

MIB = 2**20


def test_a_plateau_with_wobble_is_bounded() -> None:
    warmup = [50 * MIB + i * 10 * MIB for i in range(WARMUP_SAMPLES)]  # start-up growth
    steady = [150 * MIB + (i % 3) * 4 * MIB for i in range(60)]
    assert Series("w1", 1, warmup + steady).verdict() is None


def test_steady_growth_is_not_bounded() -> None:
    growing = [100 * MIB + i * 3 * MIB for i in range(WARMUP_SAMPLES + 60)]
    verdict = Series("w1", 1, growing).verdict()
    assert verdict is not None and "w1 (pid 1) RSS grew" in verdict


def test_a_short_life_is_not_judged() -> None:
    short = [i * 100 * MIB for i in range(WARMUP_SAMPLES + MIN_SAMPLES - 1)]
    assert Series("w1", 1, short).verdict() is None


def test_the_sampler_reads_this_process_and_keeps_a_series_per_pid() -> None:
    assert (rss_bytes(os.getpid()) or 0) > 10 * MIB
    sampler = MemorySampler(lambda: {"me": os.getpid(), "gone": 2**22 + 7})
    sampler.sample()
    sampler.sample()
    assert [(s.name, len(s.samples)) for s in sampler.series.values()] == [("me", 2)]
    assert sampler.problems() == [] and "me " in sampler.summary()
