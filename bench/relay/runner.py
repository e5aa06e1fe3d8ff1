"""The bench's core: both contestants, one after the other, against the same rig.

It takes endpoints (RABBITMQ_URL, DATABASE_URL) and starts no servers, so the smoke test can
run it on the test services; `__main__` starts private ones. The forwarder goes first because
its saturated throughput sets the paced rate at which both are timed for latency.

Each contestant is its own process, as the balancer is in production, so neither shares the
rig's event loop or core. Per contestant: start, wait until it consumes frames.ingress, a
saturated closed loop (warm-up, then the timed window), drain, a paced open loop at the same
rate for both (warm-up, window), drain, stop. Draining between phases is what lets the books
say "every published batch relayed exactly once".
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert

from balancer.settings import BalancerSettings
from bench.relay.results import ContestantResult, percentile
from bench.relay.rig import HEARTBEAT_INTERVAL_S, Rig, RigConfig, Tally, open_rig
from camcount import processes
from contracts import broker
from contracts.tables import cameras
from infra.db import create_engine

CONTESTANTS = ("forwarder", "balancer")
# The balancer's own default, read from its settings, so the baseline gets the same window.
INGRESS_PREFETCH: int = BalancerSettings.model_fields["ingress_prefetch"].default
READY_TIMEOUT_S = 60.0
PROGRESS_EVERY_S = 2.0

Say = Callable[[str], None]


def say_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchConfig:
    rig: RigConfig = field(default_factory=RigConfig)
    warmup_s: float = 3.0
    window_s: float = 10.0
    paced_fraction: float = 0.5  # of the forwarder's saturated throughput
    paced_rate: float | None = None  # batches/s; overrides paced_fraction
    drain_timeout_s: float = 60.0
    profile_balancer: Path | None = None  # run the balancer under cProfile, stats here


@dataclass(frozen=True)
class BenchResult:
    paced_rate: float
    contestants: list[ContestantResult]


async def seed_cameras(database_url: str, camera_ids: list[str]) -> None:
    """The balancer records an assignment per camera, and assignments reference cameras."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(cameras)
                .values([{"id": c, "name": c, "url": "rtsp://camera.invalid/relay"}
                         for c in camera_ids])
                .on_conflict_do_nothing()
            )
    finally:
        await engine.dispose()


def contestant_argv(name: str, config: BenchConfig) -> list[str]:
    if name == "forwarder":
        return [sys.executable, "-m", "bench.relay.forwarder", "--prefetch",
                str(INGRESS_PREFETCH), "--worker-ids", ",".join(config.rig.worker_ids)]
    if config.profile_balancer is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(config.profile_balancer),
                "-m", "balancer"]
    return processes.role_argv("balancer")


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_bench(config: BenchConfig, rabbitmq_url: str, database_url: str, logs_dir: Path,
                    say: Say = say_stderr) -> BenchResult:
    await seed_cameras(database_url, config.rig.camera_ids)
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": database_url,
           "BALANCER_ID": "relay-bench", "INGRESS_PREFETCH": str(INGRESS_PREFETCH),
           "LOG_LEVEL": "INFO", "OPS_PORT": "0"}
    results: list[ContestantResult] = []
    paced_rate = config.paced_rate
    async with open_rig(config.rig, rabbitmq_url) as rig:
        for name in CONTESTANTS:
            child = processes.spawn(name, contestant_argv(name, config), env,
                                    logs_dir / f"{name}.log")
            try:
                await _wait_consuming(rig, child)
                say(f"[{name}] consuming frames.ingress (prefetch {INGRESS_PREFETCH})")
                result, paced_rate = await _measure(name, rig, child.proc.pid, config,
                                                    paced_rate, say)
            finally:
                await asyncio.to_thread(processes.stop, [child])
            results.append(replace(result, exit_code=child.proc.returncode))
    assert paced_rate is not None
    return BenchResult(paced_rate, results)


