"""Resident memory of every process of a fault scenario, sampled from /proc, and the judgement
"bounded": after its warm-up a process's RSS must plateau.

Why growth means a leak here: every buffer on the data path is bounded by design (ingest's
outbox per camera, the workers' prefetch and reorder window, the balancer's prefetch), so once
a process has seen its steady load and its first faults, its RSS may only wobble (allocator
fragmentation, lazily imported code paths, a retry's traceback). The limit below allows that
wobble and fails a process that keeps growing: its late peak must stay within GROWTH_FACTOR of
its early peak plus SLACK_BYTES.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Early = the first third of a process's samples (after WARMUP_SAMPLES); late = the last third.
WARMUP_SAMPLES = 5
MIN_SAMPLES = 15  # fewer (a worker killed a few seconds after start) cannot show a trend
GROWTH_FACTOR = 1.25
# Python processes here sit at 60-200 MiB; 48 MiB is the first faults' one-off costs (a
# reconnect's new channel and buffers, exception tracebacks), not a trend.
SLACK_BYTES = 48 * 1024 * 1024


def rss_bytes(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # gone
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None  # a zombie has no VmRSS


@dataclass
class Series:
    name: str
    pid: int
    samples: list[int] = field(default_factory=list)

    def verdict(self) -> str | None:
        """None when bounded (or too short to judge), else why not."""
        usable = self.samples[WARMUP_SAMPLES:]
        if len(usable) < MIN_SAMPLES:
            return None
        third = len(usable) // 3
        early, late = max(usable[:third]), max(usable[-third:])
        limit = early * GROWTH_FACTOR + SLACK_BYTES
        if late > limit:
            return (f"{self.name} (pid {self.pid}) RSS grew from {early / 2**20:.0f} MiB to "
                    f"{late / 2**20:.0f} MiB (limit {limit / 2**20:.0f} MiB)")
        return None


@dataclass
class MemorySampler:
    """Samples `pids()` (name -> pid, re-read each round: restarted processes get new series)
    every `every_s` until stopped."""

    pids: Callable[[], Mapping[str, int]]
    every_s: float = 1.0
    series: dict[tuple[str, int], Series] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for name, pid in self.pids().items():
            rss = rss_bytes(pid)
            if rss is not None:
                self.series.setdefault((name, pid), Series(name, pid)).samples.append(rss)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def problems(self) -> list[str]:
        return [v for s in self.series.values() if (v := s.verdict()) is not None]

    def summary(self) -> str:
        peaks: dict[str, int] = {}
        for s in self.series.values():
            if s.samples:
                peaks[s.name] = max(peaks.get(s.name, 0), max(s.samples))
        shown = ", ".join(f"{n} {p / 2**20:.0f}" for n, p in sorted(peaks.items()))
        return f"memory: peak RSS MiB: {shown}; {len(self.problems())} unbounded"

    def assert_bounded(self) -> None:
        problems = self.problems()
        assert not problems, "memory not bounded: " + "; ".join(problems)
