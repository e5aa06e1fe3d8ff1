"""Resize and JPEG-encode a frame (libjpeg-turbo via OpenCV). CPU work: run it in a thread."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt


def encode_jpeg(
    image: npt.NDArray[np.uint8], max_width: int, quality: int
) -> tuple[bytes, int, int]:
    height, width = image.shape[:2]
    scaled: npt.NDArray[Any] = image
    if width > max_width:
        height = round(height * max_width / width)
        width = max_width
        scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes(), width, height
