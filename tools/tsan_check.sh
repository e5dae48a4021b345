#!/usr/bin/env bash
# ThreadSanitizer check of the SIMT emulator's threads mode and of our real
# CUDA kernels under it. CI runs it with --ci (tools/test.sh).
#
# Builds the emulated targets with -fsanitize=thread (LKASEG_EMU_SANITIZE=
# thread: only the emulated targets are instrumented) in build-tsan/, then,
# with LKASEG_SIMT_MODE=threads (every CUDA thread a real OS thread, every
# barrier a real one):
#   1. a shared-memory reduction missing one __syncthreads must produce a
#      ThreadSanitizer data-race report naming that kernel;
#   2. the same reduction with the __syncthreads must produce none.
# With --all it also runs the whole emulator self-test under TSan (both modes;
# fibers are annotated for TSan) and requires no report at all.
# With --kernels (implied by --all) it builds every emulated kernel test
# binary (test_emu_kernels and test_emu_k_*, one per tests/kernels/cuda/test_emu_k_*.cpp)
# and runs each in threads mode: each must pass with no ThreadSanitizer report.
# With --ci (what CI runs, about two minutes on 2 cores, build included): the
# checks 1 and 2, the emulator's stream self-tests (eager policy: the stream
# workers run concurrently), and every kernel test binary's threads-mode test
# cases ("*threads mode*": each binary has one, a small shape launching its
# barrier and shared-memory kernels) - each must pass with no report.
# With --loader (implied by --all) it builds the data loader's tests with the
# whole program under TSan (build-tsan-loader/: the loader's worker threads,
# its upload ring on the CPU and on the emulated CUDA backend) and runs them:
# each must pass with no report.
# Checks 1 and 2 always run: they show that the detector sees a missing
# barrier, which is what makes "no report" from the kernels mean something.
#
# Threads mode under TSan is slow (one OS thread per CUDA thread, every
# access instrumented), so binaries whose whole run takes well over ~4 min
# run a representative subset of their test cases (KERNEL_SUBSETS below: the
# big shape grid left out, the kernels still launched); the output says which.
# LKASEG_TSAN_FULL=1 runs every test case of every binary instead. Races
# between blocks show when the two blocks run in different block groups
# (LKASEG_SIMT_WORKERS groups at once, default the core count).
#
# Usage: tools/tsan_check.sh [--ci] [--kernels] [--loader] [--all]
# Environment: LKASEG_TSAN_BUILD_DIR (default build-tsan/), LKASEG_TSAN_JOBS
# (build parallelism, default nproc), LKASEG_TSAN_FULL=1 (no subsets),
# LKASEG_TSAN_TIMEOUT (seconds per kernel binary, default 1800).
# Logs: build-tsan/tsan_logs/ (kernel binaries: tsan_logs/kernels/<binary>.log).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_TSAN_BUILD_DIR:-$root/build-tsan}"
jobs="${LKASEG_TSAN_JOBS:-$(nproc)}"
all=0
kernels=0
loader=0
ci=0
for arg in "$@"; do
  case "$arg" in
    --ci) ci=1 kernels=1 ;;
    --all) all=1 kernels=1 loader=1 ;;
    --loader) loader=1 ;;
    --kernels) kernels=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "tsan_check: unknown argument '$arg' (usage: tools/tsan_check.sh [--ci] [--kernels] [--loader] [--all])" >&2
      exit 2
      ;;
  esac
done

# The kernel test binaries: test_emu_kernels and one test_emu_k_<family> per source.
kernel_bins=()
if [[ "$kernels" == 1 ]]; then
  kernel_bins=(test_emu_kernels)
  for src in "$root"/tests/kernels/cuda/test_emu_k_*.cpp; do
    [[ -e "$src" ]] && kernel_bins+=("$(basename "$src" .cpp)")
  done
fi

# Representative subsets for the binaries whose complete threads-mode TSan
# run takes well over ~4 minutes (2 shared cores): Catch2 test specs, here an
# exclusion (~"name"; several in one argument are and-ed) of the big
# shape-grid case, which only repeats the binary's kernels over more
# channel/batch counts; what stays still launches every kernel function of
# the binary (one template instantiation excepted, below).
# Binaries not listed run all their test cases. Timings (GCC 12 TSan,
# RelWithDebInfo, LKASEG_SIMT_WORKERS=2; a quieter .. a busier shared machine):
#   test_emu_k_binary: all 302 s .. over 420 s, of it the grid 234 .. 364 s;
#   test_emu_k_upsample:    all 262 .. 323 s, of it the grid 239 .. 300 s;
#   test_emu_k_depthwise_conv2d:   all 215 .. 400 s, the grid 149 .. 292 s: runs whole;
#   every other binary under 2 minutes.
declare -A KERNEL_SUBSETS=(
  # Left, about 70 s: add/mul forward and every backward strategy (own thread,
  # warp and block per destination, 1..4 reduced dims), fill, axpy, scale:
  # every kernel of binary.cu (all with 32-bit indices, as in the grid).
  [test_emu_k_binary]='~"emu binary: broadcast add/mul match binary_* on the shape grid"'
  # Left, about 25 s: nearest and bilinear, forward and backward, f = 2, 8 and
  # any f (F = 0); f = 4 bilinear (the threads-mode case). Not launched then:
  # upsample_{fwd,bwd}_kernel<4, nearest>, the same template body as
  # <2, nearest> and <8, nearest> with another constant divisor (no shared
  # memory, no barrier: one thread per output / per input pixel).
  [test_emu_k_upsample]='~"emu upsample: nearest and bilinear match upsample_* on the shape grid"'
)

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLKASEG_EMU_SANITIZE=thread \
  -DLKASEG_CUDA=OFF -DLKASEG_BENCH=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target test_simt "${kernel_bins[@]}"
