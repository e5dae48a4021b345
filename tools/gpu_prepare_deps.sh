#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the .deb
# files of every library lkaseg builds against into third_party/debs/
# (git-ignored), so that tools/gpu_check.sh can unpack them on a bare GPU
# machine that has the CUDA toolkit and cmake but no network and none of our
# -dev packages. Ship the folder beside the tree (the device tool: carry it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/third_party/debs"
mkdir -p "$dest"
# The -dev packages and the runtime libraries they link to.
PACKAGES=(
  catch2 libbenchmark-dev libbenchmark1debian
  nlohmann-json3-dev libcli11-dev
  libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5
  libnifti2-dev libnifti2-2 zlib1g-dev
  libstb-dev
)
want=("${PACKAGES[@]}")
if ! apt-cache show "${want[0]}" >/dev/null 2>&1; then apt-get update -qq; fi
cd "$dest"
rm -f ./*.deb
apt-get download "${want[@]}"
ls -la "$dest"
du -sh "$dest"
