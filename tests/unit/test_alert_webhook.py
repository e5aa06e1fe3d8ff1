"""Webhook helpers: back-off with full jitter and capped, and what logs and responses show of
a webhook URL (its secrets live in userinfo, path and query)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.alerting.webhook import backoff_s, mask_webhook, webhook_origin


@given(retry=st.integers(0, 10_000), seed=st.integers(0, 2**32))
def test_backoff_is_jittered_below_a_doubling_capped_span(retry: int, seed: int) -> None:
    delay = backoff_s(retry, 0.5, 30.0, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 0.5 * 2**min(retry, 62))


def test_backoff_spreads_retries() -> None:
    rng = random.Random(1)
    delays = [backoff_s(3, 0.5, 30.0, rng) for _ in range(200)]
    assert max(delays) > 3.0 and min(delays) < 1.0  # full jitter over [0, 4]


@pytest.mark.parametrize(
    ("url", "origin", "masked"),
    [
        ("https://hooks.example/services/T0/B0/s3cr3t", "https://hooks.example",
         "https://hooks.example/***"),
        ("https://u:p4ss@hooks.example:8443/x?token=t0k", "https://hooks.example:8443",
         "https://u:***@hooks.example:8443/***"),
        ("http://u@[::1]:9000", "http://[::1]:9000", "http://u@[::1]:9000"),
        ("http://receiver.example/", "http://receiver.example", "http://receiver.example"),
        ("http://receiver.example/?k=v", "http://receiver.example",
         "http://receiver.example/***"),
        ("http://x:99999/", "***", "***"),
    ],
)
def test_what_is_shown_of_a_webhook(url: str, origin: str, masked: str) -> None:
    assert webhook_origin(url) == origin
    assert mask_webhook(url) == masked
