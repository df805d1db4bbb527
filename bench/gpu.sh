#!/usr/bin/env bash
# A machine with one NVIDIA GPU and PyPI: ResNet-50 through the orchestrator and bare, PyTorch and TensorFlow.
#   bash bench/gpu.sh [bench/gpu.py options]      -> bench/results/gpu.{json,md}, under 10 minutes once installed
# Installs CUDA builds into .venv-gpu (torch from PyPI's default CUDA wheels, tensorflow[and-cuda]); the
# project's own .venv keeps its CPU builds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "bench/gpu.sh: no NVIDIA GPU found" >&2; exit 2; }
if [ ! -f "$VENV/.installed" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet --progress-bar off -e . "torch==2.13.0" torchvision \
        "tensorflow[and-cuda]==2.21.0" "tf-keras==2.21.0"
    touch "$VENV/.installed"
fi
exec "$VENV/bin/python" bench/gpu.py "$@"
