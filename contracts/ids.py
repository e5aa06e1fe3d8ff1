"""Typed identifiers. A batch id is deterministic so redeliveries and duplicates are detectable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

CameraId = NewType("CameraId", str)
WorkerId = NewType("WorkerId", str)

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_slug(value: str, what: str) -> str:
    """Ids end up in queue names, routing keys and URLs, so they are restricted to a safe slug."""
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{what} must be 1-63 characters of lowercase letters, digits, '-' or '_', "
            f"starting with a letter or digit; got {value!r}"
        )
    return value


@dataclass(frozen=True, order=True)
class BatchId:
    camera_id: str
    stream_epoch: int
    seq: int

    def __str__(self) -> str:
        return f"{self.camera_id}:{self.stream_epoch}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> BatchId:
        camera, epoch, seq = text.rsplit(":", 2)
        return cls(camera, int(epoch), int(seq))
