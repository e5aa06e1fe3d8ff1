"""The rig around the contestants: the simulator serving one looping pre-encoded mount, the
cameras in PostgreSQL, a consumer of frames.ingress that acks every batch and keeps the books,
ingest's /metrics, and CPU time from /proc (Linux)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from contracts.messages import BatchHeaders, MessageError
from contracts.tables import cameras, ingest_nodes
from infra import amqp

MOUNT = "bench"
CAMERA_PREFIX = "ingest-bench-"
NODE_PREFIX = "ingest-bench-node-"
SIMULATOR_READY_TIMEOUT_S = 120.0
# The simulator logs this when a session's thread runs a second behind its schedule.
SIMULATOR_LATE = "late; re-anchoring"


@dataclass(frozen=True)
class StreamSpec:
    """What every camera streams: `source` (a video file, or None for a synthetic scene)
    scaled to width x height at fps, `clip_s` seconds of it encoded once and looped."""

    source: Path | None
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    clip_s: float = 8.0

    def mount(self) -> str:
        common = (f"width={self.width},height={self.height},fps={self.fps:g},"
                  f"preencode_s={self.clip_s:g}")
        if self.source is None:
            return f"{MOUNT}:synthetic:seed=1,crossings=12,warmup_s=0,loop=true,{common}"
        return f"{MOUNT}:file:path={self.source},{common}"

    def describe(self) -> str:
        what = self.source.name if self.source else "synthetic scene"
        return (f"{what} as {self.width}x{self.height} @ {self.fps:g} fps, a {self.clip_s:g} s "
                "pre-encoded loop")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Simulator:
    """`camcount simulate` as a child process with one mount; every camera plays it."""

    def __init__(self, spec: StreamSpec, log_path: Path) -> None:
        self.spec, self.log_path = spec, log_path
        self.port = free_port()
        self.child: processes.Child | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{MOUNT}"

    async def start(self) -> None:
        argv = processes.cli_argv("simulate", "--port", str(self.port), "--mount",
                                  self.spec.mount())
        self.child = child = processes.spawn("simulator", argv, {}, self.log_path)
        deadline = time.monotonic() + SIMULATOR_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not child.alive:
                raise RuntimeError(f"the simulator exited with {child.proc.returncode} "
                                   f"(see {self.log_path})")
            # It listens only once the clip is encoded.
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the simulator did not listen in {SIMULATOR_READY_TIMEOUT_S:.0f} s")

    def late_count(self) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count(SIMULATOR_LATE)
        return 0

    def stop(self) -> None:
        if self.child is not None:
            processes.stop([self.child])


async def register_cameras(engine: AsyncEngine, count: int, url: str,
                           target_fps: float) -> list[str]:
    """Exactly `count` bench cameras, all playing `url`; batching, deadline and priority are
    the schema's defaults, as an operator who gives only the URL and the rate gets them.

    Call it with no bench ingest running. Deleting the cameras drops their leases with them,
    and the bench's node rows go too: a node killed at the end of a trial (it missed the stop
    deadline) would otherwise stay alive on paper until its lease expired, and the next trial's
    node would leave it a fair share of the cameras."""
    ids = [f"{CAMERA_PREFIX}{i:03d}" for i in range(count)]
    async with engine.begin() as conn:
        await conn.execute(ingest_nodes.delete().where(ingest_nodes.c.id.like(NODE_PREFIX + "%")))
        await conn.execute(cameras.delete().where(cameras.c.id.like(f"{CAMERA_PREFIX}%")))
        await conn.execute(cameras.insert(), [
            {"id": c, "name": c, "url": url, "target_fps": target_fps} for c in ids])
    return ids


@dataclass(frozen=True)
class Delivery:
    camera_id: str
    captured_at: float  # the batch's first frame, as ingest stamped it
    arrived_at: float  # its delivery to the bench consumer
    frames: int

    @property
    def latency_s(self) -> float:
        return self.arrived_at - self.captured_at


@dataclass
class Collector:
    """Every batch on frames.ingress, acked on arrival (the bench is the only consumer)."""

    queue: AbstractQueue
    deliveries: list[Delivery] = field(default_factory=list)
    malformed: int = 0

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        arrived_at = time.time()
        try:
            headers = BatchHeaders.from_amqp(message.headers or {})
        except MessageError:
            self.malformed += 1
        else:
            self.deliveries.append(Delivery(headers.camera_id, headers.captured_at, arrived_at,
                                            headers.frame_count))
        await message.ack()

    async def reset(self) -> None:
        await self.queue.purge()
        self.deliveries.clear()
        self.malformed = 0

    def cameras_seen(self) -> set[str]:
        return {d.camera_id for d in self.deliveries}

    def between(self, start: float, end: float) -> list[Delivery]:
        return [d for d in self.deliveries if start <= d.arrived_at < end]


@contextlib.asynccontextmanager
async def open_collector(rabbitmq_url: str) -> AsyncIterator[Collector]:
    connection = await amqp.connect(rabbitmq_url, "ingest-bench-collector")
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=256)
        queue = await amqp.declare_frames_topology(channel)
        collector = Collector(queue)
        await collector.reset()
        tag = await queue.consume(collector.on_message)
        try:
            yield collector
        finally:
            await queue.cancel(tag)
    finally:
        await connection.close()


@dataclass(frozen=True)
class IngestMetrics:
    """What the bench reads of ingest's /metrics; names it does not find stay empty."""

    decoded: dict[str, float]  # camera -> frames decoded so far
    reconnects: float
    drops: float  # every counter of frames, packets or batches dropped or lost, summed
    latency_buckets: dict[float, float]  # capture-to-publish histogram: le -> cumulative count


