"""The frame batch container: a small binary envelope of JPEG frames plus per-frame metadata.

Layout (big-endian): magic b"CCB1" | u32 meta_len | meta (UTF-8 JSON, no pixels) | JPEG bytes
concatenated in frame order. The JSON holds each frame's capture time, size and byte length,
so a reader can slice frames without parsing JPEG, and a corrupt frame spoils only itself.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.messages import MessageError

MAGIC = b"CCB1"
_HEAD = struct.Struct(">4sI")
MAX_META_BYTES = 1 << 20
MAX_FRAMES = 1024


@dataclass(frozen=True)
class EncodedFrame:
    captured_at: float
    width: int
    height: int
    jpeg: bytes


def encode_batch(frames: Sequence[EncodedFrame]) -> bytes:
    meta = json.dumps(
        {
            "frames": [
                {"t": f.captured_at, "w": f.width, "h": f.height, "n": len(f.jpeg)}
                for f in frames
            ]
        },
        separators=(",", ":"),
    ).encode()
    return b"".join([_HEAD.pack(MAGIC, len(meta)), meta, *(f.jpeg for f in frames)])


def decode_batch(body: bytes) -> list[EncodedFrame]:
    """Parse a container; any structural problem raises MessageError with the reason."""
    if len(body) < _HEAD.size:
        raise MessageError(f"batch body too short ({len(body)} bytes)")
    magic, meta_len = _HEAD.unpack_from(body)
    if magic != MAGIC:
        raise MessageError(f"batch body has unknown magic {magic!r} (expected {MAGIC!r})")
    if meta_len > MAX_META_BYTES or _HEAD.size + meta_len > len(body):
        raise MessageError(f"batch metadata length {meta_len} exceeds the body")
    try:
        meta = json.loads(body[_HEAD.size : _HEAD.size + meta_len])
        entries = meta["frames"]
        if not isinstance(entries, list) or len(entries) > MAX_FRAMES:
            raise TypeError("frames must be a list of at most 1024 entries")
        specs = [
            (float(e["t"]), int(e["w"]), int(e["h"]), int(e["n"])) for e in entries
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"batch metadata is malformed: {exc}") from None
    offset = _HEAD.size + meta_len
    frames: list[EncodedFrame] = []
    for t, w, h, n in specs:
        if n < 0 or offset + n > len(body):
            raise MessageError("batch frame lengths exceed the body")
        frames.append(EncodedFrame(t, w, h, body[offset : offset + n]))
        offset += n
    if offset != len(body):
        raise MessageError(f"batch body has {len(body) - offset} trailing bytes")
    return frames
