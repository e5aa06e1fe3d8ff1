"""OnnxDetector with the real shared models on real pedestrian footage, scored against MOT
ground truth; plus the provider choice and the detector cache, which need no model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests.support import matched_boxes
from workers.detection import Detection, Image
from workers.detector_cache import DetectorCache
from workers.onnx_detector import OnnxDetector
from workers.providers import CPU, CUDA, TENSORRT, choose_providers, lacks_gpu
from workers.yolo_decode import COCO80, ModelFamily

pytestmark = pytest.mark.timeout(120)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MODELS = SHARED_DATA / "models"
SEQUENCE = SHARED_DATA / "pedestrians" / "tud_stadtmitte"
FRAMES = 20

# Measured on the first 20 frames (155 gt boxes), confidence 0.3, person only, IoU 0.5:
# yolov8n_int8 recall 0.865 / precision 0.971; yolox_nano recall 0.852 / precision 0.971.
# The thresholds sit a little below, so a broken letterbox (boxes shifted by the padding)
# or a wrong channel order fails while ONNX Runtime version noise does not.
EXPECTED = {
    "yolov8n_int8": (ModelFamily.YOLOV8, (640, 640), 0.80, 0.90),
    "yolox_nano": (ModelFamily.YOLOX, (416, 416), 0.80, 0.90),
}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test material not present at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="module")
def frames() -> list[Image]:
    import av

    video = need(SEQUENCE / "TUD-Stadtmitte.mp4")
    with av.open(str(video)) as container:
        return [
            np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)
            for _, frame in zip(range(FRAMES), container.decode(video=0), strict=False)
        ]


@pytest.fixture(scope="module")
def ground_truth() -> list[np.ndarray]:
    """Per frame (0-based), the gt boxes as xyxy pixels."""
    rows = np.loadtxt(need(SEQUENCE / "gt" / "gt.txt"), delimiter=",", ndmin=2)
    boxes = []
    for frame_no in range(1, FRAMES + 1):
        xywh = rows[rows[:, 0] == frame_no, 2:6]
        boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1))
    return boxes


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def model(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    need(MODELS / f"{name}.onnx")
    return name


def matches(truth: np.ndarray, found: np.ndarray, threshold: float = 0.5) -> int:
    return matched_boxes(truth, found, threshold)


def to_pixels(dets: list[Detection], width: int, height: int) -> np.ndarray:
    return np.array(
        [[d.x1 * width, d.y1 * height, d.x2 * width, d.y2 * height] for d in dets], np.float64
    ).reshape(-1, 4)


def test_person_recall_against_ground_truth(
    model: str, frames: list[Image], ground_truth: list[np.ndarray]
) -> None:
    family, input_size, min_recall, min_precision = EXPECTED[model]
    detector = OnnxDetector(MODELS / f"{model}.onnx", classes=["person"], intra_op_threads=2)
    assert detector.providers == ["CPUExecutionProvider"]
    assert detector.family is family
    assert detector.input_size == input_size
    assert detector.fixed_batch == 1  # both shared exports pin the batch to 1
    detector.warm_up()
    results = detector.detect(frames)
    assert len(results) == len(frames)
    height, width = frames[0].shape[:2]
    matched = total = found = 0
    for dets, truth in zip(results, ground_truth, strict=True):
        assert all(d.object_class == "person" and 0.3 < d.score <= 1 for d in dets)
        assert all(0 <= d.x1 < d.x2 <= 1 and 0 <= d.y1 < d.y2 <= 1 for d in dets)
        boxes = to_pixels(dets, width, height)
        matched += matches(truth, boxes)
        total += len(truth)
        found += len(boxes)
    recall, precision = matched / total, matched / max(found, 1)
    assert recall >= min_recall, f"{model}: recall {recall:.3f} ({matched}/{total})"
    assert precision >= min_precision, f"{model}: precision {precision:.3f} ({matched}/{found})"


def test_class_names_come_from_metadata_or_coco(model: str) -> None:
    detector = OnnxDetector(MODELS / f"{model}.onnx")
    assert detector.class_names == COCO80  # yolov8 from its `names` metadata, yolox fallback
    assert detector.name == "onnx"
    assert detector.detect([]) == []


def test_bad_configuration_and_frames_are_refused(model: str) -> None:
    with pytest.raises(ValueError, match="unicorn"):
        OnnxDetector(MODELS / f"{model}.onnx", classes=["person", "unicorn"])
    with pytest.raises(ValueError):
        OnnxDetector(MODELS / f"{model}.onnx", classes=[])
    detector = OnnxDetector(MODELS / f"{model}.onnx")
    with pytest.raises(ValueError, match="HxWx3"):
        detector.detect([np.zeros((48, 64), np.uint8)])


def test_gpu_request_falls_back_to_the_cpu(model: str) -> None:
    # onnxruntime-gpu lists TensorRT and CUDA even with no GPU or no CUDA libraries; the
    # session then falls back (and ONNX Runtime prints why). Where a GPU works, it leads.
    detector = OnnxDetector(MODELS / f"{model}.onnx", use_gpu=True)
    assert detector.providers[-1] == "CPUExecutionProvider"


class BatchView:
    """A real batch-1 session that claims another batch dimension (an int, or a name for a
    dynamic one) and runs what it is given row by row, recording the batch sizes."""

    def __init__(self, real: Any, batch: int | str) -> None:
        self.real, self.batch = real, batch
        self.sizes: list[int] = []

    def _relabel(self, args: Sequence[Any]) -> list[Any]:
        return [SimpleNamespace(name=a.name, type=a.type, shape=[self.batch, *a.shape[1:]])
                for a in args]

    def get_inputs(self) -> list[Any]:
        return self._relabel(self.real.get_inputs())

    def get_outputs(self) -> list[Any]:
        return self._relabel(self.real.get_outputs())

    def get_providers(self) -> list[str]:
        return list(self.real.get_providers())

    def get_modelmeta(self) -> Any:
        return self.real.get_modelmeta()

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ((key, batch),) = feeds.items()
        self.sizes.append(len(batch))
        rows = [self.real.run(names, {key: batch[i : i + 1]})[0] for i in range(len(batch))]
        return [np.concatenate(rows)]


@pytest.mark.parametrize(("batch", "sizes"), [("batch", [8, 8, 2]), (4, [4] * 5)])
def test_batches_follow_the_model_batch_dimension(
    model: str, frames: list[Image], monkeypatch: pytest.MonkeyPatch,
    batch: int | str, sizes: list[int],
) -> None:
    """Dynamic: up to max_batch frames per run. Fixed at 4: every run carries exactly 4, the
    last one padded. Either way the results are those of frame-by-frame detection."""
    real_session = ort.InferenceSession
    views: list[BatchView] = []

    def session(*args: Any, **kwargs: Any) -> BatchView:
        views.append(BatchView(real_session(*args, **kwargs), batch))
        return views[-1]

    path = MODELS / f"{model}.onnx"
    one_by_one = OnnxDetector(path).detect(frames[:18])
    monkeypatch.setattr(ort, "InferenceSession", session)
    detector = OnnxDetector(path, max_batch=8)
    assert detector.fixed_batch == (batch if isinstance(batch, int) else None)
    assert detector.detect(frames[:18]) == one_by_one
    assert views[0].sizes == sizes


def test_streams_spread_runs_and_keep_results(model: str, frames: list[Image]) -> None:
    """Two streams run a batch's frames on two threads at once; the detections are those of
    one stream, in frame order, and concurrent callers share the streams."""
    path = MODELS / f"{model}.onnx"
    one = OnnxDetector(path, intra_op_threads=1).detect(frames[:6])
    two = OnnxDetector(path, streams=2, intra_op_threads=1)
    assert two.streams == 2
    threads: set[str] = set()
    real = two._detect_chunk

    def spy(chunk: Sequence[Image]) -> list[list[Detection]]:
        threads.add(threading.current_thread().name)
        return real(chunk)

    two._detect_chunk = spy  # type: ignore[method-assign,assignment]
    assert two.detect(frames[:6]) == one
    assert len(threads) == 2 and all(t.startswith("onnx-stream") for t in threads)
    results: list[list[list[Detection]]] = [[], []]

    def call(i: int) -> None:
        results[i] = two.detect(frames[:6])

    callers = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert results == [one, one]
    two.close()
    with pytest.raises(ValueError, match="streams"):
        OnnxDetector(path, streams=0)


def test_provider_choice() -> None:
    everything = [TENSORRT, CUDA, CPU]
    assert choose_providers(everything, use_gpu=False) == [(CPU, {})]
    assert choose_providers(everything, use_gpu=True, gpu_device=1) == [
        (TENSORRT, {"device_id": "1"}), (CUDA, {"device_id": "1"}), (CPU, {})
    ]
    assert choose_providers([CUDA, CPU], use_gpu=True) == [(CUDA, {"device_id": "0"}), (CPU, {})]
    assert choose_providers([CPU], use_gpu=True) == [(CPU, {})]
    assert lacks_gpu([CPU]) and not lacks_gpu([CUDA, CPU])
    cached = choose_providers(everything, use_gpu=True, trt_cache_dir=Path("/var/cache/trt"))
    assert cached[0] == (TENSORRT, {
        "device_id": "0", "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/var/cache/trt", "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": "/var/cache/trt",
    })
    assert cached[1] == (CUDA, {"device_id": "0"})
    with pytest.raises(ValueError):
        choose_providers(everything, use_gpu=True, gpu_device=-1)


def counting_factory(value: str, calls: list[str]) -> Callable[[], str]:
    def build() -> str:
        calls.append(value)
        return value

    return build


def test_cache_evicts_the_least_recently_used() -> None:
    cache: DetectorCache[str, str] = DetectorCache(capacity=2)
    calls: list[str] = []
    assert cache.get("a", counting_factory("A", calls)) == "A"
    assert cache.get("b", counting_factory("B", calls)) == "B"
    assert cache.get("a", counting_factory("A2", calls)) == "A"  # hit, and now most recent
    cache.get("c", counting_factory("C", calls))  # evicts b, the least recently used
    assert cache.keys() == ["a", "c"] and "b" not in cache and len(cache) == 2
    assert cache.get("b", counting_factory("B2", calls)) == "B2"
    assert calls == ["A", "B", "C", "B2"]
    with pytest.raises(ValueError):
        DetectorCache[str, str](capacity=0)


def test_cache_does_not_keep_failed_loads() -> None:
    cache: DetectorCache[str, str] = DetectorCache(capacity=2)

    def broken() -> str:
        raise RuntimeError("no such model")

    with pytest.raises(RuntimeError):
        cache.get("a", broken)
    assert "a" not in cache
    assert cache.get("a", lambda: "A") == "A"


def test_cache_loads_once_and_slow_loads_do_not_block_other_keys() -> None:
    cache: DetectorCache[str, str] = DetectorCache(capacity=4)
    cache.get("ready", lambda: "R")
    release = threading.Event()
    calls: list[str] = []

    def slow() -> str:
        calls.append("slow")
        release.wait(5)
        return "S"

    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("slow", slow)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.001)
    started = time.monotonic()
    assert cache.get("ready", lambda: "R2") == "R"  # not stuck behind the slow load
    assert time.monotonic() - started < 1
    release.set()
    for thread in threads:
        thread.join(5)
    assert got == ["S"] * 3 and calls == ["slow"]
