from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from contracts.batch import EncodedFrame
from ingest.backoff import Backoff
from ingest.batching import Batcher, BatchPolicy
from ingest.sampling import Sampler


def test_sampler_takes_every_fifth_frame_of_25fps_for_5fps() -> None:
    sampler = Sampler(5.0)
    kept = [i for i in range(100) if sampler.take(i / 25)]
    assert kept == list(range(0, 100, 5))


@given(st.floats(1, 30), st.floats(1, 60), st.floats(0, 0.3))
def test_sampler_rate_never_exceeds_target(target: float, source: float, jitter: float) -> None:
    rng = random.Random(0)
    sampler = Sampler(target)
    n = 600
    times = [i / source + rng.uniform(0, jitter / source) for i in range(n)]
    kept = sum(sampler.take(t) for t in sorted(times))
    duration = sorted(times)[-1]
    # Half-period tolerance allows at most one extra frame per two periods at worst.
    assert kept <= duration * target * 2 + 1
    assert kept >= min(n, duration * min(target, source) * 0.5)


def test_sampler_restarts_when_timeline_jumps_back() -> None:
    sampler = Sampler(5.0)
    assert sampler.take(100.0)
    assert sampler.take(0.0)  # a new stream starts at 0 again


def _frame(n: int = 10) -> EncodedFrame:
    return EncodedFrame(1.0, 4, 4, b"x" * n)


def test_batcher_flushes_by_count() -> None:
    batcher = Batcher(BatchPolicy(max_frames=3, max_wait_s=10))
    assert batcher.add(_frame(), 0.0) is None
    assert batcher.add(_frame(), 0.1) is None
    batch = batcher.add(_frame(), 0.2)
    assert batch is not None and len(batch) == 3
    assert batcher.drain() is None


def test_batcher_flushes_by_wait() -> None:
    batcher = Batcher(BatchPolicy(max_frames=100, max_wait_s=1.0))
    assert batcher.add(_frame(), 0.0) is None
    assert batcher.due(0.5) is None
    batch = batcher.due(1.0)
    assert batch is not None and len(batch) == 1


def test_batcher_byte_cap_starts_a_new_batch() -> None:
    batcher = Batcher(BatchPolicy(max_frames=100, max_wait_s=10, max_bytes=25))
    assert batcher.add(_frame(10), 0) is None
    assert batcher.add(_frame(10), 0) is None
    batch = batcher.add(_frame(10), 0)
    assert batch is not None and len(batch) == 2
    rest = batcher.drain()
    assert rest is not None and len(rest) == 1


@given(st.lists(st.integers(1, 50), min_size=1, max_size=200), st.integers(1, 10))
def test_batcher_loses_and_reorders_nothing(sizes: list[int], max_frames: int) -> None:
    batcher = Batcher(BatchPolicy(max_frames=max_frames, max_wait_s=1e9, max_bytes=120))
    frames = [EncodedFrame(float(i), 1, 1, b"x" * n) for i, n in enumerate(sizes)]
    out: list[EncodedFrame] = []
    for f in frames:
        out += batcher.add(f, 0.0) or []
    out += batcher.drain() or []
    assert out == frames


def test_backoff_grows_caps_and_resets_after_healthy_run() -> None:
    backoff = Backoff(0.5, 8.0, healthy_after_s=30, rng=random.Random(1))
    delays = [backoff.next_delay(0.1) for _ in range(8)]
    assert all(0.25 <= d <= 8.0 for d in delays)
    assert delays[-1] >= 4.0  # reached the cap's jitter range
    assert backoff.next_delay(60.0) <= 0.5  # a healthy run resets the sequence
