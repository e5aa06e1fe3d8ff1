"""The public peers of bench/accuracy, run in their own venv (.venv-peers, built by
setup_peers.sh): ultralytics' solutions.ObjectCounter, and trackers' ByteTrackTracker feeding
supervision's LineZone. One JSON line per peer on stdout:

    .venv-peers/bin/python bench/accuracy/peers.py --clip X.mp4 --line 480,0,480,480 \
        --model yolov8n_int8.onnx

{"peer": ..., "in": n, "out": n, "frames": n, "seconds": s, "fps": f, ...}, where in/out are
already in camcount's convention (moving from side +1 to side -1 of the line a->b is "in";
see contracts/geometry.py) and raw_in/raw_out are the peer's own numbers.

Both peers read every frame of the clip (PyAV), with the same model file, confidence and line,
persons only. Timed: the whole per-frame loop, decode included; not timed: imports, model load
and one warm-up inference.

Direction mapping (read in the peers' source, checked with `--check-mapping GT`):
- ObjectCounter (ultralytics 8.4): the line's orientation a->b is ignored. For a line more
  vertical than horizontal IN is "centre moved right"; otherwise IN is "centre moved down". So
  IN is our "in" when that motion goes from our side +1 to side -1, else the two swap: for a
  vertical line drawn top->bottom IN = in; bottom->top IN = out; for a horizontal line drawn
  left->right IN = out. It counts a track once at most (counted_ids) and uses the box centre.
- LineZone (supervision 0.31): a detection is "left" when (end - start) x (anchor - start) < 0,
  i.e. on our side -1; it counts in when a track turns from not-left to left. With start=a and
  end=b its in/out are ours unchanged. Anchor: BOTTOM_CENTER (the foot point, as ours and the
  ground truth use; its default, all four corners, changes counts a lot).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# Offline machines: ultralytics must neither download nor pip-install anything.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_VERBOSE", "False")

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script from .venv-peers, not as a package
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.accuracy.onnx_yolo import (  # noqa: E402
    bare_loop,
    clip_info,
    cpu_session,
    decode_persons,
    input_size,
    letterbox,
    read_frames,
)
from bench.accuracy.truth import (  # noqa: E402
    GtBox,
    PixelLine,
    count_directions,
    load_mot_gt,
    true_crossings,
)

OBJECTCOUNTER = "ultralytics-objectcounter"
BYTETRACK = "trackers-bytetrack+supervision-linezone"
BARE = "onnxruntime-bare"
NMS_IOU = 0.5  # ours (workers/onnx_detector.py) uses 0.5 as well; ObjectCounter keeps its 0.7

Result = dict[str, Any]


def objectcounter_in_is_ours(line: PixelLine) -> bool:
    """Whether ObjectCounter's IN is camcount's "in" for this line (else they swap)."""
    (ax, ay), (bx, by) = line.a, line.b
    dx, dy = bx - ax, by - ay
    peer_in = (1.0, 0.0) if abs(dx) < abs(dy) else (0.0, 1.0)  # right, or down
    # Our "in" moves against the normal n = (-dy, dx), along which side_of grows.
    return peer_in[0] * dy - peer_in[1] * dx > 0


def _mapped(line: PixelLine, raw_in: int, raw_out: int) -> tuple[int, int]:
    return (raw_in, raw_out) if objectcounter_in_is_ours(line) else (raw_out, raw_in)


def _result(peer: str, ours: tuple[int, int], raw: tuple[int, int], frames: int,
            seconds: float, **extra: Any) -> Result:
    return {
        "peer": peer, "in": ours[0], "out": ours[1], "frames": frames,
        "seconds": round(seconds, 3), "fps": round(frames / seconds, 2) if seconds > 0 else 0.0,
        "raw_in": raw[0], "raw_out": raw[1], **extra,
    }


def _new_objectcounter(model: Path, line: PixelLine, confidence: float) -> Any:
    from ultralytics import solutions  # type: ignore[import-not-found, unused-ignore]

    return solutions.ObjectCounter(
        model=str(model), region=[line.a, line.b], classes=[0], conf=confidence,
        show=False, verbose=False,
    )


def run_objectcounter(clip: Path, line: PixelLine, model: Path, confidence: float) -> Result:
    counter = _new_objectcounter(model, line, confidence)
    frames = read_frames(clip)
    first = next(frames)
    # Warm-up: loads the ONNX session through the same predictor `track` will reuse.
    counter.model.predict(first, conf=confidence, classes=[0], verbose=False)
    ours_in = objectcounter_in_is_ours(line)
    events: list[tuple[int, int, str]] = []
    started = time.perf_counter()
    n = 0
    for frame in _chain(first, frames):
        counted, raw_in = set(counter.counted_ids), int(counter.in_count)
        counter(frame)
        n += 1
        # Bookkeeping outside the peer's own work, cheap next to a detection.
        new_ids = sorted(set(counter.counted_ids) - counted)
        entered = int(counter.in_count) - raw_in
        for i, track_id in enumerate(new_ids):
            peer_in = i < entered  # one crossing per frame in practice
            events.append((n, int(track_id), "in" if peer_in == ours_in else "out"))
    seconds = time.perf_counter() - started
    raw = (int(counter.in_count), int(counter.out_count))
    return _result(OBJECTCOUNTER, _mapped(line, *raw), raw, n, seconds,
                   tracker=str(counter.CFG["tracker"]), anchor="box centre",
                   nms_iou=float(counter.CFG["iou"]), events=events)


def _linezone(line: PixelLine) -> Any:
    import supervision as sv  # type: ignore[import-not-found, unused-ignore]

    return sv.LineZone(
        start=sv.Point(*line.a), end=sv.Point(*line.b),
        triggering_anchors=[sv.Position.BOTTOM_CENTER],
    )


def run_bytetrack(clip: Path, line: PixelLine, model: Path, confidence: float) -> Result:
    import supervision as sv  # type: ignore[import-not-found, unused-ignore]
    from trackers import ByteTrackTracker  # type: ignore[import-not-found, unused-ignore]

    width, height, fps = clip_info(clip)
    session = cpu_session(model)
    size, name = input_size(session), session.get_inputs()[0].name
    # Library defaults but for the frame rate, which ByteTrack scales its lost-track buffer by.
    tracker = ByteTrackTracker(frame_rate=fps)
    zone = _linezone(line)
    session.run(None, {name: letterbox(np.zeros((height, width, 3), np.uint8), size)[0]})
    events: list[tuple[int, int, str]] = []
    started = time.perf_counter()
    n = 0
    for frame in read_frames(clip):
        tensor, box = letterbox(frame, size)
        output = session.run(None, {name: tensor})[0]
        xyxy, scores = decode_persons(output, box, (frame.shape[1], frame.shape[0]),
                                      confidence=confidence, iou_threshold=NMS_IOU)
        detections = sv.Detections(
            xyxy=xyxy.astype(np.float64), confidence=scores, class_id=np.zeros(len(xyxy), int)
        )
        tracked = tracker.update(detections)
        crossed_in, crossed_out = zone.trigger(tracked)
        n += 1
        ids = tracked.tracker_id if tracked.tracker_id is not None else np.zeros(0, int)
        for index in np.flatnonzero(crossed_in | crossed_out):
            events.append((n, int(ids[index]), "in" if crossed_in[index] else "out"))
    seconds = time.perf_counter() - started
    raw = (int(zone.in_count), int(zone.out_count))
    return _result(BYTETRACK, raw, raw, n, seconds, tracker="ByteTrackTracker defaults",
                   anchor="bottom centre", nms_iou=NMS_IOU, events=events)


def run_bare(clip: Path, model: Path, repeat: int) -> Result:
    best = max((bare_loop(model, clip) for _ in range(repeat)), key=lambda t: t.fps)
    return {"peer": BARE, "frames": best.frames, "seconds": round(best.seconds, 3),
            "fps": round(best.fps, 2)}


def check_mapping(gt: Path, line: PixelLine, model: Path) -> list[Result]:
    """Feed the ground-truth tracks themselves (foot points, true ids) to each peer's counting
    rule and map the result: it must equal the truth evaluator's, or the mapping is wrong."""
    import supervision as sv  # type: ignore[import-not-found, unused-ignore]

    boxes = load_mot_gt(gt)
    truth = count_directions(true_crossings(boxes, line)).as_dict()
    by_frame: dict[int, list[GtBox]] = {}
    for box in boxes:
        by_frame.setdefault(box.frame, []).append(box)
    zone = _linezone(line)
    counter = _new_objectcounter(model, line, 0.3)
    counter.initialize_region()
    previous: dict[int, tuple[float, float]] = {}
    for frame in sorted(by_frame):
        rows = by_frame[frame]
        xyxy = np.array([[b.left, b.top, b.left + b.width, b.top + b.height] for b in rows])
        ids = np.array([b.track_id for b in rows])
        zone.trigger(sv.Detections(xyxy=xyxy, tracker_id=ids, class_id=np.zeros(len(rows), int)))
        for b in rows:
            counter.count_objects(b.foot, b.track_id, previous.get(b.track_id), 0)
            previous[b.track_id] = b.foot
    oc_raw = (int(counter.in_count), int(counter.out_count))
    oc = _mapped(line, *oc_raw)
    lz = (int(zone.in_count), int(zone.out_count))
    return [
        {"check": OBJECTCOUNTER, "source": "gt", "in": oc[0], "out": oc[1],
         "raw_in": oc_raw[0], "raw_out": oc_raw[1], "truth": truth,
         "agrees": {"in": oc[0], "out": oc[1]} == truth},
        {"check": BYTETRACK, "source": "gt", "in": lz[0], "out": lz[1],
         "raw_in": lz[0], "raw_out": lz[1], "truth": truth,
         "agrees": {"in": lz[0], "out": lz[1]} == truth},
    ]


