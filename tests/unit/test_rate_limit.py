"""Per-key token buckets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from registry.rate_limit import TokenBuckets


def test_a_burst_passes_then_requests_wait_for_refill() -> None:
    buckets = TokenBuckets()
    assert [buckets.take("k", 2.0, 3, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", 2.0, 3, 0.0) == 0.5  # one token in 1/rate seconds
    assert buckets.take("k", 2.0, 3, 0.5) == 0.0
    assert buckets.take("other", 2.0, 3, 0.5) == 0.0  # each key has its own bucket


def test_a_changed_limit_starts_a_fresh_bucket() -> None:
    buckets = TokenBuckets()
    assert buckets.take("k", 1.0, 1, 0.0) == 0.0
    assert buckets.take("k", 1.0, 1, 0.0) > 0
    assert buckets.take("k", 1.0, 5, 0.0) == 0.0


@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200),
       st.floats(min_value=0.1, max_value=50), st.integers(min_value=1, max_value=20))
def test_never_more_than_burst_plus_rate_times_elapsed(
    gaps: list[float], rate: float, burst: int,
) -> None:
    buckets, now, allowed = TokenBuckets(), 0.0, 0
    for gap in gaps:
        now += gap
        allowed += buckets.take("k", rate, burst, now) == 0.0
    assert allowed <= burst + rate * now + 1e-6
