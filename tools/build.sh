#!/usr/bin/env bash
# Installs the dependencies (tools/install_deps.sh), configures and builds
# lkaseg into ${LKASEG_BUILD_DIR:-build}. Extra arguments go to cmake.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_BUILD_DIR:-$root/build}"
"$root/tools/install_deps.sh"
# nvcc lives outside PATH on a stock CUDA install.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$(nproc)"
