"""The worker's retry decision, its attempt log, the capacity estimate and the heartbeat's
compatibility with beats of older workers."""

from __future__ import annotations

import json

import pytest

from contracts import broker
from contracts.messages import WorkerHeartbeat
from workers.heartbeat import Outcomes, Vitals, capacity_per_s
from workers.retry import AttemptLog, GiveUp, HandBack, Retry, RetryPolicy, attempts_header
from workers.settings import WorkerSettings

POLICY = RetryPolicy(max_attempts=3, max_total_attempts=7, base_delay_s=0.5, max_delay_s=1.5)


@pytest.mark.parametrize(
    ("failures_here", "failures_before", "verdict"),
    [
        (1, 0, Retry(0.5)),  # first failure: back off the base delay
        (2, 0, Retry(1.0)),  # doubling ...
        (2, 4, Retry(1.0)),
        (3, 0, HandBack(3)),  # max_attempts here: another worker should try
        (3, 3, HandBack(6)),
        (1, 6, GiveUp(7)),  # the fleet-wide limit wins over local retries
        (3, 4, GiveUp(7)),
        (9, 9, GiveUp(18)),
    ],
)
def test_retry_decision_table(failures_here: int, failures_before: int,
                              verdict: Retry | HandBack | GiveUp) -> None:
    assert POLICY.decide(failures_here, failures_before) == verdict


def test_back_off_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, max_total_attempts=10, base_delay_s=1, max_delay_s=4)
    assert [policy.decide(n, 0) for n in range(1, 6)] == [
        Retry(1), Retry(2), Retry(4), Retry(4), Retry(4)]


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"max_attempts": 5, "max_total_attempts": 4},
    {"base_delay_s": -1.0}, {"base_delay_s": 2.0, "max_delay_s": 1.0},
])
def test_retry_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_every_batch_ends_handed_back_or_given_up_within_the_total() -> None:
    """Walk one batch through workers that all fail it: it is retried at most max_attempts
    times per worker and never more than max_total_attempts overall."""
    before, workers = 0, 0
    while True:
        workers += 1
        here = 0
        while True:
            here += 1
            verdict = POLICY.decide(here, before)
            if not isinstance(verdict, Retry):
                break
        assert here <= POLICY.max_attempts
        if isinstance(verdict, GiveUp):
            assert verdict.attempts_total == POLICY.max_total_attempts
            break
        before = verdict.attempts_total
    assert workers == 3  # 3 + 3 + 1


def test_attempt_log_counts_forgets_and_stays_bounded() -> None:
    log = AttemptLog(capacity=2)
    assert [log.failed("a"), log.failed("a"), log.failed("b")] == [1, 2, 1]
    log.forget("a")
    assert log.failed("a") == 1
    log.failed("c")  # evicts the least recently failed ("b")
    assert len(log) == 2 and log.failed("b") == 1


@pytest.mark.parametrize(("value", "count"), [
    (None, 0), (3, 3), ("4", 4), (b"5", 5), (-2, 0), ("x", 0), (True, 0), (1.5, 0)])
def test_attempts_header_tolerates_foreign_values(value: object, count: int) -> None:
    assert attempts_header(value) == count


@pytest.mark.parametrize(("prepare_s", "serial_s", "jobs", "capacity"), [
    (0.0, 0.0, 2, 0.0),  # nothing measured yet: the balancer assumes its default
    (0.4, 0.1, 2, 5.0),  # preparation overlaps: two at once, 0.2 s each
    (0.4, 0.3, 2, 1 / 0.3),  # the in-order part is the bottleneck
    (0.5, 0.5, 1, 2.0),
    (0.0, 0.25, 2, 4.0),  # an order-bound detector: all of the work is in order
])
def test_capacity_from_prepare_and_serial_time(prepare_s: float, serial_s: float,
                                               jobs: int, capacity: float) -> None:
    assert capacity_per_s(prepare_s, serial_s, jobs) == pytest.approx(capacity)


def test_outcomes_start_the_ema_at_the_first_measure() -> None:
    out = Outcomes()
    out.processed(1.0, 0.3, 0.5)
    assert (out.processing_ema_s, out.prepare_ema_s, out.serial_ema_s) == (1.0, 0.3, 0.5)
    out.processed(2.0, 0.3, 0.5)
    assert out.processing_ema_s == pytest.approx(1.2)


def test_vitals_read_this_process_without_a_gpu() -> None:
    vitals = Vitals(gpu_index=None)
    first = vitals.sample()
    assert first.rss_bytes is not None and first.rss_bytes > 10_000_000  # python + numpy
    assert first.cpu_percent is None  # a share needs two samples
    sum(i * i for i in range(200_000))
    second = vitals.sample()
    assert second.cpu_percent is not None and second.cpu_percent >= 0
    assert second.gpu_name is None


def test_a_beat_of_an_older_worker_still_parses_with_defaults() -> None:
    old = {"schema_version": 1, "worker_id": "w1", "boot_id": "b", "queue": "q",
           "in_flight": 2, "processed": 7, "latency_ema_s": 0.1, "capacity_fps": 0.0,
           "sent_at": 1.0, "stopping": False}
    beat = WorkerHeartbeat.model_validate_json(json.dumps(old))
    assert beat.batches_ok == 0 and beat.capacity_per_s == 0 and beat.rss_bytes is None
    assert beat.heartbeat_interval_s is None


@pytest.mark.parametrize(("fault", "mode", "seconds"), [
    ("fail_until@12.5", "fail_until", 12.5), ("beat_jitter@1", "beat_jitter", 1.0),
    ("fail_until@3", "beat_jitter", 0.0), ("before_commit@4", "fail_until", 0.0),
    ("", "fail_until", 0.0),
])
def test_fault_seconds(fault: str, mode: str, seconds: float) -> None:
    settings = WorkerSettings(fault_injection=fault)
    assert settings.fault_seconds(mode) == seconds


def test_settings_refuse_more_attempts_here_than_overall() -> None:
    with pytest.raises(ValueError, match="MAX_ATTEMPTS"):
        WorkerSettings(max_attempts=5, max_total_attempts=4)


def test_ingress_has_a_single_active_consumer_and_workers_do_not() -> None:
    assert broker.INGRESS_QUEUE.arguments["x-single-active-consumer"] is True
    assert "x-single-active-consumer" not in broker.worker_queue("w1").arguments
