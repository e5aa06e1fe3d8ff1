"""What every detector returns, and the interface detector plugins implement."""

from __future__ import annotations

from collections.abc import Sequence
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
