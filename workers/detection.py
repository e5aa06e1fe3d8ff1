"""What every detector returns, and the interface detector plugins implement."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Detection:
    """A box in relative (0..1) image coordinates, so tracks survive resolution changes."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    object_class: str

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    @property
    def foot(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, self.y2


class Detector(Protocol):
    """Batched detection for one camera's frames, in order. Stateful detectors (motion) keep
    per-camera state, so callers hold one instance per camera."""

    name: str

    def warm_up(self) -> None: ...

    def detect(self, frames: Sequence[Image]) -> list[list[Detection]]: ...


def check_thresholds(confidence: float, iou_threshold: float) -> None:
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0, 1), got {confidence}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def class_ids(names: Sequence[str], wanted: Collection[str] | None) -> list[int] | None:
    """Model class ids for the wanted names (None: all). An unknown name is a configuration
    error, not something to count zero of silently."""
    if wanted is None:
        return None
    if not wanted:
        raise ValueError("classes must name at least one class (None means all)")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"classes {unknown} are not among the model's {len(names)} classes")
    return [i for i, name in enumerate(names) if name in wanted]
