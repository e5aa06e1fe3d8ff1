"""`python -m bench.gpu`: detector throughput per batch size against a bare ONNX Runtime session
with the same execution providers, on a YOLOv8n exported at 640 from its yaml (random weights:
the same compute as the trained model; accuracy is bench/accuracy's job).

For each batch size it times (a) the bare session.run on pre-letterboxed input and (b)
OnnxDetector.detect on raw BGR frames (letterbox, inference, decode, NMS), and prints frames/s
and their ratio. Runs anywhere; the figures that matter are on a GPU (`--gpu`): TensorRT, then
CUDA. On a CPU keep the batches small (`--batches 1,2,4`).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from workers.onnx_detector import OnnxDetector
from workers.providers import choose_providers
from workers.yolo_decode import ModelFamily, fill_input, letterbox


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # 1280x720 noise with structure: JPEG-like content is irrelevant to inference cost.
    base = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    return [np.roll(base, i * 7, axis=1) for i in range(n)]


def _rate(run: Callable[[], object], frames: int, seconds_min: float) -> float:
    run()  # warm-up for this shape (TensorRT builds an engine per shape)
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds_min or len(times) < 3:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return frames / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--model", type=Path, help="an .onnx with a dynamic batch (default: "
                        "export yolov8n.yaml at --imgsz with `camcount model export`)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--gpu", action="store_true", help="TensorRT, then CUDA, then CPU")
    parser.add_argument("--gpu-device", type=int, default=0)
    parser.add_argument("--trt-cache", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--streams", type=int, default=1,
                        help="the detector's inference streams (OnnxDetector streams)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="the detector's max_batch (default: the largest of --batches)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            from camcount.model_export import export_onnx

            model = export_onnx("yolov8n.yaml", Path(scratch) / f"yolov8n-{args.imgsz}.onnx",
                                imgsz=args.imgsz, dynamic=True)
        providers = choose_providers(ort.get_available_providers(), use_gpu=args.gpu,
                                     gpu_device=args.gpu_device, trt_cache_dir=args.trt_cache)
        bare = ort.InferenceSession(str(model), providers=providers)
        largest = max(int(b) for b in args.batches.split(","))
        detector = OnnxDetector(model, use_gpu=args.gpu, gpu_device=args.gpu_device,
                                max_batch=args.chunk or largest,
                                streams=args.streams, trt_cache_dir=args.trt_cache)
        print(f"model {model.name}, providers {bare.get_providers()}, detector "
              f"{args.streams} stream(s) of up to {detector.max_batch} frames", flush=True)
        print("batch | bare ORT frames/s | detector frames/s | detector/bare")
        print("------+-------------------+-------------------+--------------")
        name = bare.get_inputs()[0].name
        for batch in (int(b) for b in args.batches.split(",")):
            frames = _frames(batch)
            width, height = detector.input_size
            blob = np.zeros((batch, 3, height, width), np.float32)
            yolov8 = detector.family is ModelFamily.YOLOV8
            for i, frame in enumerate(frames):
                box = letterbox(frame.shape[1], frame.shape[0], width, height, centred=yolov8)
                fill_input(frame, box, blob[i], rgb=yolov8, scale=1 / 255 if yolov8 else 1.0)
            bare_fps = _rate(functools.partial(bare.run, None, {name: blob}), batch, args.seconds)
            ours_fps = _rate(functools.partial(detector.detect, frames), batch, args.seconds)
            print(f"{batch:5d} | {bare_fps:17.1f} | {ours_fps:17.1f} | {ours_fps / bare_fps:12.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
