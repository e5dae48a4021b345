#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the .deb
# files of every library lkaseg builds against into third_party/debs/
# (git-ignored), so that tools/gpu_check.sh can unpack them (dpkg -x, into
# the build folder) on a bare GPU machine that has the CUDA toolkit, cmake
# and a C++ compiler but no network and none of our -dev packages. Carry the
# folder with the call (docs/GPU.md); it must stay far under the device
# tool's 64 MiB with the tree (about 22 MiB today: the script prints it).
# cuDNN is not here: the GPU machine's own (beside the toolkit, or the pip
# wheel beside PyTorch) is used.
# It also copies the three real BraTS cases that gpu_check's precision stage
# trains on (bf16 vs fp32) from ../shared/data/brats2021 (or $1) into
# third_party/real_cases/ (git-ignored, ~24 MB; the cases never enter the
# repository): carry it too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/third_party/debs"
# The -dev packages of tools/install_deps.sh and the runtime libraries they
# link to that a CUDA image lacks (libgomp, libstdc++ and zlib it has).
PACKAGES=(
  catch2 libbenchmark-dev libbenchmark1debian
  nlohmann-json3-dev libcli11-dev
  libopenblas-openmp-dev libopenblas0-openmp libopenblas-dev libgfortran5 libquadmath0
  libnifti2-dev libniftiio-dev libnifti2-2 libznz-dev libznz3 zlib1g-dev
  libdnnl-dev libdnnl2 ocl-icd-libopencl1
  libstb-dev libstb0
)
if ! apt-cache show "${PACKAGES[0]}" >/dev/null 2>&1; then apt-get update -qq; fi
mkdir -p "$dest"
cd "$dest"
rm -f ./*.deb
apt-get download "${PACKAGES[@]}"
ls -la "$dest"
du -sh "$dest"

cases_src="${1:-$root/../shared/data/brats2021}"
cases_dest="$root/third_party/real_cases"
rm -rf "$cases_dest"
if [[ -d $cases_src ]]; then
  mkdir -p "$cases_dest"
  for c in BraTS2021_00006 BraTS2021_01478 BraTS2021_01479; do
    [[ -d $cases_src/$c ]] || { echo "gpu_prepare_deps: no $c in $cases_src" >&2; exit 1; }
    cp -rL "$cases_src/$c" "$cases_dest/"
  done
  du -sh "$cases_dest"
else
  echo "gpu_prepare_deps: no $cases_src: the precision stage will be skipped" >&2
fi
carried=$(du -sbc "$dest" "$cases_dest" 2>/dev/null | tail -1 | cut -f1)
tracked=$(cd "$root" && git ls-files -z 2>/dev/null | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "carried folders $((carried >> 20)) MiB + tracked tree $((${tracked:-0} >> 20)) MiB (the device tool takes 64 MiB in all)"
