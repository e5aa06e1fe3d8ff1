"""`python -m bench.accuracy`: counted vs true line crossings on the TUD clips, ours vs two
public peers, and frames/s against the bare ONNX Runtime loop as the ceiling.

For each clip (../shared/data/pedestrians): the true crossings from its gt.txt
(bench/accuracy/truth.py); our whole pipeline on real services with the clip played over RTSP
(bench/accuracy/pipeline.py); ultralytics' ObjectCounter and trackers' ByteTrack with
supervision's LineZone in .venv-peers (bench/accuracy/peers.py; build it once with
`bash bench/accuracy/setup_peers.sh`); and session.run alone on the same model, first and
last, its best taken as the ceiling: once as one plain loop with ONNX Runtime's default
threading (the ceiling the issue names), and once as the worker's inference streams run
side by side with nothing else (the ceiling of our own threading, so the ratio against it is
what the pipeline around the model costs). The phases run one after another, never side by side, so
no contestant's frames/s pays for another's; the load averages before each phase are printed,
because other work on the machine does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.accuracy.onnx_yolo import bare_loop, bare_streams_loop, clip_info, read_frames
from bench.accuracy.pipeline import REPO_ROOT, BenchPorts, Clip, run_ours
from bench.accuracy.truth import PixelLine, count_directions, load_mot_gt, true_crossings
from workers.settings import default_streams

DATA = REPO_ROOT.parent / "shared" / "data"
PEERS_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"
PEERS_SCRIPT = Path(__file__).resolve().parent / "peers.py"
OBJECTCOUNTER = "ultralytics-objectcounter"
BYTETRACK = "trackers-bytetrack+supervision-linezone"

# name -> (folder, video, camera id, counting line in pixels). The lines are the README's
# cross-check lines: vertical, full height, drawn top to bottom (left-to-right is "in").
CLIPS: dict[str, tuple[str, str, str, PixelLine]] = {
    "stadtmitte": ("tud_stadtmitte", "TUD-Stadtmitte.mp4", "tud-stadtmitte",
                   PixelLine((480.0, 0.0), (480.0, 480.0))),
    "campus": ("tud_campus", "TUD-Campus.mp4", "tud-campus",
               PixelLine((320.0, 0.0), (320.0, 480.0))),
}


def load_clip(data: Path, name: str) -> Clip:
    folder, video, camera_id, line = CLIPS[name]
    path = data / "pedestrians" / folder / video
    width, height, fps = clip_info(path)
    frames = sum(1 for _ in read_frames(path))
    return Clip(name, camera_id, path, data / "pedestrians" / folder / "gt" / "gt.txt", line,
                width, height, fps, frames)


def line_arg(line: PixelLine) -> str:
    return ",".join(f"{v:g}" for v in (*line.a, *line.b))


def run_peers(clip: Clip, model: Path, peers: str, repeat: int) -> dict[str, dict[str, Any]]:
    cmd = [str(PEERS_PYTHON), str(PEERS_SCRIPT), "--clip", str(clip.video),
           "--line", line_arg(clip.line), "--model", str(model), "--peers", peers,
           "--repeat", str(repeat)]
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False",
           "YOLO_VERBOSE": "False"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"peers failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    found: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if "peer" in row:
                found[row["peer"]] = row
    return found


def run_bare(clip: Clip, model: Path, repeat: int, streams: int = 1) -> dict[str, Any]:
    """session.run alone, in the project's venv (its onnxruntime-gpu runs on the CPU here):
    one plain loop with ONNX Runtime's default threading, or `streams` loops side by side."""
    def once() -> Any:
        if streams == 1:
            return bare_loop(model, clip.video)
        return bare_streams_loop(model, clip.video, streams)

    best = max((once() for _ in range(repeat)), key=lambda t: t.fps)
    return {"frames": best.frames, "seconds": round(best.seconds, 3), "fps": round(best.fps, 2)}


