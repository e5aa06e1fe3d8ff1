"""Recorded video jobs end to end: the API (upload streamed to disk, files named only inside
the source directory, lines and zones validated as a camera's), the idempotent finalize under
concurrency with its line and zone merge, uploads deleted once their job is settled, the
runner's /health and /metrics. The segmented count against the single stream on real footage:
test_video_single_stream.py."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import camera_progress, cameras, counting_lines, crossing_events, zones
from contracts.video_tables import video_job_counts
from contracts.zone_tables import zone_events
from tests.conftest import Isolated
from tests.integration.registry_client import bearer, new_key, registry
from tests.integration.roles import Fleet
from tests.support import eventually
from videos import jobs
from videos.finalize import Finalized, finalize
from videos.segments import plan_segments
from videos.service import VideoRunner
from videos.settings import VideoRunnerSettings

CENTRE = [{"name": "centre", "a": {"x": 0.5, "y": 0.0}, "b": {"x": 0.5, "y": 1.0}}]
MIDDLE = [{"name": "middle", "points": [{"x": 0.35, "y": 0.0}, {"x": 0.65, "y": 0.0},
                                         {"x": 0.65, "y": 1.0}, {"x": 0.35, "y": 1.0}]}]


def spec(**overrides: Any) -> dict[str, Any]:
    return {"name": "clip", "capability": "onnx", "lines": CENTRE, **overrides}


def tiny_video(path: Path, frames: int = 12) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 48
        for i in range(frames):
            image = np.full((48, 64, 3), i * 20 % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def multipart(spec_json: str, body: bytes) -> dict[str, Any]:
    return {"files": {"spec": (None, spec_json, "application/json"),
                      "file": ("clip.mp4", body, "video/mp4")}}


async def test_upload_and_path_rules(isolated: Isolated, engine: AsyncEngine,
                                     tmp_path: Path) -> None:
    uploads, sources, outside = tmp_path / "uploads", tmp_path / "sources", tmp_path / "outside"
    sources.mkdir()
    outside.mkdir()
    clip = tiny_video(sources / "clip.mp4")
    secret = outside / "secret.mp4"
    secret.write_bytes(clip.read_bytes())
    (sources / "link.mp4").symlink_to(secret)
    (sources / "notes.txt").write_text("not a video")
    async with registry(isolated, engine, video_dir=uploads, video_source_dir=sources,
                        max_video_bytes=64 * 1024) as api:
        # An upload streams to VIDEO_DIR past the JSON body limit's reach; a job starts pending.
        big = clip.read_bytes() + b"\0" * (300 * 1024 - len(clip.read_bytes()))
        r = await api.post("/api/videos/upload", **multipart(json.dumps(spec()), big[:60_000]))
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["state"] == "pending" and job["uploaded"] and job["counts"] == []
        assert (uploads / f"{job['id']}.video").stat().st_size == 60_000
        # Over MAX_VIDEO_BYTES: 413, nothing left behind.
        r = await api.post("/api/videos/upload", **multipart(json.dumps(spec()), big))
        assert r.status_code == 413, r.text
        assert sorted(p.name for p in uploads.iterdir()) == [f"{job['id']}.video"]
        # A bad spec names its field; the file is removed again.
        r = await api.post("/api/videos/upload",
                           **multipart(json.dumps(spec(segment_s=-1)), clip.read_bytes()))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == [
            "body", "spec", "segment_s"], r.text
        r = await api.post("/api/videos/upload", content=b"{}",
                           headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert len(list(uploads.iterdir())) == 1

        # Naming a file: only a regular file under VIDEO_SOURCE_DIR, judged once resolved.
        r = await api.post("/api/videos", json=spec(path=str(clip)))
        assert r.status_code == 201, r.text
        for bad in (str(sources / ".." / "outside" / "secret.mp4"), str(sources / "link.mp4"),
                    "clip.mp4", str(sources), str(sources / "missing.mp4"), "/etc/passwd"):
            r = await api.post("/api/videos", json=spec(path=bad))
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "path"], r.text
        # Zones as for a camera; a job counts something: a line or a zone at least.
        r = await api.post("/api/videos", json=spec(path=str(clip), lines=[], zones=MIDDLE))
        assert r.status_code == 201, r.text
        assert r.json()["zones"] == MIDDLE and r.json()["zone_counts"] == []
        assert [z["name"] for z in (await api.get(f"/api/videos/{r.json()['id']}")).json()[
            "zones"]] == ["middle"]
        refused: list[tuple[dict[str, Any], list[Any]]] = [
            ({"lines": []}, ["body"]),
            ({"zones": [{"name": "flat", "points": [{"x": 0, "y": 0}] * 3}]},
             ["body", "zones", 0]),
            ({"zones": MIDDLE * 2}, ["body", "zones"])]
        for wrong, where in refused:
            r = await api.post("/api/videos", json=spec(path=str(clip), **wrong))
            assert r.status_code == 422, (wrong, r.text)
            assert r.json()["detail"][0]["loc"] == where, r.text
        r = await api.post("/api/videos/upload", **multipart(
            json.dumps(spec(zones=[{"name": "x", "points": []}])), clip.read_bytes()))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == [
            "body", "spec", "zones"], r.text

        # Roles and sites as for cameras: viewers read, another site's job is a 404.
        viewer = await new_key(engine, "viewer", "shop-2")
        r = await api.post("/api/videos", json=spec(path=str(clip)), headers=bearer(viewer))
        assert r.status_code == 403
        assert (await api.get(f"/api/videos/{job['id']}", headers=bearer(viewer))).status_code \
            == 404
        assert (await api.get("/api/videos", headers=bearer(viewer))).json() == []
        r = await api.post("/api/videos", json=spec(path=str(sources / "notes.txt"),
                                                    site="shop-2"))
        assert r.status_code == 201
        broken = r.json()["id"]
        assert [j["id"] for j in (await api.get("/api/videos", headers=bearer(viewer))).json()] \
            == [broken]
        assert (await api.post(f"/api/videos/{broken}/finalize")).status_code == 409


async def test_the_runner_fails_a_job_over_a_file_that_is_no_video(
        isolated: Isolated, engine: AsyncEngine, tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    async with registry(isolated, engine, video_source_dir=tmp_path) as api:
        r = await api.post("/api/videos", json=spec(path=str(tmp_path / "notes.mp4")))
        assert r.status_code == 201, r.text
        settings = VideoRunnerSettings(database_url=isolated.database_url,
                                       rabbitmq_url=isolated.rabbitmq_url, burst=True)
        async with asyncio.timeout(60):
            await VideoRunner(settings).run(asyncio.Event())  # burst: returns once idle
        got = (await api.get(f"/api/videos/{r.json()['id']}")).json()
        assert got["state"] == "failed" and "notes.mp4" in got["error"], got


FPS, BASE = 25.0, 1_700_000_000.0


ZoneReports = dict[int, list[tuple[int, str, float | None]]]


async def ready_job(engine: AsyncEngine, reports: dict[int, list[tuple[int, str]]],
                    applied_but_last: bool = False, source: Path = Path("/x.mp4"),
                    uploaded: bool = False, zone_reports: ZoneReports | None = None) -> str:
    """A job of three segments over 71 frames (1 s each, 0.8 s overlap) whose segments report
    crossings at the given frames, as (frame, direction) per segment, and zone events, as
    (frame, kind, dwell) per segment."""
    job_id = jobs.new_job_id()
    await jobs.create_job(engine, {
        "id": job_id, "name": "seeded", "site": "default", "source_path": str(source),
        "uploaded": uploaded, "capability": "onnx", "lines": CENTRE, "zones": MIDDLE,
        "segment_s": 1.0, "overlap_s": 0.8, "batch_frames": 5})
    job = await jobs.claim(engine, "runner-test", 30)
    assert job is not None and job.id == job_id
    plan = plan_segments(71, FPS, 1.0, 0.8)
    layout = await jobs.start_segments(engine, job, FPS, 71, BASE, plan, [5, 9, 9])
    async with engine.begin() as conn:
        for segment, batches in zip(layout.segments, layout.batches, strict=True):
            camera_id = jobs.segment_camera_id(job_id, segment.index)
            if not (applied_but_last and segment.index == 2):
                await conn.execute(insert(camera_progress).values(
                    camera_id=camera_id, stream_epoch=1, last_seq=batches - 1,
                    tracker_checkpoint={}, totals={}, worker_id="w"))
            line_id = (await conn.execute(select(counting_lines.c.id).where(
                counting_lines.c.camera_id == camera_id))).scalar_one()
            for frame, direction in reports.get(segment.index, []):
                await conn.execute(insert(crossing_events).values(
                    camera_id=camera_id, line_id=line_id, line_version=1, track_id=frame,
                    object_class="person", direction=direction, stream_epoch=1, seq=0,
                    occurred_at=datetime.fromtimestamp(BASE + frame / FPS, UTC)))
            zone_id = (await conn.execute(select(zones.c.id).where(
                zones.c.camera_id == camera_id))).scalar_one()
            for frame, kind, dwell_s in (zone_reports or {}).get(segment.index, []):
                await conn.execute(insert(zone_events).values(
                    camera_id=camera_id, zone_id=zone_id, zone_version=1, track_id=frame,
                    object_class="person", kind=kind, dwell_s=dwell_s, stream_epoch=1, seq=0,
                    occurred_at=datetime.fromtimestamp(BASE + frame / FPS, UTC)))
    return job_id


async def test_finalize_merges_once_when_triggered_twice_and_concurrently(
        isolated: Isolated, engine: AsyncEngine) -> None:
    # Frames 5-24 and 30-49 are overlap: reported by both neighbours, owned by the earlier.
    reports = {0: [(3, "in"), (24, "out")],
               1: [(7, "in"), (24, "out"), (25, "in"), (49, "in")],
               2: [(49, "in"), (50, "out"), (70, "in")]}
    # In the zone: A from 10 to 40, B from 45 on, C from 60 to 65. Segment 1 (tracking from
    # frame 5) sees A's entry in its overlap; segment 2 (from 30) first sees A inside at 30.
    zone_reports: ZoneReports = {
        0: [(10, "enter", None)],
        1: [(10, "enter", None), (40, "exit", 1.2), (45, "enter", None)],
        2: [(30, "enter", None), (40, "exit", 0.4), (45, "enter", None),
            (60, "enter", None), (65, "exit", 0.2)]}
    not_yet = await ready_job(engine, reports, applied_but_last=True)
    assert await finalize(engine, not_yet, keep_upload=False) is Finalized.NOT_READY

    job_id = await ready_job(engine, reports, zone_reports=zone_reports)
    outcomes = await asyncio.gather(*(finalize(engine, job_id, keep_upload=False)
                                       for _ in range(6)))
    assert sorted(o.value for o in outcomes) == ["already"] * 5 + ["merged"]
    assert await finalize(engine, job_id, keep_upload=False) is Finalized.ALREADY
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(video_job_counts).where(video_job_counts.c.job_id == job_id))
        counts = {(r.line_name, r.direction, r.object_class): r._mapping["count"] for r in rows}
        left = (await conn.execute(select(cameras.c.id).where(
            cameras.c.id.like(f"{job_id}-%")))).all()
    # Owned: segment 0 frames 3, 24; segment 1 frames 25, 49; segment 2 frames 50, 70.
    assert counts == {("centre", "in", "person"): 4, ("centre", "out", "person"): 2}
    assert left == []  # the virtual cameras are gone with their rows
    found = await jobs.read_job(engine, job_id)
    assert found is not None and found.job.state == "done" and found.job.frames_done == 71
    # Owned: entries at 10 (segment 0), 45 (1), 60 (2); exits at 40 (1), 65 (2). B is inside
    # when segment 2's window opens; C joins B: 2 at once.
    async with registry(isolated, engine) as api:
        job = (await api.get(f"/api/videos/{job_id}")).json()
    assert job["zone_counts"] == [{
        "zone": "middle", "object_class": "person", "entries": 3, "exits": 2,
        "peak_occupancy": 2, "dwell_total_s": pytest.approx(1.4), "dwell_count": 2,
        "dwell_avg_s": pytest.approx(0.7)}]
    async with engine.connect() as conn:
        assert (await conn.execute(select(zone_events.c.id))).all() == []  # gone with them


async def test_settling_a_job_deletes_its_upload_unless_kept(engine: AsyncEngine,
                                                            tmp_path: Path) -> None:
    def upload(name: str) -> Path:
        (tmp_path / name).write_bytes(b"video")
        return tmp_path / name

    kept, merged, failed, named = (upload(n) for n in ("k.video", "m.video", "f.video", "n.mp4"))
    job_id = await ready_job(engine, {}, source=kept, uploaded=True)
    assert await finalize(engine, job_id, keep_upload=True) is Finalized.MERGED
    job_id = await ready_job(engine, {}, source=merged, uploaded=True)
    assert await finalize(engine, job_id, keep_upload=False) is Finalized.MERGED
    assert kept.exists() and not merged.exists()
    upload("m.video")  # as if a crash came between the commit and the delete
    assert await finalize(engine, job_id, keep_upload=False) is Finalized.ALREADY
    assert not merged.exists()
    for source, uploaded in ((failed, True), (named, False)):
        job_id = await ready_job(engine, {}, source=source, uploaded=uploaded)
        await jobs.fail(engine, job_id, "broken", keep_upload=False)
    assert not failed.exists()
    assert named.exists(), "a file named under VIDEO_SOURCE_DIR is the operator's"


async def test_the_runner_process_serves_health_and_metrics_and_deletes_uploads(
        isolated: Isolated, engine: AsyncEngine, fleet: Fleet, tmp_path: Path) -> None:
    """The runner as a role process: health and metrics while a job waits for workers and once
    it is done; uploads deleted once their job is failed or finalized."""
    uploads = tmp_path / "uploads"
    clip = tiny_video(tmp_path / "clip.mp4", frames=50).read_bytes()
    async with registry(isolated, engine, video_dir=uploads) as api:
        ids = []
        for name, body in (("broken", b"not a video"), ("clip", clip)):
            r = await api.post("/api/videos/upload", **multipart(json.dumps(spec(
                name=name, capability="motion", segment_s=1.0, overlap_s=0.2)), body))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        broken, job_id = ids
        fleet.start("videos", "videos", {"RUNNER_ID": "videos-ops", "POLL_S": "0.2",
                                         "PROGRESS_S": "0.2"})

        async def metric(name: str, **labels: str) -> float:
            return await fleet.metric("videos", f"camcount_videos_{name}", **labels)

        # No worker yet: the clip's job runs and waits, its first batches published.
        health = await eventually(lambda: fleet.health("videos"),
                                  lambda h: [j["segments_total"] for j in h.get("jobs", [])]
                                  == [2],
                                  timeout_s=60)
        assert health["ok"] and health["runner_id"] == "videos-ops"
        assert [(j["id"], j["segments_done"]) for j in health["jobs"]] == [(job_id, 0)]
        assert await metric("jobs_failed_total", reason="unreadable") == 1
        assert not (uploads / f"{broken}.video").exists()
        await eventually(lambda: metric("batches_published_total"), lambda n: n >= 2)
        assert await metric("frames_published_total") >= 2
        assert await metric("job_progress_ratio", job=job_id) == 0
        await eventually(lambda: metric("jobs", state="running"), lambda n: n == 1)
        assert (uploads / f"{job_id}.video").exists()

        fleet.balancer()
        fleet.worker("w-ops")

        async def state() -> str:
            return str((await api.get(f"/api/videos/{job_id}")).json()["state"])

        assert await eventually(state, lambda s: s in ("done", "failed"), timeout_s=120) \
            == "done"
    await eventually(lambda: fleet.health("videos"), lambda h: h.get("jobs") == [])
    assert await metric("finalize_total", outcome="merged") == 1
    assert await metric("segments_done_total") == 2
    assert await metric("uploads_deleted_total") == 2
    assert not (uploads / f"{job_id}.video").exists()
    exposed = await fleet.get("videos", "/metrics")
    assert exposed is not None and "job_progress_ratio{" not in exposed.text
    await eventually(lambda: metric("jobs", state="done"), lambda n: n == 1)


async def test_a_job_whose_runner_stopped_renewing_is_taken_over(engine: AsyncEngine) -> None:
    job_id = jobs.new_job_id()
    await jobs.create_job(engine, {
        "id": job_id, "name": "lease", "site": "default", "source_path": "/x.mp4",
        "uploaded": False, "capability": "onnx", "lines": CENTRE, "segment_s": 1.0,
        "overlap_s": 0.8, "batch_frames": 5})
    first = await jobs.claim(engine, "runner-a", lease_s=0.5)
    assert first is not None and first.runner_id == "runner-a"
    assert await jobs.claim(engine, "runner-b", lease_s=30) is None  # held
    assert await jobs.renew(engine, job_id, "runner-a", 0.5)
    await asyncio.sleep(0.6)  # runner A stops renewing: its lease runs out
    taken = await jobs.claim(engine, "runner-b", lease_s=30)
    assert taken is not None and taken.id == job_id and taken.runner_id == "runner-b"
    assert not await jobs.renew(engine, job_id, "runner-a", 30)  # A learns it lost the job
