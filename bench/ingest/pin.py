"""`python -m bench.ingest.pin CPUS -- PROGRAM [ARGS...]`: run PROGRAM on the given CPUs only.

The affinity is set before exec, so every thread the program ever starts (PyAV's, asyncio's
executors, FFmpeg's) inherits it; pinning a running process afterwards would miss the threads it
had already started. Exec keeps the process id, so the bench reads the program's CPU time from
/proc under the pid it spawned. CPUS is a comma-separated list, e.g. "1" or "2,3".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def parse_cpus(text: str) -> frozenset[int]:
    cpus = frozenset(int(part) for part in text.split(",") if part.strip())
    if not cpus:
        raise ValueError(f"no CPU in {text!r}")
    return cpus


def pinned_argv(cpus: frozenset[int], argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` pinned to `cpus`."""
    return [sys.executable, "-m", "bench.ingest.pin", ",".join(map(str, sorted(cpus))), "--",
            *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    os.sched_setaffinity(0, parse_cpus(args[0]))
    os.execv(args[2], args[2:])
    return 127  # execv replaces this process or raises: never reached


if __name__ == "__main__":
    sys.exit(main())
