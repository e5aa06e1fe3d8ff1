"""Deterministic synthetic scenes with known ground truth. Pure: no I/O, no clock.

A scene is a static textured background on which solid rectangles cross the frame one at a
time. Everything derives from the seed, so `truth()` is the exact answer a counter must give
for a line at x = W/2, and `render(t)` is a pure function of the scene time t.

The background has texture but no per-frame noise and no high-frequency detail: a background
subtractor must see it as perfectly still, and H.264 at keyframes must not make it shimmer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

Direction = Literal["left_to_right", "right_to_left"]
Image = npt.NDArray[np.uint8]

OBJECT_WIDTH_PX = (40, 60)
OBJECT_HEIGHT_PX = (60, 90)
SPEED_PX_S = (120.0, 220.0)
GAP_S = (0.5, 1.5)  # empty screen between one object leaving and the next entering
LANE_HEIGHT_PX = 90
MIN_WIDTH_PX = 160
MIN_HEIGHT_PX = OBJECT_HEIGHT_PX[1] + 10

# Background luma stays in a middle band and object colours far outside it (BGR), so every
# object differs from the background by a wide margin in every lane.
_BACKGROUND_RANGE = (95, 160)
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (20, 20, 20),
    (240, 240, 240),
    (0, 230, 230),
    (140, 10, 10),
    (10, 10, 150),
    (230, 250, 120),
)


@dataclass(frozen=True, slots=True)
class Crossing:
    t_s: float  # scene time at which the object's centre is on x = W/2
    direction: Direction
    object_id: int


@dataclass(frozen=True, slots=True)
class SceneObject:
    object_id: int
    direction: Direction
    width_px: int
    height_px: int
    top_px: int
    speed_px_s: float
    enter_s: float  # its leading edge touches the frame border
    exit_s: float  # its trailing edge leaves the frame
    color_bgr: tuple[int, int, int]

    def left_edge_px(self, t_s: float, frame_width: int) -> float:
        """Exact (sub-pixel) x of the left edge; meaningful between enter_s and exit_s."""
        travelled = (t_s - self.enter_s) * self.speed_px_s
        if self.direction == "left_to_right":
            return -self.width_px + travelled
        return frame_width - travelled

    def crossing_s(self, frame_width: int) -> float:
        # Centre at W/2 after travelling W/2 + w/2 from the fully-outside start, either way.
        return self.enter_s + (frame_width / 2 + self.width_px / 2) / self.speed_px_s


class SyntheticScene:
    def __init__(
        self,
        *,
        seed: int,
        crossings: int,
        width: int = 640,
        height: int = 360,
        warmup_s: float = 2.0,
        loop: bool = False,
    ) -> None:
        if width < MIN_WIDTH_PX or height < MIN_HEIGHT_PX:
            raise ValueError(f"scene needs at least {MIN_WIDTH_PX}x{MIN_HEIGHT_PX} pixels")
        if crossings < 0 or warmup_s < 0:
            raise ValueError("crossings and warmup_s must not be negative")
        self.seed = seed
        self.width = width
        self.height = height
        self.warmup_s = warmup_s
        self.loop = loop
        rng = np.random.default_rng(seed)
        self._background = _background(rng, width, height)
        self.objects = _script(rng, crossings, width, height, warmup_s)
        self.duration_s = self.objects[-1].exit_s if self.objects else warmup_s

    @property
    def period_s(self) -> float | None:
        """Length of one script cycle when looping (None when the scene plays once)."""
        if not self.loop or not self.objects:
            return None
        return self.duration_s

    def truth(self, until_s: float | None = None) -> list[Crossing]:
        """Crossings in time order.

        Without `until_s`, one pass of the script. With it, every crossing before `until_s`,
        including repeats of a looping scene (repeat k renumbers ids by k * len(objects)).
        """
        once = [
            Crossing(obj.crossing_s(self.width), obj.direction, obj.object_id)
            for obj in self.objects
        ]
        if until_s is None:
            return once
        period = self.period_s
        if period is None:
            return [c for c in once if c.t_s < until_s]
        result: list[Crossing] = []
        for cycle in range(math.ceil(until_s / period) + 1):
            for c in once:
                t_s = c.t_s + cycle * period
                if t_s < until_s:
                    result.append(
                        Crossing(t_s, c.direction, c.object_id + cycle * len(self.objects))
                    )
        return result

    def render(self, t_s: float) -> Image:
        """The frame at scene time t_s: (H, W, 3) uint8 BGR, a fresh array."""
        frame = self._background.copy()
        period = self.period_s
        local_t = t_s % period if period is not None else t_s
        for obj in self.objects:
            if obj.enter_s <= local_t <= obj.exit_s:
                self._draw(frame, obj, local_t)
        return frame

    def _draw(self, frame: Image, obj: SceneObject, t_s: float) -> None:
        # Rounding the left edge (not each side) keeps the drawn width constant, so the pixel
        # centre never drifts more than half a pixel from the exact one.
        left = math.floor(obj.left_edge_px(t_s, self.width) + 0.5)
        x0 = max(left, 0)
        x1 = min(left + obj.width_px, self.width)
        if x1 <= x0:
            return
        frame[obj.top_px : obj.top_px + obj.height_px, x0:x1] = obj.color_bgr


def _background(rng: np.random.Generator, width: int, height: int) -> Image:
    low, high = _BACKGROUND_RANGE
    coarse = rng.integers(low, high, size=(9, 16, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    # A few flat tiles give edges to look at without any fine-grained noise.
    for _ in range(12):
        w = int(rng.integers(width // 16, width // 5))
        h = int(rng.integers(height // 16, height // 5))
        x = int(rng.integers(0, width - w))
        y = int(rng.integers(0, height - h))
        shade = tuple(int(v) for v in rng.integers(low, high, size=3))
        cv2.rectangle(smooth, (x, y), (x + w, y + h), shade, thickness=-1)
    return np.clip(smooth, low, high).astype(np.uint8)


def _script(
    rng: np.random.Generator, crossings: int, width: int, height: int, warmup_s: float
) -> tuple[SceneObject, ...]:
    lanes = max(1, height // LANE_HEIGHT_PX)
    lane_height = height // lanes
    objects: list[SceneObject] = []
    start_s = warmup_s
    for object_id in range(crossings):
        w = int(rng.integers(OBJECT_WIDTH_PX[0], OBJECT_WIDTH_PX[1] + 1))
        h = int(rng.integers(OBJECT_HEIGHT_PX[0], OBJECT_HEIGHT_PX[1] + 1))
        h = min(h, lane_height - 2) if lanes > 1 else min(h, height - 2)
        speed = float(rng.uniform(*SPEED_PX_S))
        direction: Direction = "left_to_right" if rng.integers(0, 2) == 0 else "right_to_left"
        lane = object_id % lanes if lanes > 1 else 0
        lane_top = lane * lane_height
        slack = max(0, (lane_height if lanes > 1 else height) - h)
        top = lane_top + int(rng.integers(0, slack + 1))
        color = _PALETTE[int(rng.integers(0, len(_PALETTE)))]
        exit_s = start_s + (width + w) / speed
        objects.append(
            SceneObject(
                object_id=object_id,
                direction=direction,
                width_px=w,
                height_px=h,
                top_px=top,
                speed_px_s=speed,
                enter_s=start_s,
                exit_s=exit_s,
                color_bgr=color,
            )
        )
        start_s = exit_s + float(rng.uniform(*GAP_S))
    return tuple(objects)
