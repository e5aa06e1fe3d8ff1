"""The motion detector's learnt background, kept with the camera so it survives a takeover.

Failover keeps tracker state (the checkpoint), but motion detection has state of its own: the
background model (workers/motion.py). A JPEG of the learnt background at the detector's working
size (320 px wide: a few KB) is written in the apply transaction of a batch at most every
BACKGROUND_EVERY_S of capture time, so only the camera's current owner writes it (fencing).
A worker that creates a camera's detector (a takeover, a restart, a camera moved back) primes
it from the stored image. A background some seconds old serves: it is the scene's static part,
and the first frames refine it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import cv2
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.detector_tables import camera_backgrounds
from workers.detection import Image

JPEG_QUALITY = 90
MIN_FRAMES = 20  # a model younger than this has not learnt the scene: not worth keeping


def encode(image: Image) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"could not encode a background of shape {image.shape}")
    return data.tobytes()


def decode(data: bytes) -> Image | None:
    """None for bytes that are no image (a damaged row primes nothing)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else image.astype(np.uint8, copy=False)


@dataclass
class BackgroundSchedule:
    """When a camera's background is due to be written: pure, on capture times."""

    every_s: float
    _saved_at: dict[str, float] = field(default_factory=dict)

    def due(self, camera_id: str, at_s: float, frames_seen: int) -> bool:
        if frames_seen < MIN_FRAMES:
            return False
        last = self._saved_at.get(camera_id)
        return last is None or at_s - last >= self.every_s or at_s < last  # < : a new stream

    def saved(self, camera_id: str, at_s: float) -> None:
        self._saved_at[camera_id] = at_s

    def forget(self, camera_id: str) -> None:
        self._saved_at.pop(camera_id, None)


async def load(engine: AsyncEngine, camera_id: str) -> bytes | None:
    async with engine.connect() as conn:
        found = await conn.scalar(select(camera_backgrounds.c.image)
                                  .where(camera_backgrounds.c.camera_id == camera_id))
    return None if found is None else bytes(found)


async def save(conn: AsyncConnection, camera_id: str, image: bytes, captured_at: float,
               worker_id: str) -> None:
    """Inside the apply transaction, after its fencing check."""
    values = {"image": image, "captured_at": datetime.fromtimestamp(captured_at, UTC),
              "worker_id": worker_id, "updated_at": func.now()}
    stmt = insert(camera_backgrounds).values(camera_id=camera_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["camera_id"], set_=values))
