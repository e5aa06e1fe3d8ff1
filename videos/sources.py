"""Which files a video job may name: only regular files under VIDEO_SOURCE_DIR.

The runner opens whatever path a job names, so a caller who could name any path could make it
read any file on its host. The path is resolved (every symlink followed, every '..' applied)
before it is judged, and the resolved path is what the job keeps: a link that points out of
the directory is refused, and one swapped in later is never followed.
"""

from __future__ import annotations

from pathlib import Path


def resolve_source(text: str, root: Path | None) -> Path:
    """The resolved file `text` names; ValueError saying why it may not be used. Blocking
    (it reads the file system): call it off the event loop."""
    if root is None:
        raise ValueError("jobs naming a file are refused: the registry has no "
                         "VIDEO_SOURCE_DIR configured (upload the video instead)")
    if any(ord(ch) < 0x20 for ch in text):
        raise ValueError("path contains control characters")
    path = Path(text)
    if not path.is_absolute():
        raise ValueError("path must be absolute")
    base = root.resolve()
    target = path.resolve()
    if not target.is_relative_to(base) or target == base:
        raise ValueError(f"path must name a file under the video source directory {base}")
    if not target.is_file():
        raise ValueError("path names no regular file")
    return target
