"""A recorded video counted in segments equals the single stream, on both TUD clips: the clip
as one segment and in segments processed in parallel by two ONNX workers through the real
balancer give the same line counts and the same zone entries, exits and peaks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from camcount import processes
from tests.conftest import Isolated
from tests.integration.registry_client import registry
from tests.integration.roles import Fleet
from tests.support import eventually

CLIPS = {
    # clip: (file, counting line at x (relative), segment_s, overlap_s). Segments far shorter
    # than in production, so that these short clips have boundaries mid-walk; the overlaps are
    # below the 3 s default (confirmation + settling + hand-over) and still enough here.
    "campus": ("tud_campus/TUD-Campus.mp4", 0.5, 1.0, 0.8),
    "stadtmitte": ("tud_stadtmitte/TUD-Stadtmitte.mp4", 0.75, 2.0, 1.2),
}


def by_key(job: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    return {(c["line"], c["direction"], c["object_class"]): c["count"] for c in job["counts"]}


def by_zone(job: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """Per zone and class: entries, exits, peak occupancy, exits with a dwell. Not the dwell
    itself: an object inside across a boundary has it measured from the later segment's
    overlap (videos/zone_merge.py)."""
    return {(c["zone"], c["object_class"]): (c["entries"], c["exits"], c["peak_occupancy"],
                                             c["dwell_count"]) for c in job["zone_counts"]}


@pytest.mark.slow
@pytest.mark.parametrize("clip", sorted(CLIPS))
async def test_a_segmented_job_counts_like_the_single_stream(
        clip: str, isolated: Isolated, engine: AsyncEngine, fleet: Fleet, shared_data: Path,
        tmp_path: Path) -> None:
    """The clip as one segment (the single stream) and in segments processed in parallel by
    two ONNX workers: the same counts per line, direction and class, and the same zone
    entries, exits and peak occupancy per zone and class."""
    name, x, segment_s, overlap_s = CLIPS[clip]
    source = shared_data / "pedestrians" / name
    model = shared_data / "models" / "yolov8n_int8.onnx"
    line = [{"name": "door", "a": {"x": x, "y": 0.0}, "b": {"x": x, "y": 1.0}}]
    # A band around the line: whoever crosses it walks through the zone.
    band = [{"name": "band", "points": [{"x": x - 0.15, "y": 0.0}, {"x": min(x + 0.15, 1.0),
                                                                   "y": 0.0},
                                        {"x": min(x + 0.15, 1.0), "y": 1.0},
                                        {"x": x - 0.15, "y": 1.0}]}]
    fleet.balancer()
    for worker_id in ("w-video-1", "w-video-2"):
        fleet.worker(worker_id, WORKER_TYPE="onnx", DETECTOR="onnx", MODEL_PATH=str(model),
                     DETECT_CLASSES="person")
    await fleet.wait_live("b1", {"w-video-1", "w-video-2"}, timeout_s=120)
    async with registry(isolated, engine, video_source_dir=source.parent) as api:
        created = {}
        for kind, seg_s in (("single", 3600.0), ("segmented", segment_s)):
            r = await api.post("/api/videos", json={
                "name": f"{clip} {kind}", "capability": "onnx", "path": str(source),
                "lines": line, "zones": band, "segment_s": seg_s, "overlap_s": overlap_s})
            assert r.status_code == 201, r.text
            created[kind] = r.json()["id"]
        fleet.children["videos"] = processes.spawn(
            "videos", [sys.executable, "-m", "videos"],
            {**isolated.env(), "RUNNER_ID": "videos-test", "BURST": "true",
             "PROGRESS_S": "0.2", "LOG_EVERY_S": "0.5"}, tmp_path / "videos.log")
        seen: list[dict[str, Any]] = []

        async def job(job_id: str) -> dict[str, Any]:
            got: dict[str, Any] = (await api.get(f"/api/videos/{job_id}")).json()
            seen.append(got)
            return got

        results = {}
        for kind, job_id in created.items():

            async def this_job(j: str = job_id) -> dict[str, Any]:
                return await job(j)

            results[kind] = await eventually(this_job,
                                             lambda g: g["state"] in ("done", "failed"),
                                             timeout_s=300, interval_s=0.2)
            assert results[kind]["state"] == "done", results[kind]["error"]
        # The runner finalized each job; an operator's finalizes, twice at once, change nothing.
        again = await asyncio.gather(*(api.post(f"/api/videos/{created['segmented']}/finalize")
                                       for _ in range(2)))
        assert [r.status_code for r in again] == [200, 200]
        assert all(by_key(r.json()) == by_key(results["segmented"])
                   and r.json()["zone_counts"] == results["segmented"]["zone_counts"]
                   for r in again)
    single, segmented = results["single"], results["segmented"]
    assert single["segments_total"] == 1 and segmented["segments_total"] >= 3
    assert segmented["frames_done"] == segmented["frames_total"] == single["frames_total"]
    # Progress only ever grows while a job runs.
    for job_id in created.values():
        frames = [g["frames_done"] for g in seen if g["id"] == job_id]
        assert frames == sorted(frames)
    print(f"{clip}: single stream {by_key(single)} {single['zone_counts']}, "
          f"{segmented['segments_total']} segments {by_key(segmented)} "
          f"{segmented['zone_counts']}")
    assert sum(by_key(single).values()) > 0, "the single stream counted nobody: test is void"
    assert by_key(segmented) == by_key(single)
    assert sum(e for e, *_ in by_zone(single).values()) > 0, "nobody entered the zone: void"
    # Stadtmitte's owned zone events equal the single stream's one by one. Campus's differ by
    # a pair that cancels out (its 0.8 s overlap is shorter than the tracker's warm-up with its
    # lost-track buffer): the second segment's cold tracker split one person in two, the lost
    # track leaving the zone at frame 37 when its buffer ran out, and the third never confirmed
    # one who left at frame 58 (found by dumping each segment's zone_events).
    assert by_zone(segmented) == by_zone(single)
    log = (tmp_path / "videos.log").read_text()
    assert f"video job {created['segmented']}: segments" in log
    assert f"video job {created['segmented']} finalized (merged)" in log
