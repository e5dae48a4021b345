#!/usr/bin/env bash
# Installs, builds (CUDA targets included when nvcc is present) and runs
# every test through ctest. Tests carry labels: cpu (now), emu and gpu
# (CUDA issue); gpu tests report as skipped without a GPU. Then the CUDA
# kernels' ThreadSanitizer check (tools/tsan_check.sh --ci, its own build in
# build-tsan/, about two minutes; LKASEG_TSAN=0 skips it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_BUILD_DIR:-$root/build}"
"$root/tools/build.sh"
# install_deps.sh installs Open MPI: the mpi tests (data-parallel ranks) must run, not skip.
grep -q '^LKASEG_HAVE_MPI:INTERNAL=ON' "$build/CMakeCache.txt" ||
  { echo "tools/test.sh: CMake found no MPI in $build: the mpi tests would be skipped" >&2; exit 1; }
# The benchmarks must at least start and validate their kernels.
"$build/bench/bench_cpu_ops" --benchmark_list_tests >/dev/null
(cd "$build" && ctest --output-on-failure -j "$(nproc)" "$@")
if [[ "${LKASEG_TSAN:-1}" != 0 ]]; then
  "$root/tools/tsan_check.sh" --ci
fi
