"""`python -m bench.ingest.bare`: the baseline, a bare PyAV decode loop over RTSP streams.

The least a process can do to turn the cameras' RTSP streams into pictures: FFmpeg's own RTSP
client and RTP depacketizer (`av.open` over TCP interleaved, probing cut short as in
FIELD-NOTES), its H.264 decoder with slice threads as ingest's, and every frame converted to a
BGR ndarray as ingest's decoder does; no sampling, no JPEG, no broker. One thread per stream (the
bench pins the process to one core, so the threads share it as ingest's cameras do).

Every `--every-s` a JSON line on stdout: the time, the process's CPU seconds (all threads), and
per stream the frames decoded, the bytes received, the stream errors (each followed by a
reconnect) and the lag: seconds since its first frame minus the seconds of video decoded since
(frames / fps). A loop that keeps up holds its lag steady; one that falls behind grows it. The
bench takes its figures from these lines, so frames and CPU come from one instant. It runs
until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import numpy as np

# FFmpeg probes 1-4 s before the first frame by default (FIELD-NOTES); these give 0.1-0.2 s.
OPEN_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "200000", "probesize": "32768"}
OPEN_TIMEOUT_S = 10.0
RETRY_S = 0.5


@dataclass
class Streams:
    fps: float
    frames: list[int]
    bytes: list[int]
    errors: list[int]
    first_at: list[float | None]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, count: int, fps: float) -> Streams:
        return cls(fps, [0] * count, [0] * count, [0] * count, [None] * count)

    def snapshot(self) -> dict[str, object]:
        now = time.time()
        with self.lock:
            lags = [None if first is None else round(now - first - (n - 1) / self.fps, 4)
                    for first, n in zip(self.first_at, self.frames, strict=True)]
            return {"t": now, "cpu_s": time.process_time(), "frames": list(self.frames),
                    "bytes": list(self.bytes), "errors": list(self.errors), "lag_s": lags}


def decode_forever(url: str, index: int, streams: Streams) -> None:
    while True:
        try:
            with av.open(url, options=OPEN_OPTIONS, timeout=OPEN_TIMEOUT_S) as container:
                video = container.streams.video[0]
                video.thread_type = "SLICE"
                for packet in container.demux(video):
                    size = packet.size
                    for frame in packet.decode():
                        np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                        with streams.lock:
                            if streams.first_at[index] is None:
                                streams.first_at[index] = time.time()
                            streams.frames[index] += 1
                    with streams.lock:
                        streams.bytes[index] += size
        except (av.error.FFmpegError, OSError, IndexError) as exc:
            print(f"stream {index}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        # A stream that ended or failed counts as an error: a camera must never end.
        with streams.lock:
            streams.errors[index] += 1
        time.sleep(RETRY_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.bare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="RTSP URL, opened once per stream")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--fps", type=float, required=True, help="the streams' frame rate")
    parser.add_argument("--every-s", type=float, default=0.25)
    args = parser.parse_args(argv)
    streams = Streams.of(args.streams, args.fps)
    for index in range(args.streams):
        threading.Thread(target=decode_forever, args=(args.url, index, streams),
                         name=f"bare-{index}", daemon=True).start()
    while True:
        print(json.dumps(streams.snapshot()), flush=True)
        time.sleep(args.every_s)


if __name__ == "__main__":
    sys.exit(main())
