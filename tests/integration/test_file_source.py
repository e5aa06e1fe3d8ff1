"""The file source on real video files (encoded here with PyAV, and the shared footage), and
the dispatcher reaching each source: files here, RTSP through the camera simulator.
(HTTP dispatch is tested beside the MJPEG camera, in test_mjpeg_source.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from ingest.file_source import file_frames
from ingest.source import DecodedFrame, SourceError, SourceStats
from ingest.sources import camera_frames
from simulator.mounts import SimulatorSettings, parse_mount
from simulator.rtsp_server import serve
from tests.support import take_frames

pytestmark = pytest.mark.timeout(60)

FPS = 20  # not the usual 25: pacing must come from the file, not from a default
FRAMES = 40
SIZE = (240, 320)


def picture(index: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A white bar whose position is the frame's index: survives colour-range conversion."""
    image = np.zeros((*SIZE, 3), dtype=np.uint8)
    image[:, 8 * index : 8 * index + 6] = 255
    return image


def write_clip(path: Path, frames: int, fps: int) -> Path:
    """H.264 with B-frames, so decode order differs from presentation order."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        stream.options = {"preset": "veryfast", "bf": "2"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(i), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def indices(frames: list[DecodedFrame]) -> list[int]:
    return [int(np.argmax(f.image[:, :, 1].mean(axis=0) > 128)) // 8 for f in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", FRAMES, FPS)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "short.mp4", 8, FPS)


async def take(source: Any, url: str | Path, count: int | None = None, **kwargs: Any
               ) -> tuple[list[DecodedFrame], SourceError | None]:
    """Frames until `count`, or until the source fails: (frames, its error or None)."""
    return await take_frames(source(url, **kwargs), count)


async def test_every_frame_in_order_then_ended(clip: Path) -> None:
    stats = SourceStats()
    frames, error = await take(file_frames, clip, realtime=False, stats=stats)

    assert error is not None and error.reason == "ended"
    assert indices(frames) == list(range(FRAMES))
    assert all(f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert {f.stream_id for f in frames} == {0}
    assert stats.frames == FRAMES and stats.corrupt_access_units == 0


async def test_real_time_takes_the_clips_duration(clip: Path) -> None:
    started = time.monotonic()
    frames, error = await take(file_frames, f"file://{clip}")
    elapsed = time.monotonic() - started

    assert error is not None and error.reason == "ended" and len(frames) == FRAMES
    duration_s = (FRAMES - 1) / FPS
    assert duration_s * 0.9 < elapsed < duration_s * 1.5 + 0.5
    arrivals = np.diff([f.received_at for f in frames])
    assert float(np.median(arrivals)) == pytest.approx(1 / FPS, abs=0.01)


async def test_shared_footage_gives_the_files_frame_count(shared_data: Path) -> None:
    path = shared_data / "pedestrians" / "tud_campus" / "TUD-Campus.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not present (see ../shared/data/README.md)")
    with av.open(str(path)) as container:
        expected = container.streams.video[0].frames
        height, width = container.streams.video[0].height, container.streams.video[0].width
    frames, error = await take(file_frames, path, realtime=False)

    assert error is not None and error.reason == "ended"
    assert expected > 0 and len(frames) == expected
    assert frames[0].image.shape == (height, width, 3)
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))


async def test_loop_starts_a_new_stream_with_pts_from_zero(clip: Path) -> None:
    frames, error = await take(file_frames, clip, FRAMES * 2 + 5, realtime=False, loop=True)

    assert error is None
    assert [f.stream_id for f in frames] == [0] * FRAMES + [1] * FRAMES + [2] * 5
    assert indices(frames) == [*range(FRAMES), *range(FRAMES), *range(5)]
    assert frames[FRAMES].pts_s == 0.0 and frames[2 * FRAMES].pts_s == 0.0


async def test_loop_in_real_time_keeps_the_pace_across_passes(short_clip: Path) -> None:
    frames, _ = await take(file_frames, short_clip, 8 + 3, loop=True)

    gaps = np.diff([f.received_at for f in frames])
    # The seam between passes is one frame interval: no burst, no pause.
    assert gaps[7] == pytest.approx(1 / FPS, abs=0.02)
    assert float(gaps.max()) < 2 / FPS


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", b"hello, this is no video\n" * 50, "unsupported_codec"),
        ("fake.mp4", b"hello, this is no video\n" * 50, "unsupported_codec"),
        ("empty.mp4", b"", "unsupported_codec"),
        ("absent.mp4", None, "not_found"),
    ],
)
async def test_files_that_are_no_video(
    tmp_path: Path, name: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for target in (path, f"file://{path}"):
        frames, error = await take(file_frames, target, realtime=False, loop=True)
        assert frames == [] and error is not None and error.reason == reason


def zero_payload(clip: Path, path: Path) -> Path:
    """The clip with its coded pictures zeroed: the container opens, no packet decodes."""
    data = bytearray(clip.read_bytes())
    box = data.find(b"mdat")
    size = int.from_bytes(data[box - 4 : box], "big")
    data[box + 4 : box - 4 + size] = bytes(size - 8)
    path.write_bytes(data)
    return path


async def test_a_video_that_decodes_to_nothing_is_refused_even_when_looping(
    short_clip: Path, tmp_path: Path
) -> None:
    stats = SourceStats()
    path = zero_payload(short_clip, tmp_path / "zeroed.mp4")
    frames, error = await take(file_frames, path, realtime=False, loop=True, stats=stats)
    assert frames == [] and error is not None and error.reason == "unsupported_codec"
    assert stats.corrupt_access_units == 8  # every packet skipped and counted, none raised


@pytest.mark.parametrize("url", ["relative/clip.mp4", "file://camera-host/clip.mp4"])
async def test_paths_that_cannot_be_local_files(url: str) -> None:
    _, error = await take(file_frames, url)
    assert error is not None and error.reason == "protocol"


@pytest.fixture(scope="module")
async def simulator() -> AsyncIterator[str]:
    settings = SimulatorSettings(port=0, mounts=(parse_mount("cam1:synthetic:seed=3,fps=25"),))
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, ready=ready.set_result))
    port = await asyncio.wait_for(ready, 30)
    yield f"rtsp://127.0.0.1:{port}/cam1"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_the_dispatcher_reaches_rtsp(simulator: str) -> None:
    stats = SourceStats()
    frames, error = await take(camera_frames, simulator, 5, stats=stats)
    assert error is None and len(frames) == 5 and frames[0].image.shape == (360, 640, 3)
    assert stats.depacketizer is not None  # only the RTSP source fills it


@pytest.mark.parametrize("form", ["path", "url"])
async def test_the_dispatcher_plays_files_in_real_time(clip: Path, form: str) -> None:
    started = time.monotonic()
    frames, _ = await take(camera_frames, str(clip) if form == "path" else f"file://{clip}", 6)
    assert indices(frames) == list(range(6))
    assert time.monotonic() - started > 5 / FPS * 0.9


@pytest.mark.parametrize("url", ["ftp://admin:hunter2@cam/x", "relative/clip.mp4", "cam:554"])
async def test_the_dispatcher_refuses_unknown_schemes(url: str) -> None:
    _, error = await take(camera_frames, url)
    assert error is not None and error.reason == "protocol"
    assert "hunter2" not in str(error)
