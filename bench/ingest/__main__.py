"""`python -m bench.ingest`: cameras per core of the real ingest role against a bare PyAV loop.

What runs where. The machine's CPUs are split: the system under test gets one core (by default
the highest this process may use) and everything else gets the rest: this process pins itself
there before it starts anything, so the private RabbitMQ and PostgreSQL (state in
.state/ingest-bench, ports 5697/5457, wiped at start), the camera simulator and the bench's own
consumer inherit it, while each contestant is exec'd pinned to the SUT core (bench/ingest/pin.py).
On one CPU nothing is pinned and the figures say little.

The cameras. The simulator serves one mount that every camera plays (one RTSP session each):
by default the real traffic clip ../shared/data/traffic/ua_detrac_clip_evadb.mp4 (a synthetic
scene without it, or with --source synthetic) scaled to 1280x720 at 25 fps, 8 s of it x264-
encoded once at start (crf 23, IDR every 2 s, ~4 Mbit/s, a typical 720p IP camera) and replayed
in a loop, so a stream costs the simulator packetization only (~0.2% of a core per camera) and
never ends (ingest would replay a file mount on reconnect). Each session starts at a random
offset below one keyframe interval, so keyframes do not arrive in lockstep.

The contestants, each in the same run, one trial at a time (bench/ingest/runner.py):
- ingest: `python -m ingest` as a black box: N cameras registered in PostgreSQL at target_fps 5
  (batching, priority and deadline left at the schema's defaults), its env and its /metrics;
  the bench consumes frames.ingress and acks everything.
- bare-pyav: bench/ingest/bare.py, FFmpeg's RTSP client, the H.264 decoder and a BGR ndarray
  per frame, one thread per stream: the least any process must do to see the same pictures.
A trial is sustained when, over its timed window, every camera decoded >= 0.97 x 25 fps,
ingest published >= 0.97 x 5 fps per camera, the lag grew by <= 0.5 s, nothing reconnected or
was reported dropped and the simulator kept its schedule (bench/ingest/results.py).

The search. First both at --fixed cameras (default 4): their CPU per decoded frame is compared
there, and it estimates where each search starts (90% of what the core allows). Then each
contestant's count grows by 15% until a trial fails, or shrinks until one passes, then
bisects; the two searches take turns. --cameras 1,2,4,8 steps through a list instead, stopping
at the first failure.

Printed: one row per trial; the cameras one core sustains for each and their ratio against
issue 5's target (ingest >= 0.8 of the bare loop); CPU ms per decoded frame at the fixed count
and its ratio; p50/p99 capture-to-publish at ingest's largest sustained count, as the bench
measured it (arrival at the consumer minus the batch's captured_at, i.e. the first of its five
frames, so ~0.8 s of it is the batch filling at 5 fps) and as ingest's own histogram bounds it.
Other work on the machine shows as "other on core %"; the load averages before and after are
printed because it skews every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.ingest.results import BARE, OURS, format_summary, format_table
from bench.ingest.rig import StreamSpec
from bench.ingest.runner import BenchConfig, run_bench, say_stderr
from bench.private_services import private_services
from bench.profiling import print_profile

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = REPO_ROOT.parent / "shared" / "data" / "traffic" / "ua_detrac_clip_evadb.mp4"


def _counts(text: str) -> tuple[int, ...]:
    if text == "auto":
        return ()
    try:
        counts = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'auto' or e.g. 1,2,4,8") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("camera counts must be >= 1")
    return counts


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=_counts, default=(), metavar="auto|N,N,...",
                        help="camera counts to step through (default: auto, a search)")
    parser.add_argument("--fixed", type=int, default=4,
                        help="camera count at which CPU per frame is compared (default 4)")
    parser.add_argument("--max-cameras", type=int, default=64)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--window-s", type=float, default=10.0, help="timed window per trial")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=25.0, help="the cameras' frame rate")
    parser.add_argument("--target-fps", type=float, default=5.0, help="ingest samples to this")
    parser.add_argument("--source", default=None, metavar="PATH|synthetic",
                        help=f"video to loop (default {DEFAULT_CLIP} if present, else synthetic)")
    parser.add_argument("--clip-s", type=float, default=8.0, help="seconds encoded and looped")
    parser.add_argument("--sut-cpu", type=int, default=None,
                        help="the core the contestants get (default: the highest available)")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument("--contestants", default=f"{OURS},{BARE}")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "ingest-bench")
    parser.add_argument("--amqp-port", type=int, default=5697)
    parser.add_argument("--pg-port", type=int, default=5457)
    parser.add_argument("--profile-ingest", type=Path, default=None, metavar="PATH",
                        help="run ingest's --fixed trial under cProfile (its event loop thread); "
                             "stats to PATH, top on stderr")
    args = parser.parse_args(argv)

    if args.source == "synthetic" or (args.source is None and not DEFAULT_CLIP.is_file()):
        source = None
    else:
        source = Path(args.source) if args.source else DEFAULT_CLIP
    contestants = tuple(c.strip() for c in args.contestants.split(",") if c.strip())
    if not contestants or set(contestants) - {OURS, BARE}:
        parser.error(f"--contestants: choose from {OURS},{BARE}")
    if args.fixed < 1:
        parser.error("--fixed must be >= 1")
    cpus = sorted(os.sched_getaffinity(0))
    sut: frozenset[int] | None = None
    if args.no_pin or len(cpus) < 2:
        say_stderr(f"not pinning (CPUs available: {cpus}): contestants share every core")
    else:
        sut = frozenset({cpus[-1] if args.sut_cpu is None else args.sut_cpu})
        if not sut <= set(cpus):
            parser.error(f"--sut-cpu {args.sut_cpu} is not among the CPUs available: {cpus}")
        # Before anything starts: the servers and the simulator inherit the rig's cores.
        os.sched_setaffinity(0, set(cpus) - sut)
    config = BenchConfig(
        stream=StreamSpec(source, args.width, args.height, args.fps, args.clip_s),
        target_fps=args.target_fps, warmup_s=args.warmup_s, window_s=args.window_s,
        fixed_cameras=args.fixed, cameras=args.cameras, max_cameras=args.max_cameras,
        contestants=contestants, sut_cpus=sut,
        profile_ingest=args.profile_ingest.absolute() if args.profile_ingest else None,
    )

    started = time.perf_counter()
    load_before = _load()
    note = f"{load_before}; "
    with private_services(args.state_dir, args.amqp_port, args.pg_port, note) as (
        endpoints, logs_dir
    ):
        trials = asyncio.run(run_bench(config, endpoints.rabbitmq_url,
                                             endpoints.database_url, logs_dir))

    pinning = (f"contestants pinned to CPU {','.join(map(str, sorted(sut)))}, rig on "
               f"{','.join(str(c) for c in cpus if c not in sut)}" if sut else "nothing pinned")
    bits = [t.stream_bits_per_s for t in trials if t.stream_bits_per_s]
    rate = f", {sum(bits) / len(bits) / 1e6:.1f} Mbit/s per stream" if bits else ""
    print(f"{config.stream.describe()}{rate}; ingest samples to {config.target_fps:g} fps; "
          f"{pinning}; {config.window_s:g} s windows after {config.warmup_s:g} s warm-up; "
          f"logs in {logs_dir}")
    print(format_table(trials))
    for line in format_summary(trials, config.fixed_cameras, config.max_cameras):
        print(line)
    # The load average counts runnable threads: at the end it holds the bench's own.
    print(f"{load_before} at start (before the bench's own threads count in it); wall time "
          f"{time.perf_counter() - started:.0f} s")
    print_profile(config.profile_ingest, f"ingest's {OURS} x{config.fixed_cameras} trial", 30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
