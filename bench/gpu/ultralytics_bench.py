"""`python -m bench.gpu.ultralytics_bench`: UltralyticsDetector throughput per batch size against
bare torch inference of the same model, on a YOLOv8n built from its yaml (random weights: the
same compute as the trained model), in the style of `python -m bench.gpu`.

For each batch size it times (a) the bare model -- Conv+BN fused and in fp32, as ultralytics'
predictor runs it -- on a pre-letterboxed float32 batch: host-to-device copy, forward, output
back to the host, as ONNX Runtime's session.run does; and (b) UltralyticsDetector.detect on raw
1280x720 BGR frames (ultralytics' letterbox, inference, NMS, scaling). Both run at the input the
detector really uses: ultralytics' minimal rectangle (640x384 for 1280x720 at --imgsz 640),
not the square an ONNX export takes. Needs the `ultralytics` extra; the figures that matter are
on a GPU (`--gpu`).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu.__main__ import _frames, _rate
from workers.ultralytics_detector import STRIDE, UltralyticsDetector, import_ultralytics


def rect_input(width: int, height: int, imgsz: int) -> tuple[int, int]:
    """(height, width) of ultralytics' minimal-rectangle letterbox of a width x height frame."""
    ratio = min(imgsz / height, imgsz / width)
    return (math.ceil(max(round(height * ratio), 1) / STRIDE) * STRIDE,
            math.ceil(max(round(width * ratio), 1) / STRIDE) * STRIDE)


def _bare_run(torch: Any, model: Any, blob: np.ndarray, device: str) -> Any:
    with torch.inference_mode():
        output = model(torch.from_numpy(blob).to(device))
        prediction = output[0] if isinstance(output, list | tuple) else output
        return prediction.cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.ultralytics_bench",
                                     description=__doc__)
    parser.add_argument("--model", default="yolov8n.yaml",
                        help="a .pt or a model yaml (default: yolov8n.yaml, random weights)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--gpu", action="store_true", help="torch on CUDA (else the CPU)")
    parser.add_argument("--gpu-device", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args(argv)

    ultralytics = import_ultralytics()
    import torch

    detector = UltralyticsDetector(Path(args.model), use_gpu=args.gpu, gpu_device=args.gpu_device,
                                   input_size=args.imgsz)
    device = detector.device
    model = ultralytics.YOLO(args.model, task="detect").model.fuse(verbose=False)
    model = model.to(device).float().eval()
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    print(f"model {args.model}, torch {torch.__version__}, ultralytics "
          f"{ultralytics.__version__}, device {device} ({name})", flush=True)
    print("batch | input   | bare torch frames/s | detector frames/s | detector/bare")
    print("------+---------+---------------------+-------------------+--------------")
    for batch in (int(b) for b in args.batches.split(",")):
        frames = _frames(batch)
        height, width = rect_input(frames[0].shape[1], frames[0].shape[0], args.imgsz)
        blob = np.random.default_rng(batch).random((batch, 3, height, width), np.float32)
        bare_fps = _rate(functools.partial(_bare_run, torch, model, blob, device), batch,
                         args.seconds)
        ours_fps = _rate(functools.partial(detector.detect, frames), batch, args.seconds)
        print(f"{batch:5d} | {width}x{height} | {bare_fps:19.1f} | {ours_fps:17.1f} | "
              f"{ours_fps / bare_fps:12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