async def _measure(name: str, rig: Rig, pid: int, config: BenchConfig,
                   paced_rate: float | None, say: Say) -> tuple[ContestantResult, float]:
    saturated = Tally()
    say(f"[{name}] saturated closed loop, {config.rig.outstanding} outstanding: "
        f"{config.warmup_s:g} s warm-up + {config.window_s:g} s")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(rig.saturate(saturated, config.warmup_s + config.window_s))
        await asyncio.sleep(config.warmup_s)
        start, cpu_start, rig_start, host_start = (time.time(), cpu_seconds(pid),
                                                   cpu_seconds(os.getpid()), host_cpu())
        await _progress(name, saturated, config.window_s, say)
        end, cpu_end, rig_end, host_end = (time.time(), cpu_seconds(pid),
                                           cpu_seconds(os.getpid()), host_cpu())
    await rig.drain(saturated, config.drain_timeout_s)
    relayed = saturated.received_between(start, end)
    rate = relayed / (end - start)
    cpu_ms = (cpu_end - cpu_start) * 1000 / max(relayed, 1)
    rig_pct = (rig_end - rig_start) * 100 / (end - start)
    host_pct = (host_end[0] - host_start[0]) * 100 / max(host_end[1] - host_start[1], 1)
    say(f"[{name}] saturated: {rate:.1f} batches/s, {cpu_ms:.2f} CPU ms/batch; rig process "
        f"{rig_pct:.0f}% of a core, machine {host_pct:.0f}% busy")

    if paced_rate is None:
        paced_rate = max(1.0, rate * config.paced_fraction)
    paced = Tally()
    say(f"[{name}] paced open loop at {paced_rate:.1f} batches/s: "
        f"{config.warmup_s:g} s warm-up + {config.window_s:g} s")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(rig.pace(paced, paced_rate, config.warmup_s + config.window_s))
        await asyncio.sleep(config.warmup_s)
        start = time.time()
        await _progress(name, paced, config.window_s, say)
        end = time.time()
    await rig.drain(paced, config.drain_timeout_s)
    latencies_ms = [s * 1000 for s in paced.latencies_s(start, end)]
    result = ContestantResult(
        name=name, saturated_per_s=rate, cpu_ms_per_batch=cpu_ms, rig_cpu_pct=rig_pct,
        host_busy_pct=host_pct,
        paced_offered_per_s=paced.sent_between(start, end) / (end - start),
        p50_ms=percentile(latencies_ms, 0.5), p99_ms=percentile(latencies_ms, 0.99),
        published=len(saturated.sent_at) + len(paced.sent_at),
        relayed=len(saturated.received_at) + len(paced.received_at),
        duplicates=saturated.duplicates + paced.duplicates,
        stamped=saturated.stamped + paced.stamped, exit_code=None,
    )
    say(f"[{name}] paced: offered {result.paced_offered_per_s:.1f}/s, p50 {result.p50_ms:.1f} "
        f"ms, p99 {result.p99_ms:.1f} ms; relayed {result.relayed}/{result.published}")
    return result, paced_rate


async def _progress(name: str, tally: Tally, seconds: float, say: Say) -> None:
    """Sleep through the timed window, saying what arrives every couple of seconds."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        before, step = len(tally.received_at), min(PROGRESS_EVERY_S, left)
        await asyncio.sleep(step)
        say(f"[{name}]   {(len(tally.received_at) - before) / step:7.1f} batches/s received")


async def _wait_consuming(rig: Rig, child: processes.Child) -> None:
    """Until the contestant holds a consumer on frames.ingress (both log "ready" then) and the
    balancer has heard every fake worker beat (it follows heartbeats only from its start; a
    batch that came first would find one worker live and bind every camera to it), failing
    fast if it exits."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not child.alive:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode} during "
                               "start-up (see its log)")
        # On the raw channel: aio-pika answers a passive declare of a queue it already
        # declared from its cache, with the consumer count of that time.
        raw = await rig.channel.get_underlay_channel()
        declared = await raw.queue_declare(broker.FRAMES_INGRESS, passive=True)
        if (declared.consumer_count or 0) > 0:
            await asyncio.sleep(2 * HEARTBEAT_INTERVAL_S)
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not consume frames.ingress in {READY_TIMEOUT_S:.0f}s")
