#!/usr/bin/env bash
# Run on a GPU machine (bare: CUDA toolkit + cmake + a C++ compiler, no
# network, none of our -dev packages). One call does what only a GPU shows:
#   1. unpacks third_party/debs (from tools/gpu_prepare_deps.sh) into a prefix
#   2. configures and builds everything (CUDA for this card's architecture too)
#   3. runs every test: cpu, emu and gpu labels
#   4. compute-sanitizer memcheck and racecheck on the CUDA kernel tests
#   5. the benchmarks (CPU, and the GPU kernel suites when built)
#   5b. end to end on the GPU: `lkaseg demo` and a short `lkaseg cv` (train,
#      predict in the original grid, evaluate) on generated cases
#   6. prints a short table and writes docs/runs/<date>-<card>.md
#      (also copied to $OUT when set, for the device tool)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LKASEG_BUILD_DIR:-$root/build-gpu}"
prefix="$root/third_party/deps"
jobs="$(nproc)"
export PATH="/usr/local/cuda/bin:$PATH"
declare -a rows=()
row() { rows+=("$(printf '| %-34s | %-8s | %s |' "$1" "$2" "$3")"); }

card="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)"
echo "== GPU: ${card:-none} (sm_${cc:-?}), driver ${driver:-?}; $(nvcc --version | tail -1)"

# 1. dependencies
if compgen -G "$root/third_party/debs/*.deb" >/dev/null; then
  mkdir -p "$prefix"
  for d in "$root"/third_party/debs/*.deb; do dpkg -x "$d" "$prefix"; done
  export CMAKE_PREFIX_PATH="$prefix/usr"
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu/openblas-openmp:$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  row "dependencies" "ok" "$(ls "$root"/third_party/debs/*.deb | wc -l) packages unpacked"
else
  echo "no third_party/debs: expecting the system to have the packages (tools/install_deps.sh)"
  row "dependencies" "system" "no third_party/debs"
fi

# 2. build
archs="${LKASEG_CUDA_ARCHS:-89;90${cc:+;$cc}}"
archs="$(echo "$archs" | tr ';' '\n' | sort -u | paste -sd';')"
t0=$(date +%s)
if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$archs" >"$build.configure.log" 2>&1 &&
   cmake --build "$build" -j "$jobs" >"$build.build.log" 2>&1; then
  row "build (sm $archs)" "ok" "$(( $(date +%s) - t0 )) s, $(grep -ci 'warning' "$build.build.log") warning lines"
else
  tail -40 "$build.configure.log" "$build.build.log" 2>/dev/null
  row "build (sm $archs)" "FAILED" "see $build.build.log"
  printf '%s\n' "${rows[@]}"
  exit 1
fi
grep -E "ptxas info|spill" "$build.build.log" | sort -u > "$build.ptxas.log" || true

# 3. tests
status=0
for label in cpu emu gpu; do
  out="$(cd "$build" && ctest -L "^$label\$" -j "$jobs" --output-on-failure 2>&1)"
  rc=$?
  summary="$(echo "$out" | grep -E 'tests passed|tests failed' | tail -1)"
  [[ $rc -eq 0 ]] && row "ctest -L $label" "ok" "${summary:-no tests}" || { row "ctest -L $label" "FAILED" "$summary"; status=1; echo "$out" | tail -60; }
done

# 4. compute-sanitizer on the CUDA kernel tests (binaries named test_gpu_*)
gpu_tests=$(find "$build/tests" -maxdepth 3 -type f -executable -name 'test_gpu_*' 2>/dev/null)
if [[ -z "$gpu_tests" ]]; then
  row "compute-sanitizer" "n/a" "no test_gpu_* binaries built yet"
else
  for tool in memcheck racecheck; do
    ok=1
    for t in $gpu_tests; do
      compute-sanitizer --tool "$tool" --error-exitcode 9 "$t" >"$build.$tool.$(basename "$t").log" 2>&1 || ok=0
    done
    [[ $ok -eq 1 ]] && row "compute-sanitizer $tool" "ok" "$(echo $gpu_tests | wc -w) binaries" ||
      { row "compute-sanitizer $tool" "FAILED" "see $build.$tool.*.log"; status=1; }
  done
fi

# 5. benchmarks
mkdir -p "$build/bench-results"
for b in "$build"/bench/bench_*; do
  [[ -x "$b" ]] || continue
  name="$(basename "$b")"
  if "$b" --benchmark_min_time=0.05 --benchmark_format=console --benchmark_out="$build/bench-results/$name.json" \
       --benchmark_out_format=json >"$build/bench-results/$name.txt" 2>&1; then
    row "$name" "ok" "$(grep -c '^[a-z]' "$build/bench-results/$name.txt") rows"
  else
    row "$name" "FAILED" "see bench-results/$name.txt"; status=1
  fi
done

# 5b. end to end on the GPU
e2e="$build/e2e"
rm -rf "$e2e" && mkdir -p "$e2e"
t0=$(date +%s)
if "$build/lkaseg" demo --device cuda:0 --steps 200 --batch 8 --work "$e2e/demo" >"$build/e2e.demo.log" 2>&1; then
  row "lkaseg demo (cuda:0, 200 steps)" "ok" "$(( $(date +%s) - t0 )) s; $(grep -o 'trained .*' "$build/e2e.demo.log" | head -1)"
else
  row "lkaseg demo (cuda:0)" "FAILED" "see $build/e2e.demo.log"; status=1
fi
t0=$(date +%s)
if "$build/lkaseg" synth --out "$e2e/data" --cases 10 --seed 7 >/dev/null 2>&1 &&
   "$build/lkaseg" cv --data "$e2e/data" --out "$e2e/run" --fraction 1 --folds 2 --epochs 3 --val-every 1 \
     --widths 16 32 64 128 --device cuda:0 >"$build/e2e.cv.log" 2>&1; then
  row "lkaseg cv (cuda:0, 2 folds x 3 epochs)" "ok" "$(( $(date +%s) - t0 )) s"
else
  row "lkaseg cv (cuda:0)" "FAILED" "see $build/e2e.cv.log"; status=1
fi

# 6. report
date_s="$(date -u +%Y-%m-%d)"
slug="$(echo "${card:-cpu}" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/-$//')"
report="$root/docs/runs/${date_s}-${slug}.md"
mkdir -p "$(dirname "$report")"
{
  echo "# GPU check, $date_s, ${card:-no GPU} (sm_${cc:-?}), driver ${driver:-?}"
  echo
  echo "Commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); $(nvcc --version | tail -1)"
  echo
  echo "| step | result | detail |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "## ptxas resource usage"
  echo '```'
  cat "$build.ptxas.log" 2>/dev/null | head -200
  echo '```'
  for f in "$build"/e2e.*.log; do
    [[ -f $f ]] || continue
    echo
    echo "## $(basename "$f" .log)"
    echo '```'
    grep -v -E '^(preprocess|predict|evaluate): [0-9]+/' "$f" | tail -60
    echo '```'
  done
  for f in "$build"/bench-results/*.txt; do
    [[ -f $f ]] || continue
    echo
    echo "## $(basename "$f" .txt)"
    echo '```'
    cat "$f"
    echo '```'
  done
} >"$report"
if [[ -n "${OUT:-}" ]]; then cp "$report" "$OUT/"; cp "$build".*.log "$build"/e2e.*.log "$OUT/" 2>/dev/null || true; fi
echo
echo "| step | result | detail |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo "report: $report"
exit $status
