"""bench/relay's core on the test services, tiny: the books must balance for both contestants
(every published batch relayed exactly once), whatever the timings. The bench's numbers mean
nothing if its producer, fake workers or drain lose or double batches."""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import select

from bench.relay.results import format_table, format_verdict
from bench.relay.rig import RigConfig
from bench.relay.runner import BenchConfig, run_bench
from contracts.tables import assignments
from infra.db import create_engine
from tests.conftest import Isolated


async def test_both_contestants_relay_every_batch_exactly_once(
    isolated: Isolated, tmp_path: Path
) -> None:
    rig = RigConfig(cameras=3, workers=2, body_bytes=20_000, outstanding=8)
    config = BenchConfig(rig=rig, warmup_s=0.3, window_s=1.0, paced_rate=20.0,
                         drain_timeout_s=20.0)
    lines: list[str] = []
    result = await run_bench(config, isolated.rabbitmq_url, isolated.database_url, tmp_path,
                             say=lines.append)

    assert [r.name for r in result.contestants] == ["forwarder", "balancer"]
    assert result.paced_rate == 20.0
    logs = _logs(lines, tmp_path)
    for r in result.contestants:
        assert r.published > 0, logs
        assert (r.relayed, r.duplicates) == (r.published, 0), logs
        assert r.exit_code == 0, logs  # both drain and stop cleanly on SIGTERM
        assert r.saturated_per_s > 0 and r.paced_offered_per_s > 0
        assert math.isfinite(r.p99_ms) and r.p99_ms >= r.p50_ms > 0
    forwarder, balancer = result.contestants
    # Only the balancer stamps the assignment epoch; the forwarder passes headers untouched.
    assert (forwarder.stamped, balancer.stamped) == (0, balancer.published)
    table = format_table(result.contestants, result.paced_rate)
    assert table.splitlines()[2].startswith("forwarder")
    assert "balancer/forwarder throughput" in format_verdict(result.contestants)

    engine = create_engine(isolated.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(assignments.c.camera_id,
                                              assignments.c.worker_id))).all()
    finally:
        await engine.dispose()
    # The balancer spread the cameras over the fake workers and recorded each in PostgreSQL.
    assert sorted(r.camera_id for r in rows) == rig.camera_ids
    assert {r.worker_id for r in rows} == set(rig.worker_ids)


def _logs(lines: list[str], folder: Path) -> str:
    """The bench's progress and the contestants' logs, to explain a failed assertion."""
    return "\n".join(lines + [p.read_text() for p in sorted(folder.glob("*.log"))])
