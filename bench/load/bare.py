"""`python -m bench.load.bare`: the ramp's baseline, bare decode + motion detection.

The least any system must do per camera to count with the motion detector: FFmpeg's RTSP
client and H.264 decoder (as bench/ingest/bare.py opens them) and the worker's own
MotionDetector on every frame, one thread per stream, in one process; no JPEG, no broker, no
database, no tracking. It runs `--streams` streams for `--seconds` after a `--warmup-s`, then
prints one JSON line: frames processed in the window and the process's CPU seconds over it.
The bench turns that into the cameras this machine could serve at the ramp's fps if decode and
detection were all the work (cores / (CPU seconds per frame x fps)).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence

import av
import numpy as np

from bench.ingest.bare import OPEN_OPTIONS, OPEN_TIMEOUT_S, RETRY_S
from workers.motion import MotionDetector


class Tally:
    def __init__(self) -> None:
        self.frames = 0
        self.errors = 0
        self.lock = threading.Lock()


def decode_and_detect(url: str, tally: Tally, stop: threading.Event) -> None:
    detector = MotionDetector()
    while not stop.is_set():
        try:
            with av.open(url, options=OPEN_OPTIONS, timeout=OPEN_TIMEOUT_S) as container:
                video = container.streams.video[0]
                video.thread_type = "SLICE"
                for packet in container.demux(video):
                    for frame in packet.decode():
                        image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                        detector.detect([image])
                        with tally.lock:
                            tally.frames += 1
                    if stop.is_set():
                        return
        except (av.error.FFmpegError, OSError, IndexError) as exc:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        with tally.lock:
            tally.errors += 1
        time.sleep(RETRY_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.bare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="RTSP URL, opened once per stream")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=decode_and_detect, args=(args.url, tally, stop),
                                daemon=True) for _ in range(args.streams)]
    for thread in threads:
        thread.start()
    time.sleep(args.warmup_s)
    with tally.lock:
        frames0, errors0 = tally.frames, tally.errors
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    with tally.lock:
        frames, errors = tally.frames - frames0, tally.errors - errors0
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    stop.set()
    print(json.dumps({"streams": args.streams, "frames": frames, "cpu_s": cpu, "wall_s": wall,
                      "errors": errors}), flush=True)
    for thread in threads:
        thread.join(2.0)
    # FFmpeg may still be inside a demux call on a thread that did not notice `stop`:
    # interpreter shutdown under it can crash, so leave without one (the figures are out).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
