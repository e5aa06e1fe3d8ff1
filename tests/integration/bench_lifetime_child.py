"""`python -m tests.integration.bench_lifetime_child MODE`: a bench in miniature for
test_bench_lifetime.py, started with SIGINT ignored as a shell starts a background job.

It starts one grandchild under `die_with_us` (in its own session, like a role) and prints
`ready <grandchild pid>`:
- `orderly`: under StopSignals; on a signal its cleanup stops the grandchild, prints
  `cleaned`, and it exits 128 + the signal.
- `stubborn`: the same, but the grandchild ignores SIGTERM (it prints `armed` once it does),
  so the cleanup waits for it until a second signal forces it.
- `orphan`: no signal handling; it sleeps until killed.
"""

from __future__ import annotations

import asyncio
import sys

from bench.lifetime import StopSignals, die_with_us
from camcount import processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('armed', flush=True); time.sleep(600)"]


async def bench(argv: list[str]) -> str:
    child = processes.spawn("grandchild", die_with_us(argv), {})
    print(f"ready {child.proc.pid}", flush=True)
    try:
        await asyncio.sleep(600)
    finally:
        await asyncio.to_thread(processes.stop, [child], 600.0)
        print("cleaned", flush=True)
    return "finished"


def main(mode: str) -> int:
    if mode == "orphan":
        asyncio.run(bench(SLEEPER))
        return 0
    with StopSignals() as stop:
        result = asyncio.run(stop.run(bench(STUBBORN if mode == "stubborn" else SLEEPER)))
    print(f"result {result}", flush=True)
    return stop.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
