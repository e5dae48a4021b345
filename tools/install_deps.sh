#!/usr/bin/env bash
# Installs every Debian package lkaseg needs to build, test and benchmark.
# Idempotent: when everything is present it only checks and returns.
# The CUDA toolkit (nvcc, cuDNN, cuBLAS) is expected to be installed already;
# without it the build configures CPU-only.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev   # sgemm/dgemm (OpenMP build: cooperates with our OpenMP loops)
  libdnnl-dev              # oneDNN 2.6: the CPU's float32 convolutions (GNU OpenMP build, same pool)
  catch2                   # unit tests (Catch2 v2, single header + CMake glue)
  libbenchmark-dev         # Google Benchmark suites in bench/
  nlohmann-json3-dev       # safetensors headers (fixtures, checkpoints)
  libcli11-dev             # the lkaseg command line
  zlib1g-dev
  libnifti2-dev            # nifti_clib: NIfTI-1/-2 reading and headers (data/)
  libstb-dev               # stb_image_write.h: PNG figures (lkaseg figures); stb_image.h in tests
  libopenmpi-dev           # data-parallel training over MPI (optional at configure time)
  openmpi-bin              # mpirun: the mpi tests start 2 ranks
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install_deps: all packages present"
fi
