"""bench/ingest's core on the test services, tiny (2 small cameras, a few seconds each): both
contestants run, and the report they make is whole and sane. No timing is asserted: whether a
contestant sustains the cameras depends on the machine; the figures must only exist and agree
with each other."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from pathlib import Path

import numpy as np

from bench.ingest.results import (
    BARE,
    OURS,
    format_summary,
    format_table,
    next_cameras,
    rate_from_batches,
)
from bench.ingest.rig import StreamSpec, parse_ingest_metrics
from bench.ingest.runner import BenchConfig, run_bench
from ingest.rtsp_source import rtsp_frames
from ingest.source import SourceStats
from simulator.encoder import keyframe_interval
from simulator.mounts import SimulatorSettings, parse_mount
from simulator.rtsp_server import serve
from tests.conftest import Isolated

CAMERAS = 2


async def test_both_contestants_report_sane_figures(isolated: Isolated, tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    config = BenchConfig(
        stream=StreamSpec(None, width=640, height=360, fps=25, clip_s=2),
        warmup_s=1.0, window_s=4.0, fixed_cameras=CAMERAS, cameras=(CAMERAS,),
        max_cameras=CAMERAS, sut_cpus=frozenset({cpus[-1]}) if len(cpus) > 1 else None,
        progress_every_s=1.0,
    )
    lines: list[str] = []
    trials = await run_bench(config, isolated.rabbitmq_url, isolated.database_url, tmp_path,
                             say=lines.append)
    logs = _logs(lines, tmp_path)

    assert sorted((t.contestant, t.cameras) for t in trials) == [(BARE, CAMERAS),
                                                                 (OURS, CAMERAS)], logs
    for t in trials:
        assert t.failure is None, logs
        assert t.frames > 0 and t.cpu_s > 0 and 3.0 < t.window_s < 6.0, logs
        assert t.decoded_fps_min is not None and t.decoded_fps_mean is not None, logs
        # Decoding cannot outrun a real-time source by much, however fast the machine.
        assert 0 < t.decoded_fps_min <= t.decoded_fps_mean < 25 * 1.1, logs
        assert math.isfinite(t.cpu_ms_per_frame) and t.lag_growth_s is not None, logs
        assert t.restarts == 0, logs
    ours = next(t for t in trials if t.contestant == OURS)
    assert ours.published_fps_min is not None and 0 < ours.published_fps_min < 5 * 1.2, logs
    assert ours.p50_s is not None and ours.p99_s is not None, logs
    assert 0 < ours.p50_s <= ours.p99_s < 30, logs
    bare = next(t for t in trials if t.contestant == BARE)
    assert bare.stream_bits_per_s is not None and bare.stream_bits_per_s > 10_000, logs

    table = format_table(trials).splitlines()
    assert table[0].startswith("contestant") and table[2].startswith(OURS)
    assert table[3].startswith(BARE) and len(table) == 4
    summary = "\n".join(format_summary(trials, CAMERAS, CAMERAS))
    assert f"{OURS}/{BARE} cameras per core" in summary
    assert f"CPU per decoded frame at {CAMERAS} cameras" in summary
    assert any("every camera published" in line for line in lines), logs


def _logs(lines: list[str], folder: Path) -> str:
    """The bench's progress and the tails of the processes' logs, to explain a failure."""
    return "\n".join(lines + [p.read_text(errors="replace")[-3000:]
                              for p in sorted(folder.glob("*.log"))])


def test_search_bisects_between_the_largest_pass_and_the_first_failure() -> None:
    assert next_cameras({}, 9, 40) == 9
    assert next_cameras({4: True}, 9, 40) == 9  # jump to the estimate
    assert next_cameras({4: True, 9: True}, 9, 40) == 11  # then grow by 15%
    assert next_cameras({4: True, 9: True, 11: False}, 9, 40) == 10
    assert next_cameras({4: True, 9: True, 10: True, 11: False}, 9, 40) is None
    assert next_cameras({4: False}, 9, 40) == 3  # nothing passed: shrink
    assert next_cameras({1: False}, 9, 40) is None
    assert next_cameras({40: True}, 50, 40) is None  # the cap passed: a lower bound


def test_published_rate_counts_whole_batches_between_first_captures() -> None:
    batches = [(100.0 + i, 5) for i in range(6)]
    assert rate_from_batches(batches) == 5.0
    assert rate_from_batches(batches[:1]) is None


async def test_a_preencoded_mount_loops_without_a_seam() -> None:
    """The bench's cameras never end and never glitch: a clip replayed past its end twice
    decodes as one unbroken stream (the frame after the last is the first, an IDR)."""
    spec = parse_mount("loop:synthetic:seed=3,width=320,height=180,fps=25,preencode_s=0.5")
    clip_frames = keyframe_interval(25)  # 0.5 s rounds up to one keyframe interval
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(SimulatorSettings(port=0, mounts=(spec,)),
                                       ready=ready.set_result))
    stats = SourceStats()
    pts: list[float] = []
    images: list[np.ndarray] = []
    try:
        port = await asyncio.wait_for(ready, 30)
        url = f"rtsp://127.0.0.1:{port}/loop"
        async with contextlib.aclosing(rtsp_frames(url, stats=stats)) as frames:
            async for frame in frames:
                pts.append(frame.pts_s)
                images.append(frame.image)
                if len(pts) == 2 * clip_frames + 10:
                    break
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    assert np.allclose(np.diff(pts), 1 / 25, atol=1e-4)
    assert stats.corrupt_access_units == 0
    assert stats.depacketizer is not None and stats.depacketizer.lost_packets == 0
    assert stats.depacketizer.dropped_access_units == 0
    # The same access units again: the same pictures, one clip length apart.
    for i in (0, 5, 9):
        assert np.array_equal(images[i], images[i + clip_frames])
        assert np.array_equal(images[i], images[i + 2 * clip_frames])


def test_drops_are_read_from_any_media_loss_counter_and_nothing_else() -> None:
    text = "\n".join([
        "# TYPE camcount_ingest_frames_dropped_total counter",
        'camcount_ingest_frames_dropped_total{camera="a",why="backpressure"} 3.0',
        "# TYPE camcount_ingest_rtp_packets_lost_total counter",
        'camcount_ingest_rtp_packets_lost_total{camera="a"} 2.0',
        "# TYPE camcount_ingest_batches_published_total counter",
        'camcount_ingest_batches_published_total{camera="a"} 40.0',
        "# TYPE camcount_ingest_status_writes_lost_total counter",
        "camcount_ingest_status_writes_lost_total 7.0",
        "# TYPE camcount_ingest_frames_decoded_total counter",
        'camcount_ingest_frames_decoded_total{camera="a"} 250.0',
    ])
    metrics = parse_ingest_metrics(text + "\n")
    assert metrics.drops == 5.0  # "published" is no "shed", a status write no frame
    assert metrics.decoded == {"a": 250.0}
