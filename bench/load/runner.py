"""The load bench's core: one stack, then the fan-out pair, the bare baseline and the ramp.

It takes endpoints (RABBITMQ_URL, DATABASE_URL) and starts no servers, so the smoke test can
run it on the test services; `__main__` starts private ones. The fan-out and the baseline run
first, while no camera streams, so neither competes with the ramp's cameras.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field

from bench.load.fanout import FanoutConfig, FanoutResult, fanout_bare, fanout_camcount
from bench.load.ramp import RampConfig, run_ramp
from bench.load.search import StepResult
from bench.stack import Say, StackConfig, launch, say_stderr


@dataclass(frozen=True)
class LoadConfig:
    stack: StackConfig
    ramp: RampConfig = field(default_factory=RampConfig)
    fanout: FanoutConfig | None = field(default_factory=FanoutConfig)  # None: skipped
    bare_streams: int = 4
    bare_warmup_s: float = 3.0
    bare_window_s: float = 10.0


@dataclass(frozen=True)
class BareResult:
    """Decode + motion in one process, no broker or database (bench/load/bare.py)."""

    streams: int
    frames: int
    cpu_s: float
    wall_s: float
    errors: int
    cores: int
    fps: float  # the source's: the baseline decodes and detects every frame

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s * 1000 / self.frames if self.frames else float("nan")

    @property
    def capacity(self) -> float:
        """Cameras at `fps` this machine's cores could decode and detect, if nothing else."""
        per_camera_s = self.cpu_ms_per_frame / 1000 * self.fps
        return self.cores / per_camera_s if per_camera_s > 0 else float("nan")


@dataclass(frozen=True)
class LoadReport:
    steps: list[StepResult]
    bare: BareResult
    fanout: list[FanoutResult]
    exit_codes: dict[str, int | None]


async def run_load(config: LoadConfig, rabbitmq_url: str, database_url: str,
                   say: Say = say_stderr) -> LoadReport:
    fanout: list[FanoutResult] = []
    async with launch(config.stack, rabbitmq_url, database_url, say) as stack:
        if config.fanout is not None:
            fanout.append(await fanout_bare(config.fanout, config.stack.log_dir, say))
            say(_fanout_line(fanout[-1]))
            fanout.append(await fanout_camcount(stack, config.fanout, say))
            say(_fanout_line(fanout[-1]))
        say(f"[bare] decode + motion on {config.bare_streams} streams: "
            f"{config.bare_warmup_s:g} s warm-up + {config.bare_window_s:g} s")
        bare = await run_bare(stack.camera_url, config)
        say(f"[bare] {bare.cpu_ms_per_frame:.2f} CPU ms per frame: about "
            f"{bare.capacity:.0f} cameras at {bare.fps:g} fps on {bare.cores} core(s)")
        steps = await run_ramp(stack, config.ramp, say)
    return LoadReport(steps, bare, fanout, stack.exit_codes)


def _fanout_line(r: FanoutResult) -> str:
    return (f"[fanout {r.name}] {r.subscribed}/{r.clients} clients, {r.delivered} delivered, "
            f"{r.missing} missing; p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")


async def run_bare(url: str, config: LoadConfig) -> BareResult:
    with (config.stack.log_dir / "bare.log").open("ab") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load.bare", "--url", url, "--streams",
            str(config.bare_streams), "--warmup-s", str(config.bare_warmup_s), "--seconds",
            str(config.bare_window_s), stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            out, _ = await child.communicate()
        except BaseException:
            # Cancelled (Ctrl+C) or failed while it runs: it must not outlive the benchmark.
            if child.returncode is None:
                child.kill()
                await asyncio.shield(child.wait())
            raise
    lines = out.decode().strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"bench.load.bare exited with {child.returncode} (see "
                           f"{config.stack.log_dir / 'bare.log'})")
    found = json.loads(lines[-1])
    return BareResult(int(found["streams"]), int(found["frames"]), float(found["cpu_s"]),
                      float(found["wall_s"]), int(found["errors"]),
                      len(os.sched_getaffinity(0)), config.stack.source_fps)
