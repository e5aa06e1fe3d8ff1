"""Which `file://` camera URLs the registry accepts.

Ingest opens whatever path a camera URL names, so an API caller who could register any file
URL could make ingest read any file on its host. Recorded footage is therefore accepted only
under the directory the operator configured (MEDIA_DIR), and refused everywhere while none is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

FILE_SCHEME = "file"


def file_url_path(parts: SplitResult) -> Path:
    # Percent-decoded as a reader of the URL would: "%2e%2e" must not slip past as a name.
    return Path(unquote(parts.path))


def check_file_url_shape(parts: SplitResult) -> None:
    """What a file URL must look like whatever MEDIA_DIR is; raises ValueError saying why."""
    if parts.netloc not in ("", "localhost"):
        raise ValueError("file url must not name a host (file:///path/to/clip.mp4)")
    if parts.query or parts.fragment:
        raise ValueError("file url must not have a query or fragment")
    raw = unquote(parts.path)
    if not raw.startswith("/"):
        raise ValueError("file url needs an absolute path (file:///path/to/clip.mp4)")
    if any(ord(ch) < 0x20 for ch in raw):
        raise ValueError("file url path contains control characters")


def media_file_problem(url: str, media_dir: Path | None) -> str | None:
    """Why `url` may not be registered, or None when it may (any non-file URL may).

    The URL has passed CameraIn's shape checks already. The file need not exist yet: footage
    may be copied in after the camera is registered.
    """
    parts = urlsplit(url)
    if parts.scheme != FILE_SCHEME:
        return None
    if media_dir is None:
        return "file:// camera urls are refused: the registry has no MEDIA_DIR configured"
    root = media_dir.resolve()
    # resolve() also follows symlinks that exist now, so a link out of MEDIA_DIR is refused.
    target = file_url_path(parts).resolve()
    if not target.is_relative_to(root) or target == root:
        return f"file url must name a file under the media directory {root}"
    return None
