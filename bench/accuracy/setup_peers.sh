#!/usr/bin/env bash
# Builds .venv-peers: the two public peers of bench/accuracy (ultralytics' ObjectCounter;
# trackers' ByteTrack with supervision's LineZone). They live apart from the project's .venv
# because ultralytics pulls torch (a CUDA build, ~4.5 GB with its nvidia libraries) and the
# peers want opencv-python and onnxruntime, which share module folders with the project's
# opencv-python-headless and onnxruntime-gpu.
# Idempotent: a venv whose pinned peers already import is left as it is.
# Measured here (2 cores, torch from this machine's disk): ~55 s from nothing, 6.3 GB.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PEERS_VENV:-$root/.venv-peers}"
python="${PYTHON:-python3.11}"

export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False PIP_DISABLE_PIP_VERSION_CHECK=1

# Pinned: the direction mapping in peers.py and ObjectCounter's default tracker (TrackTrack)
# were read in these versions' source.
peers=(ultralytics==8.4.190 trackers==2.6.1 supervision==0.31.2 onnxruntime==1.32.0
       onnx==1.23.2 shapely==2.2.0 lap==0.5.13 av==18.1.0)
probe='
import sys
from importlib.metadata import version
import ultralytics, trackers, supervision, onnxruntime, onnx, av, torch, shapely, lap
wanted = dict(p.split("==") for p in sys.argv[1:])
sys.exit(any(version(name) != pin for name, pin in wanted.items()))
'
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$probe" "${peers[@]}" 2>/dev/null; then
  echo "setup_peers: $venv is ready"
  exit 0
fi

start_s=$(date +%s)
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -qq --upgrade pip
# pip on Python 3.11 takes these two from this machine's disk (see the env notes); asking for
# them first keeps ultralytics from pulling a newer CUDA build over the network.
"$venv/bin/python" -m pip install -qq torch==2.14.1 torchvision==0.29.1
# onnx/onnxruntime (loading an .onnx), shapely (solutions) and lap (its trackers) up front:
# ultralytics pip-installs what it misses at run time otherwise, and with YOLO_AUTOINSTALL=False
# it fails instead.
"$venv/bin/python" -m pip install -qq torch==2.14.1 torchvision==0.29.1 "${peers[@]}"
"$venv/bin/python" -c "$probe" "${peers[@]}"
end_s=$(date +%s)
echo "setup_peers: built $venv in $((end_s - start_s)) s, $(du -sh "$venv" | cut -f1)"
