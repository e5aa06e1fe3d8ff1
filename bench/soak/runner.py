"""The soak's core: a stack under steady load and random faults, sampled until the end, then
drained and judged.

It takes endpoints and starts no servers (`__main__` starts private ones, the smoke test its
own); the caller also hands in `broker_ctl`, rabbitmqctl bound to that node, for the memory
alarm. Phases: launch the stack (bench/stack.py, workers=0) and the worker pool beside it,
register the cameras; then, until the planned end and the last fault's recovery, sample every
`sample_every_s` while the faults strike one after the other; then pause every camera, let
ingest's confirms and the queues drain, and read the books. Sampling stops before the drain,
so pausing the cameras cannot read as a change of the soak's resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.lifetime import Say, StopSignals, say_stderr
from bench.soak.faults import FaultContext, FaultRecord, inject
from bench.soak.growth import (
    DetectorConfig,
    Point,
    Rule,
    SeriesKey,
    Verdict,
    judge,
    longest_stall,
)
from bench.soak.pool import Pool, run_pool
from bench.soak.records import SampleLog
from bench.soak.report import format_report, progress_line, summary_json
from bench.soak.rules import DEFAULT_RULES
from bench.soak.sampler import APPLIED, Sampler, Watched
from bench.soak.schedule import PlannedFault, plan_faults
from bench.soak.totals import (
    CONFIRMED_METRIC,
    Totals,
    applied_count,
    metric_by_camera,
    read_books,
    read_confirm_log,
    tally,
)
from bench.stack import Stack, StackConfig, launch
from contracts import broker
from infra.broker_admin import management_client, read_queue_depths, vhost_of
from infra.db import create_engine

CONFIRM_LOG = "confirmed.jsonl"  # ingest's CONFIRM_LOG: every batch the broker confirmed


@dataclass(frozen=True)
class SoakConfig:
    cameras: int = 20
    workers: int = 2
    duration_s: float = 1800.0
    warmup_s: float = 300.0
    sample_every_s: float = 5.0
    progress_every_s: float = 60.0
    seed: int = 1
    first_fault_s: float = 60.0
    mean_fault_gap_s: float = 60.0
    min_fault_gap_s: float = 30.0
    plan: tuple[PlannedFault, ...] | None = None  # an explicit plan replaces the random one
    recovery_timeout_s: float = 90.0
    drain_timeout_s: float = 90.0
    stall_limit_s: float = 60.0  # longer without a batch applied fails the soak
    width: int = 640
    height: int = 360
    fps: float = 5.0
    batch_frames: int = 5
    batch_ms: int = 1000
    rules: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def faults(self) -> list[PlannedFault]:
        if self.plan is not None:
            return list(self.plan)
        return plan_faults(self.seed, self.first_fault_s, self.duration_s,
                           self.mean_fault_gap_s, self.min_fault_gap_s)


@dataclass
class SoakResult:
    results_dir: Path
    series: dict[SeriesKey, list[Point]]
    processes_seen: set[tuple[str, int]]
    faults: list[FaultRecord]
    verdict: Verdict
    totals: Totals | None
    stall: tuple[float, float]
    failures: list[str]
    report: str
    interrupted: str = ""  # why the soak was cut short ("interrupted by SIGINT after 42 s")

    @property
    def ok(self) -> bool:
        return not self.failures


async def run_soak(config: SoakConfig, rabbitmq_url: str, management_url: str,
                   database_url: str, results_dir: Path, broker_ctl: Callable[..., str],
                   say: Say = say_stderr, stop: StopSignals | None = None) -> SoakResult:
    """With `stop`, a signal at any phase stops every process started (the contexts' own
    `finally`), skips the drain and reports what was sampled, marked interrupted."""
    stack_config = StackConfig(
        results_dir / "logs", workers=0, detector="motion", width=config.width,
        height=config.height, source_fps=config.fps, target_fps=config.fps,
        batch_frames=config.batch_frames, batch_ms=config.batch_ms,
        role_env={"ingest": {"CONFIRM_LOG": str(results_dir / CONFIRM_LOG)}})
    log = SampleLog(results_dir)
    engine = create_engine(database_url, pool_size=1)
    stop = stop or StopSignals(say)  # never signalled: the caller handles signals itself
    soak: _Soak | None = None
    totals: Totals | None = None
    exits: list[str] = []
    try:
        async with stop.cancels_this_task(), \
                launch(stack_config, rabbitmq_url, database_url, say) as stack, \
                run_pool(stack, config.workers) as pool, \
                management_client(management_url, 10) as broker_http:
            await stack.add_cameras(config.cameras)
            say(f"{config.cameras} cameras registered; soaking for {config.duration_s:g} s "
                f"(warm-up {config.warmup_s:g} s), results in {results_dir}")
            say("processes started: " + ", ".join(
                f"{name} {pid}" for name, pid in {**stack.pids, "pool": pool.pid}.items()))
            sampler = Sampler(lambda: _roots(stack, pool), _port_of(database_url),
                              broker_http, vhost_of(rabbitmq_url), engine)
            ctx = FaultContext(stack, pool, broker_http, engine, broker_ctl,
                               lambda port: _owner(sampler, port), random.Random(config.seed),
                               recovery_timeout_s=config.recovery_timeout_s)
            soak = _Soak(config, sampler, log, ctx, lambda: _exits(stack, pool), say)
            await soak.run()
            exits = _exits(stack, pool)
            totals = await _drain_and_count(stack, broker_http, rabbitmq_url, engine,
                                            results_dir / CONFIRM_LOG,
                                            config.drain_timeout_s, say)
    finally:
        log.close()
        await engine.dispose()
    if stop.requested:
        interrupted = f"interrupted by {stop.name}"
        if soak is not None:
            interrupted += f" after {soak.ended_s:.0f} s of soak"
        say(f"{interrupted}: every process it started is stopped; the drain and the books "
            "are skipped")
        return _conclude(config, soak, None, [], log, interrupted)
    assert soak is not None
    return _conclude(config, soak, totals, exits, log)


class _Soak:
    def __init__(self, config: SoakConfig, sampler: Sampler, log: SampleLog,
                 ctx: FaultContext, dead: Callable[[], list[str]], say: Say) -> None:
        self.config, self.sampler, self.log, self.ctx, self.say = config, sampler, log, ctx, say
        self.dead = dead
        self.series: dict[SeriesKey, list[Point]] = {}
        self.faults: list[FaultRecord] = []
        self.started = time.monotonic()
        self.ended_s = 0.0
        self.stop = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() - self.started

    async def run(self) -> None:
        """Until the planned end and the last fault's recovery (which may run past it), or
        until a role dies: a soak whose ingest crashed has nothing more to show."""
        self.started = time.monotonic()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sample())
                planned = tg.create_task(self._planned())
                await self.stop.wait()
                planned.cancel()
        finally:
            self.ended_s = self.now()  # a signal ends it early: the report says when

    async def _planned(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._inject(self.config.faults()))
            await self._sleep_until(self.config.duration_s)
        self.stop.set()

    async def _sample(self) -> None:
        next_progress = self.config.progress_every_s
        while not self.stop.is_set():
            t_s = self.now()
            samples = await self.sampler.sample(t_s)
            self.log.write_round(t_s, time.time(), samples)
            for s in samples:
                self.series.setdefault(s.key, []).append((s.t_s, s.value))
            if dead := self.dead():
                self.say(f"[soak {_clock(t_s)}] ending early: {'; '.join(dead)}")
                self.stop.set()
            if t_s >= next_progress:
                self.say(progress_line(t_s, samples, self.series.get(APPLIED, []),
                                       self.faults))
                next_progress += self.config.progress_every_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.config.sample_every_s)

    async def _inject(self, plan: Sequence[PlannedFault]) -> None:
        for planned in plan:
            await self._sleep_until(planned.at_s)
            at_s = self.now()
            self.say(f"[soak {_clock(at_s)}] fault: {planned.kind}")
            record = await inject(self.ctx, planned.kind, at_s)
            self.faults.append(record)
            self.log.write_fault(record)
            outcome = (f"recovered in {record.recovered_s:.1f} s" if record.ok
                       else f"NOT RECOVERED: {record.error}")
            self.say(f"[soak {_clock(self.now())}] fault {record.kind} on {record.target} "
                     f"({record.detail}): {outcome}")

    async def _sleep_until(self, t_s: float) -> None:
        if (left := t_s - self.now()) > 0:
            await asyncio.sleep(left)


def _roots(stack: Stack, pool: Pool) -> list[Watched]:
    roots = [Watched(name, pid) for name, pid in stack.pids.items()]
    if pool.child.alive:
        roots.append(Watched("pool", pool.pid))
    return roots


def _owner(sampler: Sampler, port: int) -> str:
    subject, pid = sampler.pg_owners.get(port, ("other", ""))
    return f"{subject} (pid {pid})" if pid else subject


def _port_of(database_url: str) -> int:
    return httpx.URL(database_url.replace("postgresql+asyncpg", "http", 1)).port or 5432


def _exits(stack: Stack, pool: Pool) -> list[str]:
    """Roles that are not running at the end (a pool worker is restarted; a role is not)."""
    dead = [f"{name} exited with {c.proc.returncode}" for name, c in stack.children.items()
            if not c.alive]
    if not pool.child.alive:
        dead.append(f"the worker pool exited with {pool.child.proc.returncode}")
    return dead


async def _drain_and_count(stack: Stack, broker_http: httpx.AsyncClient, rabbitmq_url: str,
                           engine: AsyncEngine, confirm_log: Path, timeout_s: float,
                           say: Say) -> Totals:
    """Pause every camera, wait until ingest holds no unconfirmed batch and the frame queues
    are empty, then read the books."""
    say("draining: pausing every camera")
    await stack.set_enabled(stack.camera_ids, False)
    deadline = time.monotonic() + timeout_s
    confirmed: dict[str, float] = {}
    state = ""
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            text = (await http.get(f"{stack.ops_urls['ingest']}/metrics")).text
            confirmed = metric_by_camera(text, CONFIRMED_METRIC)
            pulling = sum(metric_by_camera(text, "camcount_ingest_cameras").values())
            state = f"ingest still pulls {pulling:.0f} cameras"
            # A stopped camera's publisher is done: what it held unconfirmed was recorded
            # as a dropped span (its queued-batches gauge keeps its last value).
            if pulling == 0:
                break
            await asyncio.sleep(1.0)
    vhost, previous = vhost_of(rabbitmq_url), -1
    while time.monotonic() < deadline:
        depths = await read_queue_depths(broker_http, vhost)
        waiting = {q.name: q.messages for q in depths if q.messages
                   and q.name.startswith("frames.") and q.name != broker.FRAMES_DEAD}
        count = await applied_count(engine)
        state = f"queued {waiting or 'nothing'}, {count} applied"
        if not waiting and count == previous:
            break
        previous = count
        await asyncio.sleep(2.0)
    else:
        say(f"draining: not settled within {timeout_s:g} s ({state}); counting anyway")
    applied, gaps = await read_books(engine)
    counted = int(sum(confirmed.values()))
    logged = read_confirm_log(confirm_log)
    if logged is not None and len(logged) != counted:
        say(f"note: the confirm log lists {len(logged)} batches, ingest's counter {counted}")
    return tally(logged if logged is not None else counted, applied, gaps)


def _conclude(config: SoakConfig, soak: _Soak | None, totals: Totals | None,
              exits: list[str], log: SampleLog, interrupted: str = "") -> SoakResult:
    """The verdict and the report; `interrupted` (why the soak was cut short) leads its
    failures, and what needs the whole soak (the books, the stall limit) is not judged."""
    series = soak.series if soak is not None else {}
    faults = soak.faults if soak is not None else []
    seen = soak.sampler.seen_processes if soak is not None else set()
    errors = soak.sampler.errors if soak is not None else []
    verdict = judge(series, config.rules, DetectorConfig(warmup_s=config.warmup_s))
    applied = series.get(APPLIED, [])
    first = next((t for t, v in sorted(applied) if v > 0), None)
    stall = longest_stall(applied, first) if first is not None else (0.0, 0.0)
    failures = [interrupted] if interrupted else []
    failures += [str(f) for f in verdict.findings]
    failures += [f"fault {f.kind} at {f.at_s:.0f} s on {f.target}: {f.error}"
                 for f in faults if not f.ok]
    failures += exits
    if not interrupted:
        if first is None:
            failures.append("no batch was ever applied")
        elif stall[1] > config.stall_limit_s:
            failures.append(f"counting stalled for {stall[1]:.0f} s from {stall[0]:.0f} s")
        if totals is None or not totals.ok:
            failures.append(f"books: {totals.summary() if totals else 'not read'}")
    report = format_report(config, series, verdict, faults, totals, stall, seen, errors,
                           failures, interrupted)
    log.write_judgements(verdict.judgements)
    log.write_report(report, summary_json(verdict, faults, totals, stall, failures,
                                          interrupted))
    return SoakResult(log.folder, series, seen, faults, verdict, totals, stall, failures,
                      report, interrupted)


def _clock(t_s: float) -> str:
    return f"{int(t_s) // 60:02d}:{int(t_s) % 60:02d}"
