"""`python -m bench.relay`: the balancer relaying frame batches against a plain forwarder.

On private RabbitMQ and PostgreSQL servers started for the bench (state in .state/relay,
ports 5696/5456 by default, wiped at start so no earlier run's queues or assignments count),
the real balancer role and a plain consume-and-republish forwarder (bench/relay/forwarder.py)
each relay the same producer's batches (published as ingest does, ~150 KB each, across 50
cameras) to the same fake workers, one contestant after the other. Printed: batches/s relayed
when saturated (closed loop), the contestant's CPU per batch, p50/p99 latency from publish to
fake-worker receipt at a moderate paced rate (half the forwarder's saturated throughput, the
same for both), the balancer's added p99, and the throughput ratio against issue 4's target
(the balancer keeps at least 0.8 of the forwarder's).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.private_services import private_services
from bench.profiling import print_profile
from bench.relay.results import format_table, format_verdict
from bench.relay.rig import RigConfig
from bench.relay.runner import INGRESS_PREFETCH, BenchConfig, run_bench

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="fake workers")
    parser.add_argument("--body-kb", type=float, default=150.0, help="batch body size")
    parser.add_argument("--outstanding", type=int, default=256,
                        help="closed loop: batches on their way at once")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--paced-fraction", type=float, default=0.5,
                        help="paced rate as a fraction of the forwarder's saturated throughput")
    parser.add_argument("--rate", type=float, default=None, help="paced rate, batches/s")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "relay")
    parser.add_argument("--amqp-port", type=int, default=5696)
    parser.add_argument("--pg-port", type=int, default=5456)
    parser.add_argument("--profile-balancer", type=Path, default=None, metavar="PATH",
                        help="run the balancer under cProfile; stats to PATH, top on stderr")
    args = parser.parse_args(argv)
    config = BenchConfig(
        rig=RigConfig(cameras=args.cameras, workers=args.workers,
                      body_bytes=int(args.body_kb * 1000), outstanding=args.outstanding),
        warmup_s=args.warmup_s, window_s=args.window_s, paced_fraction=args.paced_fraction,
        paced_rate=args.rate,
        profile_balancer=args.profile_balancer.absolute() if args.profile_balancer else None,
    )
    started = time.perf_counter()
    with private_services(args.state_dir, args.amqp_port, args.pg_port, "") as (
        endpoints, logs_dir
    ):
        result = asyncio.run(run_bench(config, endpoints.rabbitmq_url,
                                             endpoints.database_url, logs_dir))
    rig = config.rig
    print(f"{rig.cameras} cameras, {rig.workers} fake workers, {rig.body_bytes / 1000:g} KB "
          f"batches, prefetch {INGRESS_PREFETCH}, {rig.outstanding} outstanding when saturated, "
          f"{config.window_s:g} s windows after {config.warmup_s:g} s warm-up; contestant logs "
          f"in {logs_dir}")
    print(format_table(result.contestants, result.paced_rate))
    print(format_verdict(result.contestants))
    print(f"wall time {time.perf_counter() - started:.1f} s")
    print_profile(config.profile_balancer, "the balancer", 25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
