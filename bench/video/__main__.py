"""`python -m bench.video`: the speed-up of a segmented video job with two workers over one.

On private RabbitMQ and PostgreSQL servers (.state/video, ports 5713/5473 by default): the
balancer and ONNX workers as processes, the video runner in this process. The same job (a TUD
clip from ../shared/data, split into segments) runs with one worker, then with two; each
prints its wall time and frames/s, and the ratio is the speed-up. The two runs must count the
same (they are checked). Each worker gets one inference stream of one thread by default, so
"two workers" means twice the compute on a CPU machine; on a GPU machine pass
--worker-env USE_GPU=true. After a warm-up job, each pool size runs the job --rounds times
and its best time is taken (one worker first, then a second joins the warm pool).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.private_services import private_services
from bench.video.runner import JobResult, JobSpec, Rig, run_job

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"
CLIPS = {  # name -> (file, counting line x, segment_s, overlap_s)
    "stadtmitte": ("pedestrians/tud_stadtmitte/TUD-Stadtmitte.mp4", 0.75, 1.0, 1.2),
    "campus": ("pedestrians/tud_campus/TUD-Campus.mp4", 0.5, 0.6, 0.8),
}


async def measure(env: dict[str, str], database_url: str, rabbitmq_url: str, logs: Path,
                  spec: JobSpec, rounds: int, worker_env: dict[str, str]
                  ) -> dict[int, list[JobResult]]:
    rig = Rig(env, logs, {"WORKER_TYPE": "onnx", "DETECTOR": "onnx",
                          "MODEL_PATH": str(DATA / "models" / "yolov8n_int8.onnx"),
                          "INFERENCE_STREAMS": "1", "INTRA_OP_THREADS": "1", **worker_env})
    results: dict[int, list[JobResult]] = {1: [], 2: []}
    try:
        rig.start_balancer()
        rig.add_worker()
        await rig.wait_for_workers(1)
        # A first job warms the model, the page cache and the database.
        await run_job(database_url, rabbitmq_url, spec, 1, "onnx")
        for _ in range(rounds):
            results[1].append(await run_job(database_url, rabbitmq_url, spec, 1, "onnx"))
        rig.add_worker()
        await rig.wait_for_workers(2)
        for _ in range(rounds):
            results[2].append(await run_job(database_url, rabbitmq_url, spec, 2, "onnx"))
    finally:
        rig.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", choices=sorted(CLIPS), default="stadtmitte")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--segment-s", type=float, default=None)
    parser.add_argument("--overlap-s", type=float, default=None)
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "video")
    parser.add_argument("--amqp-port", type=int, default=5713)
    parser.add_argument("--pg-port", type=int, default=5473)
    args = parser.parse_args(argv)
    name, line_x, segment_s, overlap_s = CLIPS[args.clip]
    clip = DATA / name
    if not clip.is_file():
        print(f"test footage not present at {clip} (see ../shared/data/README.md)")
        return 0
    spec = JobSpec(clip, line_x, args.segment_s or segment_s, args.overlap_s or overlap_s)
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    with private_services(args.state_dir, args.amqp_port, args.pg_port) as (endpoints, logs):
        env = {"RABBITMQ_URL": endpoints.rabbitmq_url, "DATABASE_URL": endpoints.database_url}
        results = asyncio.run(measure(env, endpoints.database_url, endpoints.rabbitmq_url, logs,
                                      spec, args.rounds, worker_env))
    for workers, runs in results.items():
        for run in runs:
            print(f"{workers} worker(s): {run.seconds:6.2f} s, {run.fps:6.1f} frames/s, "
                  f"{run.segments} segments, counts {run.counts}")
    best = {w: min(r.seconds for r in runs) for w, runs in results.items()}
    counts = {tuple(sorted(r.counts.items())) for runs in results.values() for r in runs}
    print(f"{args.clip}: {results[1][0].frames} frames in segments of {spec.segment_s:g} s "
          f"(overlap {spec.overlap_s:g} s); best of {args.rounds}: one worker {best[1]:.2f} s, "
          f"two workers {best[2]:.2f} s")
    print(f"speed-up two workers / one: {best[1] / best[2]:.2f}x")
    if len(counts) != 1:
        print(f"COUNTS DIFFER between runs: {counts}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
