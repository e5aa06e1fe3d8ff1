"""Which ONNX Runtime execution providers a session asks for.

`onnxruntime.get_available_providers()` lists what the installed build was compiled with, not
what can load: onnxruntime-gpu names TensorRT and CUDA on a machine with no GPU or no CUDA
libraries, and session creation then falls back to the CPU with a logged error. So this list is
only a request; the session's `get_providers()` is the truth, and the detector reports that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

GPU_PROVIDERS = (TENSORRT, CUDA)

ProviderRequest = tuple[str, dict[str, str]]


def choose_providers(
    available: Sequence[str], *, use_gpu: bool, gpu_device: int = 0,
    trt_cache_dir: Path | None = None,
) -> list[ProviderRequest]:
    """Best first: TensorRT, then CUDA on `gpu_device`, then the CPU, always last, because
    graph nodes a GPU provider cannot run (ConvInteger in an int8 model) fall through to it.

    TensorRT builds an engine per model and input shape, which takes minutes; with
    `trt_cache_dir` the engines (and timing caches) persist across worker restarts."""
    if gpu_device < 0:
        raise ValueError(f"gpu_device must be >= 0, got {gpu_device}")
    chosen: list[ProviderRequest] = []
    if use_gpu:
        for name in GPU_PROVIDERS:
            if name not in available:
                continue
            options = {"device_id": str(gpu_device)}
            if name == TENSORRT and trt_cache_dir is not None:
                options |= {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(trt_cache_dir),
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": str(trt_cache_dir),
                }
            chosen.append((name, options))
    chosen.append((CPU, {}))
    return chosen


def lacks_gpu(used: Sequence[str]) -> bool:
    return not any(name in GPU_PROVIDERS for name in used)
