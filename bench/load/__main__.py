"""`python -m bench.load`: how many cameras one machine sustains, and WebSocket fan-out.

On private RabbitMQ and PostgreSQL servers started for the bench (state in .state/load, ports
5698/5458 by default, wiped at start), bench/stack.py runs the whole system on this machine:
the camera simulator (one synthetic mount, pre-encoded, looped: every camera a session of its
own), the registry, the broadcaster, the balancer, --workers worker processes with the motion
detector (DETECTOR=motion) and ingest, each its own process.

1. WebSocket fan-out (bench/load/fanout.py): --clients clients (1,000) subscribed, each with
   its own ticket, --events count events at --event-rate; p50/p95/p99 delivery latency over
   every (client, event), against a bare `websockets` server broadcasting the same messages to
   the same client processes. Printed ratio: camcount p99 / bare p99.
2. Baseline for the ramp (bench/load/bare.py): the CPU one process spends to decode a stream's
   frame and run the motion detector on it, with no broker or database, turned into the
   cameras this machine's cores could serve if that were all the work.
3. The camera ramp (bench/load/ramp.py): cameras registered through the API at --fps (5), a
   batch per frame, a counting line each; 2, 4, 8, ... cameras while each step is sustained,
   then bisection; each step a --warmup-s and a --window-s timed window, all bounded by
   --max-minutes. Sustained: p99 capture-to-WebSocket below --p99-ms (500), every camera
   delivering >= 90% of its events, frame queues bounded and not growing, no coverage gap
   (bench/load/search.py). A WebSocket client holding a ticket receives every count event.
   Printed: one row per step, the most cameras sustained, the ratio against the baseline's
   estimate, and the per-stage breakdown (p50/p95/p99) at that count: capture -> published
   (ingest) -> worker start -> committed -> broadcast (relay) -> client received.
Every step prints progress lines on stderr. Run it on a quiet machine: every process here
shares its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.lifetime import StopSignals
from bench.load.fanout import FanoutConfig
from bench.load.ramp import RampConfig
from bench.load.results import format_report
from bench.load.runner import LoadConfig, run_load
from bench.load.search import Limits
from bench.stack import StackConfig, private_endpoints

REPO_ROOT = Path(__file__).resolve().parents[2]


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 2,4,8") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("camera counts must be >= 1")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--fps", type=float, default=5.0, help="each camera's target fps")
    parser.add_argument("--source-fps", type=float, default=5.0, help="the simulator's fps")
    parser.add_argument("--start", type=int, default=2, help="cameras at the first step")
    parser.add_argument("--max-cameras", type=int, default=256)
    parser.add_argument("--cameras", type=_counts, default=(),
                        help="explicit steps, e.g. 2,4,8 (stops at the first failure)")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--max-minutes", type=float, default=20.0, help="bounds the ramp")
    parser.add_argument("--p99-ms", type=float, default=500.0)
    parser.add_argument("--clients", type=int, default=1000, help="fan-out clients")
    parser.add_argument("--events", type=int, default=50, help="fan-out events")
    parser.add_argument("--event-rate", type=float, default=5.0, help="fan-out events/s")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--bare-streams", type=int, default=4)
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "load")
    parser.add_argument("--amqp-port", type=int, default=5698)
    parser.add_argument("--pg-port", type=int, default=5458)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    # SIGINT/SIGTERM: every process it started and its servers are stopped (bench/lifetime.py).
    with StopSignals() as stop, \
            private_endpoints(args.state_dir, args.amqp_port, args.pg_port) as (endpoints,
                                                                                logs_dir):
        config = LoadConfig(
            stack=StackConfig(logs_dir, workers=args.workers, target_fps=args.fps,
                              source_fps=args.source_fps),
            ramp=RampConfig(start=args.start, max_cameras=args.max_cameras,
                            warmup_s=args.warmup_s, window_s=args.window_s,
                            max_minutes=args.max_minutes, counts=args.cameras,
                            limits=Limits(p99_ms=args.p99_ms)),
            fanout=None if args.no_fanout else FanoutConfig(
                clients=args.clients, events=args.events, rate_per_s=args.event_rate,
                processes=args.client_processes),
            bare_streams=args.bare_streams,
        )
        report = asyncio.run(stop.run(run_load(config, endpoints.rabbitmq_url,
                                               endpoints.database_url)))
    if report is None:
        print(f"interrupted by {stop.name}: stopped; logs in {logs_dir}", file=sys.stderr)
        return stop.exit_code
    print(f"{args.workers} motion workers, cameras at {args.fps:g} fps (source "
          f"{args.source_fps:g} fps, 640x360), a batch per frame; logs in {logs_dir}")
    print(format_report(report, args.p99_ms))
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
