"""bench/soak's core, tiny: 2 cameras, a pool of 2 workers, one fault of each kind, about a
minute of soak on private servers (the memory alarm blocks every publisher of a broker: the
shared test broker must not get one). Asserted: every process was sampled (the killed
worker's replacement as a new series), every fault was injected and recovered, the books
balance, and the report and its files exist. The growth verdict of so short a run is not
asserted (its figures depend on the machine); the detector's machinery is, by a synthetic
leak laid over a real sampled series, which it must name."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from pathlib import Path

import pytest

from bench.soak.growth import DetectorConfig, SeriesKey, judge
from bench.soak.rules import DEFAULT_RULES
from bench.soak.runner import SoakConfig, run_soak
from bench.soak.schedule import FaultKind, each_kind_once
from bench.stack import private_endpoints
from camcount import services

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
AMQP_PORT, PG_PORT = 5712, 5472  # beside the soak's own 5711/5471 and the other benches'
ROLES = {"simulator", "registry", "broadcaster", "balancer", "ingest", "pool"}
WORKERS = {"worker:soak-motion-0", "worker:soak-motion-1"}
MIB = 2.0**20


def test_a_short_soak_samples_everything_survives_each_fault_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # private_services points CAMCOUNT_* at its servers: put them back after the test.
    for name in ("CAMCOUNT_STATE_DIR", "CAMCOUNT_AMQP_PORT", "CAMCOUNT_PG_PORT"):
        monkeypatch.setenv(name, "")
    config = SoakConfig(
        cameras=2, workers=2, duration_s=45.0, warmup_s=10.0, sample_every_s=2.0,
        progress_every_s=10.0, plan=tuple(each_kind_once(start_s=12.0, gap_s=5.0)),
        recovery_timeout_s=60.0, drain_timeout_s=60.0, width=320, height=180,
    )
    lines: list[str] = []
    started = time.monotonic()

    def say(line: str) -> None:
        lines.append(f"{time.monotonic() - started:6.1f} s  {line}")

    results = tmp_path / "results"
    with private_endpoints(REPO_ROOT / ".state" / "soak-smoke", AMQP_PORT, PG_PORT) as (
        endpoints, _
    ):
        broker_ctl = partial(services.rabbitmqctl, services.ServicesConfig.from_env("dev"))
        # Synchronous test: the migrations (asyncio.run) must not start inside a running loop.
        result = asyncio.run(run_soak(config, endpoints.rabbitmq_url,
                                      endpoints.rabbitmq_management_url,
                                      endpoints.database_url, results, broker_ctl,
                                      say=say))
    logs = _logs(lines, result.report, results / "logs")
    print("\n".join([*lines, result.report]))  # the figures in CI's log

    subjects = {subject for subject, _ in result.processes_seen}
    assert subjects >= ROLES | WORKERS, logs
    for subject in ROLES | WORKERS:
        rounds = max(len(points) for key, points in result.series.items()
                     if key.subject == subject and key.metric == "rss_bytes")
        assert rounds >= 10, (subject, logs)
    killed = next(f for f in result.faults if f.kind == FaultKind.KILL_WORKER)
    assert len({pid for s, pid in result.processes_seen if s == f"worker:{killed.target}"}
               ) == 2, logs  # the replacement is a series of its own
    metrics = {(k.subject.split(":")[0], k.metric) for k in result.series}
    for expected in [("broker", "connections"), ("broker", "channels"),
                     ("queue", "messages"), ("postgres", "backends"),
                     ("pipeline", "applied_batches"), ("worker", "backends"),
                     ("ingest", "fds"), ("ingest", "tcp"), ("ingest", "threads")]:
        assert expected in metrics, (expected, logs)
    assert SeriesKey("queue:frames.dead", "messages") in result.series, logs

    assert [f.kind for f in result.faults] == list(FaultKind), logs
    for fault in result.faults:
        assert fault.ok and fault.target, (fault, logs)
    assert result.totals is not None, logs
    assert result.totals.exact, logs  # ingest wrote its confirm log
    assert result.totals.applied_once > 0 and result.totals.applied_twice == 0, logs
    assert result.totals.lost == 0, logs
    assert result.stall[1] < config.stall_limit_s, logs
    assert any("[soak 00:1" in line for line in lines), logs  # progress lines

    for name in ("samples.csv", "samples.jsonl", "judgements.csv", "report.txt"):
        assert (results / name).stat().st_size > 0, name
    assert len((results / "faults.jsonl").read_text().splitlines()) == len(FaultKind)
    report = json.loads((results / "report.json").read_text())
    assert report["ok"] == result.ok and report["failures"] == result.failures
    assert "books: batches confirmed" in result.report
    assert "resource slopes" in result.report and ("PASS" in result.report
                                                   or "FAIL" in result.report)

    # The detector's machinery on this run's own samples: the registry's RSS with a leak of
    # 120 MiB a minute laid over it is named; the samples as they were are not held against
    # this test (a minute says little about growth on a busy machine).
    key, points = next((k, p) for k, p in result.series.items()
                       if k.subject == "registry" and k.metric == "rss_bytes")
    leaking = [(t, v + 120 * MIB * t / 60) for t, v in points]
    detector = DetectorConfig(warmup_s=config.warmup_s, min_span_s=10.0)
    verdict = judge({key: leaking}, DEFAULT_RULES, detector)
    assert [f.kind for f in verdict.findings] == ["growth"], (verdict, logs)
    assert str(verdict.findings[0]).startswith(f"GROWTH: registry (pid {key.instance}) rss")


def _logs(lines: list[str], report: str, folder: Path) -> str:
    """The soak's progress, its report and the tails of the processes' logs."""
    return "\n".join([*lines, report] + [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                                          for p in sorted(folder.glob("*.log"))])
