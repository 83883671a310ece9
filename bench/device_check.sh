#!/usr/bin/env bash
# The GPU check of issue 13, on one H100/H200, in under 8 minutes: see bench/device_check.py.
#
#   bash bench/device_check.sh [extra device_check.py options]
#
# Run from the repository root. Needs the compact CASIA-B files in .realdata/casia-b-bin64/
# (git-ignored; copy ../shared/data/casia-b-bin64 there and carry it). Writes
# $OUT/device_check.json, $OUT/device_check.log and $OUT/nvidia-smi.txt ($OUT defaults to
# .device_out/). The machine's python3 must have torch; the package runs from the tree
# (PYTHONPATH), nothing is installed unless torch is missing.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.device_out}
mkdir -p "$OUT"
export OUT PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
{ nvidia-smi; nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv; } \
    > "$OUT/nvidia-smi.txt" 2>&1
if ! $PY -c "import torch, numpy, pandas, cv2, tqdm, pytest" 2>/dev/null; then
    echo "[device_check] torch or a dependency is missing: pip install (needs a registry)"
    $PY -m pip install -q torch numpy pandas pillow opencv-python-headless tqdm pytest \
        2>&1 | tail -3
fi
timeout 450 $PY bench/device_check.py "$@" 2>&1 | tee "$OUT/device_check.log"