def code_version() -> dict[str, Any]:
    """The commit measured, and which pipeline files differed from it (others edit them)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False)
        return proc.stdout

    dirty = git("status", "--porcelain", "--", "workers", "ingest", "balancer", "registry",
                "simulator", "contracts")
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
            "modified": [line[3:] for line in dirty.splitlines() if line.strip()]}


def _pair(row: dict[str, Any] | None) -> str:
    return "n/a" if row is None else f"{row['in']}/{row['out']}"


def _fps(row: dict[str, Any] | None) -> str:
    return "n/a" if row is None or not row.get("fps") else f"{row['fps']:.1f}"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if a is None or b is None or not a.get("fps") or not b.get("fps"):
        return "n/a"
    return f"{a['fps'] / b['fps']:.2f}"


def table(report: dict[str, Any]) -> str:
    streams = report["streams"]
    head = ["clip", "true in/out", "ours in/out", "ours fps", "objectcounter in/out", "oc fps",
            "bytetrack+linezone in/out", "bt+lz fps", "bare ORT fps", "ours/bare",
            f"bare ORT x{streams} fps", f"ours/bare x{streams}", "ours/objectcounter"]
    rows = [head]
    for name, r in report["clips"].items():
        ours, oc, bt, bare = r.get("ours"), r.get(OBJECTCOUNTER), r.get(BYTETRACK), r.get("bare")
        wide = r.get("bare_streams")
        rows.append([name, _pair(r["truth"]), _pair(ours), _fps(ours), _pair(oc), _fps(oc),
                     _pair(bt), _fps(bt), _fps(bare), _ratio(ours, bare), _fps(wide),
                     _ratio(ours, wide), _ratio(ours, oc)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(report: dict[str, Any]) -> list[str]:
    code = report["code"]
    out = [f"model {report['model']}; confidence 0.3, persons only; CPU, "
           f"{os.cpu_count()} cores; load averages before each phase: {report['load']}",
           f"code {code['commit']}"
           + (f", uncommitted changes in {code['modified']}" if code["modified"] else "")]
    for name, r in report["clips"].items():
        ours = r.get("ours")
        if ours is not None:
            gaps = ours["gaps"]
            line = (f"{name}: ours committed {ours['frames']}/{ours['expected_frames']} frames "
                    f"(worker metric {ours['worker_frames_metric']}), {len(gaps)} gap(s)")
            if gaps:
                line += f" {gaps}"
            if ours["other_classes"]:
                line += f", other classes {ours['other_classes']}"
            if ours.get("stage_ms"):
                line += f"; worker ms per batch by stage {ours['stage_ms']}"
            out.append(line)
            out.append(f"{name}: true crossings (frame direction #track): "
                       + ", ".join(f"{f} {d} #{t}" for f, t, d in r["truth_events"]))
            out.append(f"{name}: our crossings (batch's first frame direction #track): "
                       + ", ".join(f"{f} {d} #{t}" for f, t, d in ours["events"]))
        bare = r.get("bare_streams")
        played_fps = r["clip_fps"] * report["speed"]
        if ours is not None and ours["fps"] >= 0.9 * played_fps:
            out.append(f"{name}: ours kept up with the clip as played ({played_fps:g} fps): "
                       "its frames/s is the source's, not the pipeline's limit")
        for key in ("bare", "bare_streams"):
            if key in r and "fps_seen" in r[key]:
                out.append(f"{name}: {key} ORT fps seen first and last: {r[key]['fps_seen']}")
        if ours is not None and bare is not None and ours["fps"] > bare["fps"]:
            out.append(f"{name}: ours ran above its bare ceiling: the machine's load changed "
                       "between phases (see the load averages); rerun on an idle machine")
        for peer in (OBJECTCOUNTER, BYTETRACK):
            row = r.get(peer)
            if row is not None and "events" in row:
                out.append(f"{name}: {peer} crossings (frame direction #track): "
                           + ", ".join(f"{f} {d} #{t}" for f, t, d in row["events"]))
            if row is not None and row.get("unstable_counts"):
                out.append(f"{name}: {peer} counts differ between passes: "
                           f"{row['unstable_counts']}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    parser.add_argument("--clips", default="stadtmitte,campus",
                        help=f"comma-separated, of {', '.join(CLIPS)} (default %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA, help="default %(default)s")
    parser.add_argument("--model", type=Path, help="default DATA/models/yolov8n_int8.onnx")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--batch-frames", type=int, default=5,
                        help="our camera's batch size (default 5, as a camera would run)")
    parser.add_argument("--speed", type=float, default=4.0,
                        help="play clips this many times faster than recorded (default 4): "
                             "the pipeline, not the clip's real time, bounds our frames/s")
    parser.add_argument("--repeat", type=int, default=1,
                        help="timed passes of each peer; the fastest is reported")
    parser.add_argument("--repeat-bare", type=int, default=2,
                        help="timed passes of the bare loop, first and last; the fastest is "
                             "reported")
    parser.add_argument("--amqp-port", type=int, default=BenchPorts.amqp)
    parser.add_argument("--pg-port", type=int, default=BenchPorts.pg)
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".state" / "bench")
    args = parser.parse_args(argv)

    names = [c.strip() for c in args.clips.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CLIPS))
    if unknown or not names:
        parser.error(f"unknown clips {unknown}; choose from {', '.join(CLIPS)}")
    if not (args.data / "pedestrians").is_dir():
        print(f"bench.accuracy: test footage not present at {args.data} "
              "(see ../shared/data/README.md)", file=sys.stderr)
        return 2
    model = args.model or args.data / "models" / "yolov8n_int8.onnx"
    if not model.is_file():
        parser.error(f"model {model} is not a file")
    clips = [load_clip(args.data, name) for name in names]

    def log(message: str) -> None:
        if not args.json:  # progress goes to stderr; --json keeps stdout one document
            print(message, file=sys.stderr, flush=True)

    # The worker's default inference streams (workers/settings.py), which the stack uses.
    streams = default_streams(use_gpu=False)
    report: dict[str, Any] = {"model": str(model), "code": code_version(), "load": {},
                              "clips": {}, "streams": streams,
                              "speed": args.speed}
    for clip in clips:
        crossings = true_crossings(load_mot_gt(clip.gt), clip.line)
        report["clips"][clip.name] = {
            "frames": clip.frames, "clip_fps": clip.fps, "line_px": line_arg(clip.line),
            "truth": count_directions(crossings).as_dict(),
            "truth_events": [(c.frame, c.track_id, c.direction) for c in crossings],
        }

    def phase(name: str) -> None:
        report["load"][name] = round(os.getloadavg()[0], 2)
        log(f"[{time.strftime('%H:%M:%S')}] {name}...")

    phase("bare")
    bare_before = {clip.name: [run_bare(clip, model, args.repeat_bare)] for clip in clips}
    wide_before = {clip.name: [run_bare(clip, model, args.repeat_bare, streams)]
                   for clip in clips}
    if not args.skip_ours:
        phase("ours")
        ours = run_ours(clips, model, state_dir=args.state_dir,
                        ports=BenchPorts(args.amqp_port, args.pg_port),
                        batch_frames=args.batch_frames, speed=args.speed)
        for name, result in ours.items():
            row = asdict(result)
            row["in"] = row.pop("in_")
            row["fps"] = round(result.fps, 2)
            row["seconds"] = round(result.seconds, 3)
            report["clips"][name]["ours"] = row
    if not args.skip_peers:
        if PEERS_PYTHON.exists():
            phase("peers")
            for clip in clips:
                report["clips"][clip.name].update(
                    run_peers(clip, model, "objectcounter,bytetrack", args.repeat)
                )
        else:
            log(f"{PEERS_PYTHON} missing: run `bash bench/accuracy/setup_peers.sh` first; "
                "peers skipped")
    phase("bare, again")
    for clip in clips:
        # The ceiling is the best the bare loop did, before or after the others: the machine
        # is shared, and a ceiling measured in a busy moment would flatter everyone.
        for key, before, n in (("bare", bare_before, 1), ("bare_streams", wide_before, streams)):
            runs = [*before[clip.name], run_bare(clip, model, args.repeat_bare, n)]
            best = max(runs, key=lambda r: float(r["fps"]))
            report["clips"][clip.name][key] = {**best, "fps_seen": [r["fps"] for r in runs]}

    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(table(report))
        for note in notes(report):
            print(f"  - {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
