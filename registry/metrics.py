"""Prometheus metrics of the registry."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HEARTBEATS = Counter("camcount_registry_heartbeats_total", "Worker heartbeats recorded")
REQUESTS = Counter("camcount_registry_http_requests_total", "API requests",
                   ["method", "route", "status"])
LATENCY = Histogram("camcount_registry_http_request_seconds", "API request latency", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
AUTH_FAILURES = Counter("camcount_registry_auth_failures_total",
                        "Requests refused for their API key", ["reason"])
RATE_LIMITED = Counter("camcount_registry_rate_limited_total", "Requests refused with 429")
BODIES_REFUSED = Counter("camcount_registry_bodies_refused_total",
                         "Requests refused with 413 (body over MAX_BODY_BYTES)")