def parse_ingest_metrics(text: str) -> IngestMetrics:
    decoded: dict[str, float] = {}
    reconnects = drops = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name == "camcount_ingest_frames_decoded_total":
                decoded[sample.labels.get("camera", "")] = sample.value
            elif name == "camcount_ingest_reconnects_total":
                reconnects += sample.value
            elif name == "camcount_ingest_capture_to_publish_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif _counts_media_loss(name):
                drops += sample.value
    return IngestMetrics(decoded, reconnects, drops, buckets)


_MEDIA_WORDS = {"frame", "frames", "packet", "packets", "unit", "units", "batch", "batches"}
_LOSS_WORDS = {"drop", "dropped", "drops", "lost", "loss", "corrupt", "shed"}


def _counts_media_loss(name: str) -> bool:
    """A counter of pictures or packets lost on the way, whatever it is called: ones added
    after this bench was written count too. Lost status writes and the like do not."""
    # Whole words: "published" must not read as "shed".
    words = set(name.split("_"))
    return (name.startswith("camcount_ingest_") and name.endswith("_total")
            and bool(words & _MEDIA_WORDS) and bool(words & _LOSS_WORDS))


async def scrape(port: int) -> IngestMetrics:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
        response.raise_for_status()
    return parse_ingest_metrics(response.text)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times(cpus: Collection[int]) -> tuple[float, float]:
    """(busy, total) seconds of these CPUs so far, from /proc/stat, whoever kept them busy."""
    busy = total = 0
    wanted = {f"cpu{n}" for n in cpus}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in wanted:
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            busy += sum(ticks[:8]) - idle  # guest time is already inside user
            total += sum(ticks[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, total / tick


async def wait_until(condition: Callable[[], bool], alive: Callable[[], bool], what: str,
                     timeout_s: float) -> float:
    """Poll until `condition`; fail fast when `alive` says the contestant exited. Returns the
    seconds waited."""
    started = time.monotonic()
    while not condition():
        if not alive():
            raise RuntimeError(f"{what}: the contestant exited (see its log)")
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def all_cpus() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0))


def spread(values: Iterable[float]) -> tuple[float, float]:
    """(min, mean), (nan, nan) for no values."""
    items = list(values)
    if not items:
        return float("nan"), float("nan")
    return min(items), sum(items) / len(items)
