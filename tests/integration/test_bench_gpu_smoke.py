"""bench/gpu runs end to end (on the CPU here), so it works the day a GPU is lent."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                    reason="the ultralytics extra (model export) is not installed")
def test_gpu_bench_prints_a_ratio_per_batch() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--batches", "1,2", "--imgsz", "160",
         "--seconds", "0.2"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r.split("|")[0]) for r in rows] == [1, 2]
    assert all(float(r.split("|")[3]) > 0 for r in rows)
