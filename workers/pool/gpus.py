"""Which GPU each worker process gets. One GPU per process, pinned with CUDA_VISIBLE_DEVICES:
the child then sees its GPU as device 0, and a crash in one CUDA context cannot touch the
others."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping

_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def parse_nvidia_smi_list(text: str) -> list[str]:
    """`nvidia-smi -L` lines ('GPU 0: NVIDIA H100 (UUID: ...)') to device indices."""
    return _GPU_LINE.findall(text)


def _visible_from_env(env: Mapping[str, str]) -> list[str] | None:
    """The manager's own CUDA_VISIBLE_DEVICES, when set, bounds what its workers may use
    (nvidia-smi lists every GPU of the machine regardless)."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    devices = [d.strip() for d in value.split(",") if d.strip()]
    # CUDA stops at the first invalid entry; '-1' is the usual "no GPU".
    valid = []
    for device in devices:
        if device.startswith("-"):
            break
        valid.append(device)
    return valid


def discover_gpus(env: Mapping[str, str], timeout_s: float = 10.0) -> list[str]:
    """The GPUs workers may be pinned to; [] on a machine without any (workers run on CPU)."""
    visible = _visible_from_env(env)
    if visible is not None:
        return visible
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=timeout_s,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi_list(out.stdout) if out.returncode == 0 else []


def explicit_gpu(type_env: Mapping[str, str], manager_env: Mapping[str, str],
                 gpus: list[str]) -> str | None:
    """GPU_DEVICE (the type's, else the manager's) read as an index among the GPUs the pool may
    use; None when not set or when there is no GPU at all (nothing to pin)."""
    device = type_env.get("GPU_DEVICE", manager_env.get("GPU_DEVICE"))
    if device is None or not gpus:
        return None
    index = int(device)
    if not 0 <= index < len(gpus):
        raise ValueError(f"GPU_DEVICE={device}, but the pool sees {len(gpus)} GPU(s): "
                         f"{', '.join(gpus)}")
    return gpus[index]


def pinning_env(gpu: str | None) -> dict[str, str]:
    """The child's view: only its GPU, as device 0. Nothing when not pinned."""
    if gpu is None:
        return {}
    return {"CUDA_VISIBLE_DEVICES": gpu, "GPU_DEVICE": "0"}
