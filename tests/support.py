"""Shared test helpers: frames from the simulator's pure scenes, seeding rows, polling."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import aio_pika
import numpy as np
import numpy.typing as npt
import uvicorn
from aio_pika.abc import AbstractChannel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from camcount import services
from contracts.batch import EncodedFrame, encode_batch
from contracts.messages import BatchHeaders
from contracts.tables import assignments, camera_progress, cameras, counting_lines, zones
from infra.ops import EmbeddedServer, bound_port
from ingest.jpeg import encode_jpeg
from ingest.source import DecodedFrame, SourceError
from simulator.scenes import SyntheticScene

T = TypeVar("T")

VERTICAL_LINE = {"a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}
RIGHT_HALF = [{"x": 0.5, "y": 0.0}, {"x": 1.0, "y": 0.0}, {"x": 1.0, "y": 1.0},
              {"x": 0.5, "y": 1.0}]


def scene_batches(
    scene: SyntheticScene, *, camera_id: str, fps: float = 10, batch_frames: int = 5,
    stream_epoch: int = 1, assignment_epoch: int | None = 1, deadline_s: float = 3600,
    start_at: float | None = None, tail_s: float = 1.0,
) -> list[tuple[BatchHeaders, bytes]]:
    """The whole scene sampled at `fps`, JPEG-encoded and batched like ingest does, with
    `tail_s` of empty scene after the last object left."""
    base = start_at if start_at is not None else time.time()
    n_frames = int((scene.duration_s + tail_s) * fps)
    frames = []
    for i in range(n_frames):
        jpeg, w, h = encode_jpeg(scene.render(i / fps), 640, 80)
        frames.append(EncodedFrame(base + i / fps, w, h, jpeg))
    out = []
    for seq, start in enumerate(range(0, len(frames), batch_frames)):
        chunk = frames[start : start + batch_frames]
        headers = BatchHeaders(
            camera_id=camera_id, stream_epoch=stream_epoch, seq=seq,
            captured_at=chunk[0].captured_at, deadline_at=chunk[0].captured_at + deadline_s,
            frame_count=len(chunk), assignment_epoch=assignment_epoch,
        )
        out.append((headers, encode_batch(chunk)))
    return out


def truth_totals(scene: SyntheticScene, line_id: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for crossing in scene.truth():
        direction = "in" if crossing.direction == "left_to_right" else "out"
        key = f"{line_id}:{direction}:motion"
        totals[key] = totals.get(key, 0) + 1
    return totals


async def seed_camera(
    engine: AsyncEngine, camera_id: str, *, url: str = "rtsp://camera.invalid/x",
    worker_id: str | None = None, epoch: int = 1,
) -> int:
    """Insert a camera with one vertical centre line, a zone over the right half of the frame
    and optionally its assignment; returns the line id."""
    async with engine.begin() as conn:
        await conn.execute(cameras.insert().values(id=camera_id, name=camera_id, url=url))
        line_id = (
            await conn.execute(
                counting_lines.insert()
                .values(camera_id=camera_id, name="centre", version=1, geometry=VERTICAL_LINE)
                .returning(counting_lines.c.id)
            )
        ).scalar_one()
        await conn.execute(
            zones.insert().values(camera_id=camera_id, name="right", version=1,
                                  polygon=RIGHT_HALF)
        )
        if worker_id is not None:
            await conn.execute(
                assignments.insert().values(camera_id=camera_id, worker_id=worker_id, epoch=epoch)
            )
    return int(line_id)


async def progress(engine: AsyncEngine, camera_id: str) -> tuple[int, dict[str, int]] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(camera_progress.c.last_seq, camera_progress.c.totals)
                .where(camera_progress.c.camera_id == camera_id)
            )
        ).first()
    return (int(row.last_seq), dict(row.totals)) if row else None


async def publish(channel: AbstractChannel, queue: str, headers: BatchHeaders, body: bytes) -> None:
    await channel.default_exchange.publish(
        aio_pika.Message(body, headers=headers.to_amqp(), message_id=str(headers.batch_id),
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=queue,
    )


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 30,
    interval_s: float = 0.1,
) -> T:
    """Poll until ok(probe()) or fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value: {value!r}")
        await asyncio.sleep(interval_s)


def iou_matrix(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Pairwise IoU of two (N, 4) x1, y1, x2, y2 box arrays."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter), np.float64)


def matched_boxes(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64],
                  threshold: float = 0.5) -> int:
    """Greedy one-to-one matching, best IoU first: how many of `a` find a partner in `b`."""
    if not len(a) or not len(b):
        return 0
    iou = iou_matrix(a, b)
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a)


async def take_frames(stream: AsyncGenerator[DecodedFrame, None], count: int | None = None,
                      ) -> tuple[list[DecodedFrame], SourceError | None]:
    """Frames of a source until `count`, or until it fails: (frames, its error or None). The
    source is closed either way (its session torn down)."""
    frames: list[DecodedFrame] = []
    try:
        async with contextlib.aclosing(stream):
            async for frame in stream:
                frames.append(frame)
                if len(frames) == count:
                    return frames, None
    except SourceError as exc:
        return frames, exc
    raise AssertionError("a source ended without raising SourceError")


@contextlib.contextmanager
def broker_memory_alarm() -> Iterator[None]:
    """The test broker in a memory alarm (it blocks every publisher) until the block ends."""
    cfg = services.ServicesConfig.from_env("test")
    services.rabbitmqctl(cfg, "set_vm_memory_high_watermark", "0")
    try:
        yield
    finally:
        services.rabbitmqctl(cfg, "set_vm_memory_high_watermark", "0.4")  # the default


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1",
                  sock: socket.socket | None = None) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn in this event loop, on a free port of `host` (or on the
    bound `sock`); yields its base URL and stops it on exit."""
    server = EmbeddedServer(uvicorn.Config(app, host=host, port=0, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), 10)
        bound = host if sock is None else str(sock.getsockname()[0])
        shown = f"[{bound}]" if ":" in bound else bound
        yield f"http://{shown}:{bound_port(server)}"
    finally:
        server.should_exit = True
        await task
