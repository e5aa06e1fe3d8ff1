"""The balancer simulation on a tiny world: structural properties only, never timings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from balancer.policy import POLICY_NAMES, PolicyName, make_policy
from bench.balancer_sim import flapping
from bench.balancer_sim.__main__ import main, run_all
from bench.balancer_sim.engine import simulate
from bench.balancer_sim.fleet import SimConfig, build_fleet
from contracts.broker import Priority

TINY = SimConfig(cameras=80, workers=10, duration_s=20.0, seed=3)


def test_the_tiny_world_has_every_kind_of_fault() -> None:
    kinds = {f.kind for f in build_fleet(TINY).faults}
    assert {"crash", "slow", "fast", "errors", "healthy", "join"} <= kinds


@pytest.mark.parametrize("load", [0.7, 1.5])
@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_batch_is_completed_or_a_gap_with_a_reason(name: PolicyName, load: float) -> None:
    config = replace(TINY, load=load)
    tally = simulate(config, build_fleet(config), make_policy(name))
    assert sum(tally.generated.values()) > 0.9 * config.cameras * config.duration_s
    assert tally.accounted() == tally.generated  # nothing lost, nothing counted twice
    assert len(tally.latencies_s) == sum(tally.completed.values())
    assert all(latency > 0 for latency in tally.latencies_s)
    assert tally.gaps["shed"][Priority.CRITICAL] == 0
    if name == "hybrid":
        assert tally.gaps["shed"][Priority.HIGH] == 0
    else:
        assert not tally.gaps["shed"]  # the baselines never shed; their batches go stale


def test_overload_sheds_low_before_normal_and_the_run_is_deterministic() -> None:
    config = replace(TINY, load=1.5)
    first = simulate(config, build_fleet(config), make_policy("hybrid"))
    again = simulate(config, build_fleet(config), make_policy("hybrid"))
    assert first.gaps == again.gaps and first.latencies_s == again.latencies_s
    shed = first.gaps["shed"]
    low_share = shed[Priority.LOW] / first.generated[Priority.LOW]
    normal_share = shed[Priority.NORMAL] / first.generated[Priority.NORMAL]
    assert low_share > normal_share


def test_run_all_and_the_printed_table(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_all(replace(TINY, duration_s=8.0), ["hybrid", "round_robin"])
    assert [(r.scenario, r.policy) for r in rows] == [
        ("nominal", "hybrid"), ("nominal", "round_robin"),
        ("overload", "hybrid"), ("overload", "round_robin")]
    assert main(["--cameras", "30", "--workers", "5", "--duration-s", "5"]) == 0
    out = capsys.readouterr().out
    assert "hybrid p99 / round_robin p99" in out
    assert "least_loaded" in out


def test_the_flapping_replay_prints_moves_with_and_without_the_dwell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert flapping.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    with_dwell, without = (int(line.split("most for one camera")[1].split(",")[0])
                           for line in lines)
    assert with_dwell <= 1 < without  # the replay shows the ping-pong the dwell prevents
