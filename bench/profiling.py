"""A profiled contestant's hottest functions, after its benchmark figures."""

from __future__ import annotations

import pstats
import sys
from pathlib import Path


def print_profile(path: Path | None, what: str, top: int) -> None:
    """Prints a note on stdout (the figures carry the profiler's overhead) and the top
    functions by own time on stderr; nothing when no profile was written."""
    if path is None or not path.exists():
        return
    print(f"({what} ran under cProfile: its figures above carry the profiler's overhead)")
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)
