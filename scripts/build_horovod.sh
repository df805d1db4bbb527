#!/usr/bin/env bash
# Build Horovod 0.28.1 against the torch and TensorFlow in a virtual environment, once, and cache the wheel.
#
#   scripts/build_horovod.sh [VENV]      (default .venv; `make horovod` calls it)
#
# Horovod 0.28.1 (2023, the newest release) does not build as released against torch 2.13 / TF 2.21. Three
# changes to the unpacked sdist make it build; each is checked, so a different sdist fails loudly here:
#   1. C++17 instead of C++14 in CMakeLists.txt and horovod/torch/CMakeLists.txt (torch's headers need it;
#      upstream made the same change after 0.28.1 but never released it);
#   2. no xla_mpi_ops.cc in horovod/tensorflow/CMakeLists.txt (TF 2.21's XLA headers need highwayhash, which
#      the TF wheel does not ship);
#   3. CMAKE_POLICY_VERSION_MINIMUM=3.5, so CMake 4 still accepts the bundled gloo (harmless with CMake 3).
# The wheel is cached under $HOROVOD_WHEEL_CACHE (default ~/.cache/orchestrator/wheels), keyed by the
# torch and TensorFlow versions it was built against; later runs install it in seconds.
set -euo pipefail

VENV=${1:-.venv}
PY="$VENV/bin/python"
VERSION=0.28.1
[ -x "$PY" ] || { echo "build_horovod: no Python at $PY; run 'make setup' first" >&2; exit 2; }

if "$PY" -c "import horovod, sys; sys.exit(horovod.__version__ != '$VERSION')" 2>/dev/null; then
    echo "horovod $VERSION already installed in $VENV"
    exit 0
fi

ABI=$("$PY" -c "import sys, torch, tensorflow as tf; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}-tf{tf.__version__}'.replace('+', '_'))" 2>/dev/null)
CACHE="${HOROVOD_WHEEL_CACHE:-$HOME/.cache/orchestrator/wheels}/$ABI"
mkdir -p "$CACHE"

wheel=$(ls "$CACHE"/horovod-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "building horovod $VERSION for $ABI (about 5 minutes on 2 cores; cached in $CACHE)"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
    tar -xzf "$work"/horovod-"$VERSION".tar.gz -C "$work"
    src="$work/horovod-$VERSION"

    patch_line() {  # file, sed expression, text that must be present afterwards
        sed -i "$2" "$src/$1"
        grep -q -- "$3" "$src/$1" || { echo "build_horovod: could not patch $1 ($2)" >&2; exit 1; }
    }
    patch_line CMakeLists.txt 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' 'CMAKE_CXX_STANDARD 17'
    patch_line horovod/torch/CMakeLists.txt 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' 'CMAKE_CXX_STANDARD 17'
    grep -q 'xla_mpi_ops.cc' "$src/horovod/tensorflow/CMakeLists.txt" \
        || { echo "build_horovod: xla_mpi_ops.cc not found in horovod/tensorflow/CMakeLists.txt" >&2; exit 1; }
    sed -i '/xla_mpi_ops.cc/d' "$src/horovod/tensorflow/CMakeLists.txt"

    "$PY" -m pip install --quiet "setuptools<81" wheel
    env CMAKE_POLICY_VERSION_MINIMUM=3.5 \
        HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \
        HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=GLOO \
        MAKEFLAGS="-j$(nproc)" \
        "$PY" -m pip wheel --quiet --no-build-isolation --no-deps -w "$CACHE" "$src"
    wheel=$(ls "$CACHE"/horovod-"$VERSION"-*.whl | head -n1)
fi

"$PY" -m pip install --quiet --no-deps "$wheel"
"$PY" -m pip install --quiet "cloudpickle" "psutil" "packaging"
"$PY" -c "import horovod.torch, horovod.tensorflow; print('horovod', horovod.__version__, 'installed from', '$wheel')"
