"""Prometheus metrics of alert evaluation and webhook delivery."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVALUATIONS = Counter("camcount_alert_evaluations_total", "Alert evaluations run by this registry")
EVALUATION_ERRORS = Counter("camcount_alert_evaluation_errors_total",
                            "Alert evaluations that failed (retried at the next interval)")
EVALUATION_SECONDS = Histogram("camcount_alert_evaluation_seconds", "One evaluation, all rules",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
UNMEASURED = Counter("camcount_alert_unmeasured_total",
                     "Rule evaluations whose measurement could not be taken", ["kind"])
TRANSITIONS = Counter("camcount_alert_transitions_total", "Alert state changes written",
                      ["kind", "state"])
OPEN = Gauge("camcount_alerts_open", "Open alerts by state, as of the last evaluation",
             ["state"])
EVALUATING = Gauge("camcount_alert_evaluator_active",
                   "1 while this registry holds the evaluation lock")
WEBHOOKS_SENT = Counter("camcount_alert_webhooks_sent_total", "Webhook deliveries accepted")
WEBHOOK_RETRIES = Counter("camcount_alert_webhook_retries_total", "Webhook attempts retried")
WEBHOOK_FAILURES = Counter("camcount_alert_webhook_failures_total",
                           "Webhook deliveries given up after every attempt", ["reason"])
WEBHOOKS_DROPPED = Counter("camcount_alert_webhooks_dropped_total",
                           "Webhook deliveries dropped: the delivery queue was full")