exe="$build/tests/simt/test_simt"

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

if [[ "$ci" == 1 && "$all" == 0 ]]; then
  echo "== 3. stream self-tests under TSan, streams running concurrently (eager): expecting no report"
  log="$log_dir/streams.log"
  rc=$(export LKASEG_SIMT_STREAMS=eager; run "$log" "emu streams*")
  if [[ "$rc" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
    echo "   OK: $(grep -E '^All tests passed' "$log" | tail -1)"
  else
    echo "   FAIL: exit $rc or a ThreadSanitizer report; see $log"
    status=1
  fi
fi

if [[ "$all" == 1 ]]; then
  echo "== 3. whole emulator self-test under TSan: expecting no report"
  log="$log_dir/all.log"
  unset LKASEG_SIMT_MODE  # the tests pick their modes themselves
  rc=$(run "$log")
  export LKASEG_SIMT_MODE=threads
  if [[ "$rc" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
    echo "   OK: $(grep -E '^(All tests passed|test cases)' "$log" | tail -1)"
  else
    echo "   FAIL: exit $rc or a ThreadSanitizer report; see $log"
    status=1
  fi
fi

if [[ "$kernels" == 1 ]]; then
  echo "== 4. kernel test binaries in threads mode: expecting passing tests and no report"
  # The CPU references the tests compare with are OpenMP loops (kernels/*.cpp).
  # libgomp is not built with TSan, so its fork/join barriers are invisible
  # and TSan reports the main thread reading what an OpenMP worker wrote
  # (seen: concat_fwd's memcpy vs. scaled_error). The references are not what
  # is checked here: one OpenMP thread runs them on the calling thread.
  export OMP_NUM_THREADS=1
  timeout_s="${LKASEG_TSAN_TIMEOUT:-1800}"
  mkdir -p "$log_dir/kernels"
  now() { date +%s.%N; }
  k_ok=0 k_fail=0 k_subset=0
  k_start=$(now)
  for bin in "${kernel_bins[@]}"; do
    log="$log_dir/kernels/$bin.log"
    spec=()
    what="all test cases"
    if [[ "$ci" == 1 && "$all" == 0 ]]; then
      spec=("*threads mode*")
      what="the threads-mode test cases (--ci)"
    elif [[ -z "${LKASEG_TSAN_FULL:-}" && -n "${KERNEL_SUBSETS[$bin]:-}" ]]; then
      spec=("${KERNEL_SUBSETS[$bin]}")
      what="SUBSET (all of it is too slow under TSan): ${KERNEL_SUBSETS[$bin]}"
      k_subset=$((k_subset + 1))
    fi
    t0=$(now)
    set +e
    timeout "$timeout_s" "$build/tests/kernels/cuda/$bin" "${spec[@]}" >"$log" 2>&1
    rc=$?
    set -e
    dt=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
    cases=$(grep -oE '[0-9]+ test cases?' "$log" | tail -1 || true)
    # A binary without a threads-mode test case would check nothing here.
    [[ -z "$cases" && "$rc" == 0 ]] && rc="no test case matched"
    if [[ "$rc" == 0 && "$reports" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
      k_ok=$((k_ok + 1))
      printf "   OK    %-24s %7ss  %s, %s\n" "$bin" "$dt" "${cases:-? test cases}" "$what"
    else
      k_fail=$((k_fail + 1))
      status=1
      why="exit $rc"
      [[ "$rc" == 124 ]] && why="timed out after ${timeout_s}s"
      [[ "$reports" != 0 ]] && why="$why, $reports ThreadSanitizer report(s)"
      printf "   FAIL  %-24s %7ss  %s (%s); see %s\n" "$bin" "$dt" "$why" "$what" "$log"
      grep -m1 -A8 "WARNING: ThreadSanitizer" "$log" | sed 's/^/   | /' || true
    fi
  done
  k_total=$(awk -v a="$k_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
  echo "   kernels: ${#kernel_bins[@]} binaries, $k_ok OK, $k_fail FAIL, $k_subset limited to a subset, ${k_total}s"
fi

if [[ "$loader" == 1 ]]; then
  echo "== 5. data loader tests, whole program under TSan: expecting passing tests and no report"
  lbuild="${build}-loader"
  cmake -S "$root" -B "$lbuild" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLKASEG_EMU_SANITIZE=thread \
    -DLKASEG_CUDA=OFF -DLKASEG_BENCH=OFF -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
  cmake --build "$lbuild" -j "$jobs" --target test_loader test_emu_loader
  export OMP_NUM_THREADS=1  # libgomp is not instrumented (see 4.)
  for bin in "$lbuild/tests/data/test_loader" "$lbuild/tests/engine/cuda/test_emu_loader"; do
    log="$log_dir/$(basename "$bin").log"
    set +e
    "$bin" >"$log" 2>&1
    rc=$?
    set -e
    if [[ "$rc" == 0 ]] && ! grep -q "ThreadSanitizer" "$log"; then
      echo "   OK    $(basename "$bin"): $(grep -E '^All tests passed' "$log" | tail -1)"
    else
      echo "   FAIL  $(basename "$bin"): exit $rc or a ThreadSanitizer report; see $log"
      status=1
    fi
  done
fi

[[ "$status" == 0 ]] && echo "tsan_check: OK" || echo "tsan_check: FAILED"
exit "$status"
