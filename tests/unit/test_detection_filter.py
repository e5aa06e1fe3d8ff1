from __future__ import annotations

from workers.camera_config import DetectionFilter
from workers.detection import Detection


def det(cls: str, score: float) -> Detection:
    return Detection(0.1, 0.1, 0.2, 0.2, score, cls)


FRAMES = [[det("person", 0.9), det("car", 0.8), det("person", 0.35)], [det("bus", 0.5)]]


def test_no_filter_keeps_everything() -> None:
    assert DetectionFilter().apply(FRAMES) == FRAMES


def test_classes_and_confidence_filter_per_frame() -> None:
    kept = DetectionFilter(frozenset({"person"}), 0.5).apply(FRAMES)
    assert kept == [[det("person", 0.9)], []]
    assert DetectionFilter(None, 0.6).apply(FRAMES) == [[det("person", 0.9), det("car", 0.8)], []]
