"""bench/load's core on the test services, tiny (1 then 2 cameras for a few seconds, 20
WebSocket clients): the whole stack runs, and the report is whole and sane. No timing is
asserted: whether a step is sustained depends on the machine; the figures must only exist,
be non-negative and follow the pipeline's order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.load.fanout import FanoutConfig
from bench.load.latency import STAGES, EventTimes, breakdown
from bench.load.ramp import RampConfig
from bench.load.results import format_report
from bench.load.runner import LoadConfig, run_load
from bench.load.search import Limits, judge, next_cameras
from bench.stack import StackConfig
from contracts.messages import BatchHeaders
from tests.conftest import Isolated

CLIENTS, EVENTS = 20, 5


@pytest.mark.slow
async def test_a_tiny_load_run_reports_every_stage_in_order(isolated: Isolated,
                                                            tmp_path: Path) -> None:
    config = LoadConfig(
        stack=StackConfig(tmp_path, workers=1, clip_s=2),
        # Lenient limits: a busy machine must not stop the ramp before its second step.
        ramp=RampConfig(counts=(1, 2), warmup_s=1.0, window_s=4.0, progress_every_s=2.0,
                        limits=Limits(p99_ms=60_000, min_rate_share=0.01, depth_floor=1000)),
        fanout=FanoutConfig(clients=CLIENTS, events=EVENTS, rate_per_s=5.0, processes=2,
                            grace_s=20.0),
        bare_streams=1, bare_warmup_s=1.0, bare_window_s=2.0,
    )
    lines: list[str] = []
    report = await run_load(config, isolated.rabbitmq_url, isolated.database_url,
                            say=lines.append)
    logs = _logs(lines, tmp_path)

    assert [s.cameras for s in report.steps] == [1, 2], logs
    for step in report.steps:
        assert step.events > 0 and step.disordered == 0, logs
        assert [s.stage for s in step.stages] == list(STAGES), logs
        for s in step.stages:
            # Every event carries every instant: each stage has all the events.
            assert s.count == step.events, (s, logs)
            assert 0 <= s.p50_ms <= s.p95_ms <= s.p99_ms, (s, logs)
        total = step.stages[-1]
        assert total.p99_ms == pytest.approx(step.p99_ms), logs
        # The parts add up to the whole, per event, hence at the medians roughly too.
        assert all(s.p50_ms <= total.p99_ms for s in step.stages), logs
        assert step.slowest_camera_per_s > 0 and step.depth_max >= 0, logs

    bare = report.bare
    assert bare.frames > 0 and bare.cpu_s > 0 and bare.capacity > 0, logs

    assert [f.name for f in report.fanout] == ["bare websockets", "camcount"], logs
    for f in report.fanout:
        assert (f.clients, f.subscribed) == (CLIENTS, CLIENTS), logs
        assert f.delivered + f.missing == CLIENTS * EVENTS and f.delivered > 0, logs
        assert 0 <= f.p50_ms <= f.p95_ms <= f.p99_ms, logs

    assert all(code == 0 for code in report.exit_codes.values()), (report.exit_codes, logs)
    text = format_report(report, 500)
    print(text)  # the figures in the CI log
    for needle in ("camera ramp", "most cameras sustained", "camcount/bare cameras",
                   "stage breakdown at", "to client", "camcount/bare fan-out p99"):
        assert needle in text, text
    assert any("[2 cameras]" in line for line in lines), logs


def _logs(lines: list[str], folder: Path) -> str:
    """The bench's progress and the tails of the processes' logs, to explain a failure."""
    return "\n".join(lines + [f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                              for p in sorted(folder.glob("*.log"))])


def _event(camera: str, seq: int, *instants: float | None) -> EventTimes:
    captured, published, started, committed, broadcast, received = instants
    assert captured is not None and committed is not None and received is not None
    return EventTimes(camera, seq, captured, published, started, committed, broadcast, received)


def test_stages_are_the_differences_between_neighbouring_instants() -> None:
    events = [_event("a", 1, 10.0, 10.01, 10.03, 10.06, 10.10, 10.15),
              _event("a", 2, 11.0, None, 11.03, 11.06, 11.10, 11.35)]
    rows = {r.stage: r for r in breakdown(events)}
    assert rows["ingest"].count == 1 and rows["ingest"].p99_ms == pytest.approx(10)
    assert rows["to worker"].count == 1  # needs "published", which event 2 lacks
    assert rows["worker"].count == 2 and rows["worker"].p50_ms == pytest.approx(30)
    assert rows["total"].p50_ms == pytest.approx(150) and rows["total"].p99_ms == pytest.approx(350)
    assert events[0].in_order and events[1].in_order
    assert not _event("a", 3, 10.0, 10.2, 10.1, 10.3, 10.4, 10.5).in_order


def test_a_step_fails_on_latency_starvation_backlog_or_gaps() -> None:
    fast = [_event(c, i, i, i, i, i, i, i + 0.1) for c in ("a", "b") for i in range(1, 21)]
    ok = judge(["a", "b"], fast, 4.0, 5.0, [0, 1, 0], {}, breakdown(fast), Limits())
    assert ok.sustained and ok.p99_ms == pytest.approx(100) and ok.slowest_camera_per_s == 5
    slow = [_event("a", i, i, i, i, i, i, i + 0.6) for i in range(1, 21)]
    assert "p99" in str(judge(["a"], slow, 4.0, 5.0, [0], {}, [], Limits()).failure)
    starved = fast[:20] + fast[20:22]
    assert "camera b" in str(judge(["a", "b"], starved, 4.0, 5.0, [0], {}, [], Limits()).failure)
    assert "backlog" in str(judge(["a", "b"], fast, 4.0, 5.0, [0, 50], {}, [], Limits()).failure)
    growing = judge(["a", "b"], fast, 4.0, 5.0, [0, 3, 6], {}, [], Limits())
    assert "growing" in str(growing.failure)
    gaps = judge(["a", "b"], fast, 4.0, 5.0, [0], {"shed": 2}, [], Limits())
    assert gaps.failure == "gaps recorded: 2 shed"
    assert judge(["a"], [], 4.0, 5.0, [0], {}, [], Limits()).failure is not None
    assert math.isnan(judge(["a"], [], 4.0, 5.0, [], {}, [], Limits()).p99_ms)


def test_the_ramp_doubles_then_bisects() -> None:
    assert next_cameras({}, 2, 256) == 2
    assert next_cameras({2: True}, 2, 256) == 4
    assert next_cameras({2: True, 4: True, 8: True, 16: False}, 2, 256) == 12
    assert next_cameras({2: True, 4: True, 8: True, 12: False, 16: False}, 2, 256) == 10
    assert next_cameras({8: True, 9: False}, 2, 256) is None
    assert next_cameras({2: False}, 2, 256) == 1  # nothing passed: halve
    assert next_cameras({1: False, 2: False}, 2, 256) is None
    assert next_cameras({128: True}, 2, 200) == 200  # the cap is tried, then it is the answer
    assert next_cameras({128: True, 200: True}, 2, 200) is None


def test_ingest_publish_time_rides_the_batch_headers_to_the_microsecond() -> None:
    """The stage instant the bench reads from the worker's outbox row (published_at) crosses
    AMQP as integer microseconds like the others; a batch without it still reads."""
    stamped = BatchHeaders(camera_id="a", stream_epoch=1, seq=2, captured_at=1_800_000_000.25,
                           deadline_at=1_800_000_010.0, frame_count=1,
                           published_at=1_800_000_000.123456)
    wire = stamped.to_amqp()
    assert wire["published_at_us"] == 1_800_000_000_123_456 and "published_at" not in wire
    assert BatchHeaders.from_amqp(wire) == stamped
    bare = stamped.model_copy(update={"published_at": None})
    assert "published_at_us" not in bare.to_amqp()
    assert BatchHeaders.from_amqp(bare.to_amqp()).published_at is None
