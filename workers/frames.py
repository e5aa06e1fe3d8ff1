"""JPEG decoding of a batch's frames. CPU work: call it from a thread, not the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from contracts.batch import EncodedFrame
from workers.detection import Image


@dataclass(frozen=True)
class DecodedBatch:
    images: list[Image]
    captured_at: list[float]
    corrupt: int  # frames that would not decode; skipped, the rest still count


def decode_frames(frames: Sequence[EncodedFrame]) -> DecodedBatch:
    images: list[Image] = []
    times: list[float] = []
    corrupt = 0
    for frame in frames:
        image = cv2.imdecode(np.frombuffer(frame.jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.shape[0] != frame.height or image.shape[1] != frame.width:
            corrupt += 1
            continue
        images.append(image.astype(np.uint8, copy=False))
        times.append(frame.captured_at)
    return DecodedBatch(images, times, corrupt)
