"""Per-key token buckets (pure; the clock is passed in).

A bucket refills at `rate_per_s` up to `burst`; each request takes one token. Kept per
registry process: with several replicas behind a load balancer the effective limit is the sum.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    rate_per_s: float
    burst: int
    tokens: float
    at_mono: float


class TokenBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, rate_per_s: float, burst: int, now_mono: float) -> float:
        """Take a token for `key`: 0.0 when allowed, else the seconds until one is free."""
        bucket = self._buckets.get(key)
        if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
            bucket = self._buckets[key] = _Bucket(rate_per_s, burst, float(burst), now_mono)
        elapsed = max(0.0, now_mono - bucket.at_mono)
        bucket.tokens = min(float(burst), bucket.tokens + elapsed * rate_per_s)
        bucket.at_mono = now_mono
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate_per_s

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