def _chain(first: np.ndarray[Any, Any], rest: Iterator[np.ndarray[Any, Any]]
           ) -> Iterator[np.ndarray[Any, Any]]:
    yield first
    yield from rest


PEERS: dict[str, Callable[[Path, PixelLine, Path, float], Result]] = {
    "objectcounter": run_objectcounter,
    "bytetrack": run_bytetrack,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--line", type=PixelLine.parse, required=True,
                        help="x1,y1,x2,y2 in pixels of the clip")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--confidence", type=float, default=0.3)
    parser.add_argument("--peers", default="objectcounter,bytetrack",
                        help=f"comma-separated, of {', '.join(PEERS)}, bare")
    parser.add_argument("--repeat", type=int, default=1,
                        help="timed passes per peer; the fastest is reported (counts must agree)")
    parser.add_argument("--check-mapping", type=Path, metavar="GT",
                        help="also feed this gt.txt's tracks to the peers' counting rules")
    args = parser.parse_args(argv)
    for path in (args.clip, args.model):
        if not path.is_file():
            parser.error(f"{path} is not a file")
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(wanted) - {*PEERS, "bare"})
    if unknown:
        parser.error(f"unknown peers {unknown}")
    out = sys.stdout
    if args.check_mapping:
        for row in check_mapping(args.check_mapping, args.line, args.model):
            print(json.dumps(row), file=out, flush=True)
    for peer in wanted:
        if peer == "bare":
            print(json.dumps(run_bare(args.clip, args.model, args.repeat)), file=out, flush=True)
            continue
        runs = [PEERS[peer](args.clip, args.line, args.model, args.confidence)
                for _ in range(max(1, args.repeat))]
        counts = {(r["in"], r["out"]) for r in runs}
        best = max(runs, key=lambda r: float(r["fps"]))
        if len(counts) > 1:
            best["unstable_counts"] = sorted(counts)
        print(json.dumps(best), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
