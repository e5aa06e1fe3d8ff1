"""The worker pool's edges: GPU discovery and pinning, worker-type files, the child output
relay and the HTTP API's answers (the supervision rules are in test_pool_supervision.py)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from workers.pool.app import UnknownType, UnknownWorker, create_app
from workers.pool.children import relay_output
from workers.pool.gpus import explicit_gpu
from workers.pool.models import StatusOut
from workers.pool.supervision import (
    Draining,
    PoolFull,
)
from workers.pool.worker_types import WorkerTypesError, load_worker_types

# -- GPUs ----------------------------------------------------------------------------------


def test_gpu_device_is_an_index_among_the_visible_gpus() -> None:
    assert explicit_gpu({"GPU_DEVICE": "1"}, {}, ["2", "3"]) == "3"
    assert explicit_gpu({}, {"GPU_DEVICE": "0"}, ["2", "3"]) == "2"
    assert explicit_gpu({}, {}, ["0"]) is None
    assert explicit_gpu({"GPU_DEVICE": "1"}, {}, []) is None  # no GPU: nothing to pin
    with pytest.raises(ValueError, match="sees 2 GPU"):
        explicit_gpu({"GPU_DEVICE": "5"}, {}, ["0", "1"])


# -- worker types --------------------------------------------------------------------------


def test_worker_types_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "types.yaml"
    yaml_file.write_text("fast:\n  detector: motion\n  PREFETCH_COUNT: 8\n  use_gpu: false\n"
                         "  IDLE_TIMEOUT_S: 30\n")
    types = load_worker_types("motion", yaml_file, pool_id="p", max_workers=8)
    assert sorted(types) == ["fast", "motion"]
    fast = types["fast"]
    assert fast.env == {"DETECTOR": "motion", "PREFETCH_COUNT": "8", "USE_GPU": "false"}
    assert fast.idle_timeout_s == 30 and fast.capability == "fast"
    assert types["motion"].env == {} and types["motion"].max_jobs >= 1
    json_file = tmp_path / "types.json"
    json_file.write_text(json.dumps({"x": {"WORKER_TYPE": "motion", "MAX_CONCURRENT_JOBS": 1}}))
    x = load_worker_types("motion", json_file, pool_id="p", max_workers=8)["x"]
    assert x.capability == "motion" and x.max_jobs == 1


@pytest.mark.parametrize(("content", "message"), [
    ({"a": {"DETECTR": "motion"}}, "unknown worker setting(s) DETECTR"),
    ({"a": {"WORKER_ID": "w-1"}}, "WORKER_ID cannot be set"),
    ({"a": {"DETECTOR": "onnx"}}, "DETECTOR=onnx needs MODEL_PATH"),
    ({"a": {"PREFETCH_COUNT": "lots"}}, "PREFETCH_COUNT"),
    ({"a": {"IDLE_TIMEOUT_S": -1}}, "IDLE_TIMEOUT_S: Input should be greater than 0"),
    ({"Bad Name": {}}, "worker type 'Bad Name'"),
    ({"a": ["DETECTOR"]}, "expected a mapping"),
    ({"a": {"DETECTOR": None}}, "expected a mapping"),
])
def test_bad_worker_types_are_refused_with_the_reason(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "types.json"
    path.write_text(json.dumps(content))
    with pytest.raises(WorkerTypesError) as caught:
        load_worker_types("motion", path, pool_id="p", max_workers=8)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_unreadable_worker_types_files(tmp_path: Path) -> None:
    for name, text, message in [("t.txt", "{}", "name it .json"),
                                ("t.json", "{", "not valid JSON"),
                                ("t.yaml", "a: [", "not valid YAML"),
                                ("missing.json", None, "No such file")]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(WorkerTypesError, match=message):
            load_worker_types("motion", path, pool_id="p", max_workers=8)
    with pytest.raises(WorkerTypesError, match="worker ids"):
        load_worker_types("motion", None, pool_id="p" * 60, max_workers=8)


# -- output relay --------------------------------------------------------------------------


async def test_child_output_carries_the_worker_id_once() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"2026 INFO [w-1] camcount.worker: ready\nTraceback (most recent")
    reader.feed_data(b" call last):\n" + b"x" * 70_000 + b"\nno newline at the end")
    reader.feed_eof()
    sink = io.BytesIO()
    await relay_output(reader, "w-1", sink)
    lines = sink.getvalue().split(b"\n")
    assert lines[0] == b"2026 INFO [w-1] camcount.worker: ready"
    assert lines[1] == b"[w-1] Traceback (most recent call last):"
    assert all(line.startswith(b"[w-1] ") for line in lines[2:-1])
    assert lines[-2] == b"[w-1] no newline at the end" and lines[-1] == b""


# -- the API's answers ---------------------------------------------------------------------


class FakePool:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start(self, type_name: str, count: int, idle_timeout_s: float | None,
              idle_from_type: bool) -> list[str]:
        self.calls.append(("start", type_name, count, idle_timeout_s, idle_from_type))
        if type_name == "full":
            raise PoolFull("MAX_WORKERS=1")
        if type_name == "late":
            raise Draining("draining")
        return ["p-a-0"]

    def ensure(self, type_name: str, count: int, idle_timeout_s: float | None,
               idle_from_type: bool) -> list[str]:
        raise UnknownType(f"no worker type {type_name!r}")

    def stop_worker(self, worker_id: str) -> list[str]:
        raise UnknownWorker(f"no worker {worker_id!r}")

    def stop_type(self, type_name: str, count: int) -> list[str]:
        return []

    def status(self) -> StatusOut:
        return StatusOut(total=0, active=0, draining=False, by_type={}, workers=[])

    def health(self) -> dict[str, Any]:
        return {"ok": False}

    def refresh_metrics(self) -> None:
        pass


async def test_api_answers_say_what_is_wrong() -> None:
    pool = FakePool()
    transport = httpx.ASGITransport(app=create_app(pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://pool") as http:
        ok = await http.post("/workers/start", json={"type": "a", "count": 2})
        assert ok.status_code == 202 and ok.json() == {"worker_ids": ["p-a-0"]}
        await http.post("/workers/start", json={"type": "a", "idle_timeout_s": None})
        assert pool.calls == [("start", "a", 2, None, True), ("start", "a", 1, None, False)]
        assert (await http.post("/workers/start", json={"type": "full"})).status_code == 409
        assert (await http.post("/workers/start", json={"type": "late"})).status_code == 503
        bad = await http.post("/workers/start", json={"type": "a", "idle_timeout": 5})
        assert bad.status_code == 422 and "idle_timeout" in bad.text
        missing = await http.post("/workers/ensure", json={"type": "zz", "count": 1})
        assert missing.status_code == 404 and "zz" in missing.json()["detail"]
        assert (await http.post("/workers/stop", json={"worker_id": "q"})).status_code == 404
        both = await http.post("/workers/stop", json={"worker_id": "q", "type": "a", "count": 1})
        assert both.status_code == 422 and "either worker_id" in both.text
        half = await http.post("/workers/stop", json={"type": "a"})
        assert half.status_code == 422 and "both type and count" in half.text
        assert (await http.get("/health")).status_code == 503
        assert (await http.get("/workers/status")).json()["total"] == 0
