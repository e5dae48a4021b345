#!/usr/bin/env bash
# Open-ended fuzzing of the readers of untrusted bytes (NIfTI .nii/.nii.gz,
# the slice cache, safetensors checkpoints, the split JSON, the training
# configuration) with libFuzzer, ASan and UBSan on the whole program
# (clang). Not part of CI; CI replays seeds and deterministic mutations
# (tests/fuzz/test_fuzz_replay.cpp).
#
# Usage: tools/fuzz.sh [seconds per target, default 60] [target...]
# Targets: nifti nifti_gz slice_cache safetensors split_json train_config.
# Corpora grow in build-fuzz/corpus/<target>/ (seeded from the targets'
# valid inputs); crashes land in build-fuzz/crashes/<target>/ and make the
# script exit 1. Reproduce one with build-fuzz/tests/fuzz/fuzz_<target> FILE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_FUZZ_BUILD_DIR:-$root/build-fuzz}"
secs="${1:-60}"
shift || true
all=(nifti nifti_gz slice_cache safetensors split_json train_config)
targets=("${@:-${all[@]}}")
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }

# -Wno-pass-failed: with the sanitizers clang cannot honour every "omp simd".
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLKASEG_CUDA=OFF \
  -DLKASEG_BENCH=OFF -DLKASEG_FUZZ=ON -DLKASEG_EMU_SANITIZE= \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link $san -Wno-pass-failed" -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link $san" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

status=0
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  corpus="$build/corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  [[ -n "$(ls -A "$corpus")" ]] || "$bin" --seeds "$corpus" >/dev/null
  echo "== $t: ${secs}s"
  set +e
  # -rss_limit_mb: a reader must never allocate from an unchecked size.
  "$bin" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$build/$t.log" 2>&1
  rc=$?
  set -e
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$t.log" | sed 's/^/   /'
  if [[ $rc != 0 ]]; then
    echo "   FAIL (exit $rc): $(ls "$crashes" | head -3); see $build/$t.log"
    status=1
  fi
done
[[ $status == 0 ]] && echo "fuzz.sh: no crash" || echo "fuzz.sh: crashes found"
exit $status
