#!/usr/bin/env bash
# Builds .venv-peers: the two public peers of bench/accuracy (ultralytics' ObjectCounter;
# trackers' ByteTrack with supervision's LineZone). They live apart from the project's .venv
# because ultralytics pulls torch (~5.5 GB) and `trackers` pulls opencv-python, which shares the
# cv2 folder with the project's opencv-python-headless.
# Idempotent: a venv whose peers already import is left as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PEERS_VENV:-$root/.venv-peers}"
python="${PYTHON:-python3.11}"

export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False PIP_DISABLE_PIP_VERSION_CHECK=1

probe='import ultralytics, trackers, supervision, onnxruntime, onnx, av, torch, torchvision, shapely, lap'
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$probe" 2>/dev/null; then
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
"$venv/bin/python" -m pip install -qq \
  torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxruntime shapely lap trackers supervision av
"$venv/bin/python" -c "$probe"
end_s=$(date +%s)
echo "setup_peers: built $venv in $((end_s - start_s)) s, $(du -sh "$venv" | cut -f1)"
