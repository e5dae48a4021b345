#!/usr/bin/env bash
# ThreadSanitizer check of the SIMT emulator's threads mode (not part of CI).
#
# Builds the emulator self-test with -fsanitize=thread (LKASEG_EMU_SANITIZE=
# thread: only the emulated targets are instrumented) in build-tsan/, then,
# with LKASEG_SIMT_MODE=threads (every CUDA thread a real OS thread, every
# barrier a real one):
#   1. a shared-memory reduction missing one __syncthreads must produce a
#      ThreadSanitizer data-race report naming that kernel;
#   2. the same reduction with the __syncthreads must produce none.
# With --all it also runs the whole emulator self-test under TSan (both modes;
# fibers are annotated for TSan) and requires no report at all.
#
# Usage: tools/tsan_check.sh [--all]      (LKASEG_TSAN_BUILD_DIR overrides build-tsan/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_TSAN_BUILD_DIR:-$root/build-tsan}"
all=0
[[ "${1:-}" == "--all" ]] && all=1

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLKASEG_EMU_SANITIZE=thread \
  -DLKASEG_CUDA=OFF -DLKASEG_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target test_emu_simt
exe="$build/tests/emu/test_emu_simt"

export LKASEG_SIMT_MODE=threads
# Keep going after the first report so the run finishes; exit code 66 on reports.
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}"
log_dir="$build/tsan_logs"
mkdir -p "$log_dir"
status=0

run() {  # run <log> <catch test spec...>
  local log="$1"
  shift
  set +e
  "$exe" "$@" >"$log" 2>&1
  local rc=$?
  set -e
  echo "$rc"
}

echo "== 1. reduction missing a __syncthreads (threads mode): expecting a data race"
log="$log_dir/broken.log"
rc=$(run "$log" "tsan: shared-memory reduction missing a __syncthreads")
if grep -q "WARNING: ThreadSanitizer: data race" "$log" && grep -q "block_sums_missing_sync_kernel" "$log"; then
  echo "   OK: TSan reported $(grep -c 'WARNING: ThreadSanitizer: data race' "$log") race(s) in block_sums_missing_sync_kernel (exit $rc)"
  grep -m1 -A6 "WARNING: ThreadSanitizer: data race" "$log" | sed 's/^/   | /'
else
  echo "   FAIL: no data race reported in block_sums_missing_sync_kernel (exit $rc); see $log"
  status=1
fi

echo "== 2. correct reduction (threads mode): expecting no report"
log="$log_dir/correct.log"
rc=$(run "$log" "tsan: shared-memory reduction")
if [[ "$rc" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
  echo "   OK: no ThreadSanitizer report, test passed"
else
  echo "   FAIL: exit $rc or a ThreadSanitizer report; see $log"
  status=1
fi

if [[ "$all" == 1 ]]; then
  echo "== 3. whole emulator self-test under TSan: expecting no report"
  log="$log_dir/all.log"
  unset LKASEG_SIMT_MODE  # the tests pick their modes themselves
  rc=$(run "$log")
  if [[ "$rc" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
    echo "   OK: $(grep -E '^(All tests passed|test cases)' "$log" | tail -1)"
  else
    echo "   FAIL: exit $rc or a ThreadSanitizer report; see $log"
    status=1
  fi
fi

[[ "$status" == 0 ]] && echo "tsan_check: OK" || echo "tsan_check: FAILED"
exit "$status"
