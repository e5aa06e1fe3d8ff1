"""`python -m bench.soak`: a bounded soak under random faults that fails on resource growth.

On private RabbitMQ and PostgreSQL servers (state in .state/soak, ports 5711/5471 by default,
wiped at start), the whole stack (bench/stack.py: simulator, registry, broadcaster, balancer,
ingest; the worker pool with NUM_WORKERS workers beside it) counts --cameras simulated
cameras with the motion detector for --minutes, while faults strike at random (seeded by
--seed, each logged with its time and waited out): a worker child SIGKILLed, a role's broker
connections closed, a camera's stream restarted, a PostgreSQL backend terminated, a short
broker memory alarm.

Every --sample-s it samples RSS, open files, TCP connections and threads of every process,
connections, channels and queue depths (dead letters included) from RabbitMQ, backends per
process from PostgreSQL, and batches applied; a progress line a minute. At the end it drains
and prints the books (batches confirmed vs applied vs gaps) and a Theil-Sen slope per series
over the later half of the run after warm-up (bench/soak/growth.py, limits in rules.py).
Exit status 1, with the process and metric named, on growth, a ceiling passed, a fault not
recovered, counting stalled, a batch lost without a gap or applied twice, or a role exiting.
Samples (CSV, JSONL), faults and the report are written under --results.

Ctrl+C (SIGINT) or SIGTERM stops it in order within seconds: faults and sampling end, every
process it started (roles, simulator, pool) is stopped, then the private servers; the report
covers what was sampled, marked INTERRUPTED, and the exit status is 130 (SIGINT) or 143
(SIGTERM). A second signal SIGKILLs the processes instead of waiting for them. Should the
soak itself be killed, its processes get SIGTERM from the kernel (bench/lifetime.py); its
servers are stopped by the next run, which names anything else still holding its ports.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from bench.lifetime import Leftovers, StopSignals
from bench.soak.runner import SoakConfig, run_soak
from bench.stack import private_endpoints
from camcount import services

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="not judged (default: a sixth of the run, at most 5)")
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="NUM_WORKERS of the pool")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--mean-fault-gap-s", type=float, default=60.0)
    parser.add_argument("--min-fault-gap-s", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--results", type=Path, default=None,
                        help="default: .state/soak-results/<UTC time>")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "soak")
    parser.add_argument("--amqp-port", type=int, default=5711)
    parser.add_argument("--pg-port", type=int, default=5471)
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2: a killed worker's cameras need another")
    duration_s = args.minutes * 60
    warmup_s = (args.warmup_minutes * 60 if args.warmup_minutes is not None
                else min(300.0, duration_s / 6))
    config = SoakConfig(
        cameras=args.cameras, workers=args.workers, duration_s=duration_s,
        warmup_s=warmup_s, sample_every_s=args.sample_s, seed=args.seed,
        first_fault_s=min(60.0, warmup_s), mean_fault_gap_s=args.mean_fault_gap_s,
        min_fault_gap_s=args.min_fault_gap_s, width=args.width, height=args.height,
        fps=args.fps,
    )
    results = args.results or (REPO_ROOT / ".state" / "soak-results"
                               / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    started = time.perf_counter()
    try:
        # The handlers first: a signal while the servers start is acted on once they are up.
        with StopSignals() as stop, \
                private_endpoints(args.state_dir, args.amqp_port, args.pg_port) as (endpoints, _):
            # private_services pointed CAMCOUNT_* at this run's servers: rabbitmqctl reaches
            # ours.
            broker_ctl = partial(services.rabbitmqctl, services.ServicesConfig.from_env("dev"))
            result = asyncio.run(run_soak(
                config, endpoints.rabbitmq_url, endpoints.rabbitmq_management_url,
                endpoints.database_url, results.absolute(), broker_ctl, stop=stop))
    except Leftovers as exc:
        print(f"python -m bench.soak: {exc}", file=sys.stderr)
        return 2
    print(result.report)
    print(f"samples, faults and report in {result.results_dir}; wall time "
          f"{time.perf_counter() - started:.0f} s")
    if stop.requested:
        return stop.exit_code
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
