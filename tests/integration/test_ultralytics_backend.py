"""The ultralytics extra: `camcount model export` output served by OnnxDetector, and
UltralyticsDetector agreeing with OnnxDetector on real footage through the same model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from camcount.model_export import export_onnx
from tests.support import matched_boxes
from workers.detection import Detection, Image
from workers.onnx_detector import OnnxDetector
from workers.ultralytics_detector import UltralyticsDetector
from workers.yolo_decode import COCO80, ModelFamily

if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("ultralytics is not installed (pip install -e '.[ultralytics]', torch first: "
                "see scripts/bootstrap)", allow_module_level=True)

pytestmark = pytest.mark.timeout(120)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
INT8_MODEL = SHARED_DATA / "models" / "yolov8n_int8.onnx"
VIDEO = SHARED_DATA / "pedestrians" / "tud_stadtmitte" / "TUD-Stadtmitte.mp4"
FRAMES = 10
IMGSZ = 320
ANCHORS_320 = sum((IMGSZ // stride) ** 2 for stride in (8, 16, 32))  # 2100

# Measured on the first 10 frames of TUD-Stadtmitte, person only, confidence 0.3 (ultralytics
# 8.4.190, onnxruntime-gpu 1.31.1 on the CPU): both backends found the same 68 boxes, every
# pair at IoU 1.0 (same session, same centred letterbox). The bound leaves room for resize
# rounding in other ultralytics releases, not for a shifted letterbox or swapped channels.
MATCH_IOU = 0.7
MIN_MATCHED = 0.9


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test material not present at {path} (see ../shared/data/README.md)")
    return path


def synthetic_frames(count: int) -> list[Image]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov8n.yaml (random weights: the compute is real, the boxes are not), dynamic batch."""
    out = tmp_path_factory.mktemp("export") / "models" / f"yolov8n-{IMGSZ}.onnx"
    assert export_onnx("yolov8n.yaml", out, imgsz=IMGSZ, dynamic=True) == out
    return out


@pytest.fixture(scope="module")
def footage() -> list[Image]:
    import av

    with av.open(str(need(VIDEO))) as container:
        return [
            np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)
            for _, frame in zip(range(FRAMES), container.decode(video=0), strict=False)
        ]


def assert_valid(results: list[list[Detection]], frames: int) -> None:
    assert len(results) == frames
    for dets in results:
        assert all(0 <= d.x1 <= d.x2 <= 1 and 0 <= d.y1 <= d.y2 <= 1 for d in dets)
        assert all(d.object_class in COCO80 and 0 < d.score <= 1 for d in dets)


def test_yaml_export_is_served_by_the_onnx_detector(exported: Path) -> None:
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]  # no scratch left
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (image,), (output,) = session.get_inputs(), session.get_outputs()
    assert image.shape[1:] == [3, IMGSZ, IMGSZ] and isinstance(image.shape[0], str)
    assert output.shape[1] == 84 and isinstance(output.shape[0], str)
    assert "names" in session.get_modelmeta().custom_metadata_map

    batch = np.zeros((4, 3, IMGSZ, IMGSZ), np.float32)
    assert session.run(None, {image.name: batch})[0].shape == (4, 84, ANCHORS_320)

    detector = OnnxDetector(exported, intra_op_threads=2, confidence=0.01)
    assert detector.family is ModelFamily.YOLOV8
    assert detector.input_size == (IMGSZ, IMGSZ)  # pinned: not OnnxDetector's default 640
    assert detector.fixed_batch is None
    assert detector.class_names == COCO80  # the yaml's placeholder names replaced
    detector.warm_up()
    assert_valid(detector.detect(synthetic_frames(4)), 4)


def test_static_half_export(tmp_path: Path) -> None:
    out = export_onnx("yolov8n.yaml", tmp_path / "static.onnx", imgsz=IMGSZ, dynamic=False,
                      half=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, IMGSZ, IMGSZ]
    assert session.get_outputs()[0].shape == [1, 84, ANCHORS_320]
    detector = OnnxDetector(out, intra_op_threads=2)
    assert detector.fixed_batch == 1 and detector.input_size == (IMGSZ, IMGSZ)
    assert_valid(detector.detect(synthetic_frames(3)), 3)


def test_ultralytics_serves_the_export_and_the_yaml(exported: Path) -> None:
    frames = synthetic_frames(4)
    on_onnx = UltralyticsDetector(exported, confidence=0.01)
    assert on_onnx.name == "ultralytics" and on_onnx.device == "cpu"
    assert on_onnx.input_size == (IMGSZ, IMGSZ)  # the file's fixed size wins over 640
    assert on_onnx.class_names == COCO80
    on_onnx.warm_up()
    assert_valid(on_onnx.detect(frames), 4)

    on_torch = UltralyticsDetector(Path("yolov8n.yaml"), input_size=IMGSZ, classes=["person"])
    on_torch.warm_up()
    results = on_torch.detect(frames)
    assert_valid(results, 4)
    assert all(d.object_class == "person" for dets in results for d in dets)
    assert on_torch.detect([]) == []


def test_bad_configuration_and_frames_are_refused(exported: Path) -> None:
    with pytest.raises(ValueError, match="unicorn"):
        UltralyticsDetector(exported, classes=["person", "unicorn"])
    with pytest.raises(ValueError, match="at least one class"):
        UltralyticsDetector(exported, classes=[])
    with pytest.raises(FileNotFoundError):
        UltralyticsDetector(exported.with_name("missing.onnx"))
    with pytest.raises(ValueError, match="multiple of 32"):
        UltralyticsDetector(exported, input_size=300)
    detector = UltralyticsDetector(exported)
    with pytest.raises(ValueError, match="HxWx3"):
        detector.detect([np.zeros((48, 64), np.uint8)])


def test_gpu_request_falls_back_to_the_cpu(exported: Path) -> None:
    import torch

    detector = UltralyticsDetector(exported, use_gpu=True)
    assert detector.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_onnx_models_ultralytics_cannot_decode_are_refused() -> None:
    # ultralytics would decode YOLOX's raw head as its own and return garbage boxes.
    with pytest.raises(ValueError, match="not an ultralytics export"):
        UltralyticsDetector(need(SHARED_DATA / "models" / "yolox_nano.onnx"))


def boxes(dets: list[Detection]) -> np.ndarray:
    return np.array([[d.x1, d.y1, d.x2, d.y2] for d in dets], np.float64).reshape(-1, 4)


def matches(a: list[Detection], b: list[Detection], threshold: float) -> int:
    return matched_boxes(boxes(a), boxes(b), threshold)


def test_ultralytics_agrees_with_the_onnx_detector_on_real_footage(
    footage: list[Image],
) -> None:
    model = need(INT8_MODEL)
    reference = OnnxDetector(model, classes=["person"], intra_op_threads=2).detect(footage)
    detector = UltralyticsDetector(model, classes=["person"])
    assert detector.input_size == (640, 640)  # the shared model's fixed size
    detector.warm_up()
    results = detector.detect(footage)
    assert_valid(results, FRAMES)
    assert all(d.object_class == "person" and d.score >= 0.3 for dets in results for d in dets)
    assert all(dets for dets in results), "every frame of TUD-Stadtmitte shows people"

    matched = total = 0
    for mine, theirs in zip(results, reference, strict=True):
        total += max(len(mine), len(theirs))
        matched += matches(mine, theirs, MATCH_IOU)
    assert total >= 5 * FRAMES
    assert matched >= MIN_MATCHED * total, f"{matched}/{total} boxes matched at IoU {MATCH_IOU}"
