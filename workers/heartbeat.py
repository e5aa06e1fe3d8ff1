"""A worker's heartbeats: its load (queue depth, in flight, processing time, capacity), its
cumulative outcomes (the balancer's circuit breaker feeds on their deltas) and the vitals of its
process and GPU.

Process vitals come from /proc/self (no dependency); GPU figures from NVML through pynvml, only
where the worker uses a GPU and pynvml is importable; None otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from contracts import broker
from contracts.messages import WorkerHeartbeat

log = logging.getLogger("camcount.worker")

EMA_ALPHA = 0.2


def capacity_per_s(prepare_ema_s: float, serial_ema_s: float, max_jobs: int) -> float:
    """Batches/s a worker sustains: `max_jobs` batches are prepared (decoded, and detected
    where order does not matter) at once, but the part of each batch that runs in camera order
    (tracking, the commit; detection too for an order-bound detector) runs one at a time.
    Not from decode-to-commit time: that includes waiting for the commit turn, which grows
    with the backlog, not with the work. 0 until something was measured."""
    per_batch_s = max(prepare_ema_s / max(max_jobs, 1), serial_ema_s)
    return 1.0 / per_batch_s if per_batch_s > 0 else 0.0


@dataclass
class Outcomes:
    """Cumulative for this incarnation; what the balancer's breaker is fed with."""

    ok: int = 0
    failed: int = 0
    timed_out: int = 0
    data_errors: int = 0
    processing_ema_s: float = 0.0  # decode start to commit: what a batch takes here now
    prepare_ema_s: float = 0.0  # decoding (and order-free detection): max_jobs at once
    serial_ema_s: float = 0.0  # the in-order part: one at a time

    def processed(self, processing_s: float, prepare_s: float, serial_s: float) -> None:
        if self.processing_ema_s <= 0:
            self.processing_ema_s, self.prepare_ema_s = processing_s, prepare_s
            self.serial_ema_s = serial_s
            return
        self.processing_ema_s += EMA_ALPHA * (processing_s - self.processing_ema_s)
        self.prepare_ema_s += EMA_ALPHA * (prepare_s - self.prepare_ema_s)
        self.serial_ema_s += EMA_ALPHA * (serial_s - self.serial_ema_s)


@dataclass(frozen=True)
class VitalsSample:
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    gpu_name: str | None = None
    gpu_memory_used_bytes: int | None = None
    gpu_memory_total_bytes: int | None = None
    gpu_utilisation_percent: float | None = None


class Vitals:
    """Samples this process's RSS and CPU share, and its GPU when it has one. Blocking reads
    (procfs, NVML): call `sample` off the event loop."""

    def __init__(self, gpu_index: int | None) -> None:
        self._page_bytes = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._ticks_per_s = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last: tuple[float, float] | None = None  # (wall mono, cpu seconds)
        self._nvml: Any = None
        self._gpu: Any = None
        if gpu_index is not None:
            self._open_gpu(gpu_index)

    def sample(self) -> VitalsSample:
        rss = self._rss_bytes()
        cpu = self._cpu_percent()
        if self._gpu is None:
            return VitalsSample(rss, cpu)
        try:
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._gpu)
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._gpu)
            name = self._nvml.nvmlDeviceGetName(self._gpu)
        except Exception as exc:  # NVML errors are many classes; any means "unknown now"
            log.debug("GPU vitals unavailable: %s", exc)
            return VitalsSample(rss, cpu)
        return VitalsSample(rss, cpu, name.decode() if isinstance(name, bytes) else str(name),
                            int(memory.used), int(memory.total), float(rates.gpu))

    def _open_gpu(self, gpu_index: int) -> None:
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            # CUDA_VISIBLE_DEVICES renumbers the GPUs CUDA sees; NVML sees them all.
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
            if 0 <= gpu_index < len(visible) and visible[gpu_index].strip().isdigit():
                gpu_index = int(visible[gpu_index])
            self._gpu = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
            self._nvml = nvml
        except Exception as exc:  # no pynvml, no driver, no such GPU: beats carry None
            log.info("no GPU vitals: %s", exc)

    def _rss_bytes(self) -> int | None:
        try:
            statm = Path("/proc/self/statm").read_text()
            return int(statm.split()[1]) * self._page_bytes
        except (OSError, ValueError, IndexError):
            return None

    def _cpu_percent(self) -> float | None:
        try:
            # Fields after the parenthesised command name; utime and stime are 14 and 15.
            fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / self._ticks_per_s
        except (OSError, ValueError, IndexError):
            return None
        now = time.monotonic()
        last, self._last = self._last, (now, cpu_s)
        if last is None or now <= last[0]:
            return None
        return max(0.0, 100.0 * (cpu_s - last[1]) / (now - last[0]))


async def beat_forever(
    channel: AbstractChannel, queue: AbstractQueue, stop: asyncio.Event, interval_s: float,
    make_beat: Callable[[int, VitalsSample], WorkerHeartbeat], vitals: Vitals,
    jitter_s: float = 0.0,
) -> None:
    """Publish a beat every `interval_s` (plus up to `jitter_s` of injected delay, for tests),
    and a last one with stopping=True when `stop` is set."""
    exchange = await channel.get_exchange(broker.HEARTBEATS)
    rng = random.Random(queue.name)
    while True:
        try:
            # Re-declaring our own queue is idempotent and answers its ready message count.
            depth = (await queue.declare()).message_count or 0
        except Exception as exc:  # a broken channel must not stop the beats that say we live
            log.warning("queue depth unknown: %s", exc)
            depth = 0
        sample = await asyncio.to_thread(vitals.sample)
        beat = make_beat(depth, sample)
        try:
            await exchange.publish(
                aio_pika.Message(beat.model_dump_json().encode(),
                                 content_type="application/json", expiration=10),
                routing_key="",
            )
        except Exception as exc:  # nor must a connection that is being re-established
            log.warning("heartbeat not sent: %s", exc)
        if stop.is_set():
            return
        wait_s = interval_s + (rng.uniform(0, jitter_s) if jitter_s else 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait_s)
