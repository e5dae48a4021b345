#!/usr/bin/env bash
# The GPU check: one call on a bare GPU machine (CUDA toolkit, cmake, PyTorch
# in python3, compute-sanitizer; no network, none of our -dev packages) that
# comes back with the whole verdict. Stages, most valuable first, each in its
# own time box inside a global budget; a stage that fails or runs out of time
# is recorded and the next one still runs (tools/gpu/runner.sh):
#
#   build          unpack third_party/debs (tools/gpu_prepare_deps.sh), find
#                  cuDNN (system, or the pip wheel beside PyTorch), configure
#                  for this card's architecture only, build the targets below
#   gpu_tests      ctest -L gpu: every op on CUDA vs the PyTorch fixtures,
#                  both variants; networks vs the CPU backend; loader,
#                  trainer and prediction on the device
#   sanitizers     compute-sanitizer memcheck, racecheck, initcheck, synccheck
#                  on the op tests ([golden]: every kernel, small shapes)
#   bench_kernels  bench_gpu_kernels (ours vs cuDNN per op and pass, % of the
#                  device-to-device copy bandwidth measured here)
#   step_vs_torch  a training step of the three networks: bench/step_profile
#                  --backend cuda vs tools/bench/torch_peer.py (eager NCHW,
#                  channels_last, torch.compile), same batch and size, TF32
#                  off on both sides; ratio ours / PyTorch
#   memory         peak GPU memory of those steps, ours vs PyTorch, and
#                  ours in bf16 vs fp32
#   precision      `lkaseg train` on real BraTS cases, fp32 then bf16 (same
#                  split, seed, steps): validation Dice within 1 point?
#                  (cases: third_party/real_cases, which tools/
#                  gpu_prepare_deps.sh fills, or $LKASEG_REAL_CASES)
#   e2e            `lkaseg demo` and a short `lkaseg cv` on the card
#
# Reports: docs/gpu_runs/<date>-<card>.md and .json, rewritten after every
# stage and copied to $OUT (with gpu_check_logs.tar.gz) when $OUT is set.
# Exit 0 when no stage failed or timed out.
#
#   tools/gpu_check.sh [--budget 540] [--only a,b] [--skip a,b] [--box stage=S]
#                      [--build DIR] [--report-dir DIR] [--jobs N] [--arch SM]
#   tools/gpu_check.sh --dry-run   # no GPU: parsing, build, the PyTorch peer
#                                  # on the CPU (tiny, if torch imports), report
# docs/GPU.md says how to run it and read the report.
set -uo pipefail
self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
root="$(cd "$(dirname "$self")/.." && pwd)"
# shellcheck source=tools/gpu/runner.sh
source "$root/tools/gpu/runner.sh"

GC_STAGES=(build gpu_tests sanitizers bench_kernels step_vs_torch memory precision e2e)
declare -A GC_BOX=([build]=270 [gpu_tests]=75 [sanitizers]=90 [bench_kernels]=60 [step_vs_torch]=180 [memory]=10
  [precision]=120 [e2e]=60)
declare -A GC_NEEDS_GPU=([build]=0 [gpu_tests]=1 [sanitizers]=1 [bench_kernels]=1 [step_vs_torch]=0 [memory]=0
  [precision]=1 [e2e]=1)
declare -A GC_TITLE=([build]="deps, configure, build the needed targets" [gpu_tests]="ctest -L gpu"
  [sanitizers]="compute-sanitizer on the op tests" [bench_kernels]="bench_gpu_kernels: ours vs cuDNN"
  [step_vs_torch]="training step vs PyTorch" [memory]="peak memory of a step vs PyTorch"
  [precision]="bf16 vs fp32 training on real cases" [e2e]="lkaseg demo and cv on the card")
# What the stages run (and all the build makes).
GC_TARGETS="lkaseg step_profile bench_gpu_kernels test_gpu_backend test_gpu_loader test_gpu_cudnn test_gpu_predict"
declare -A GC_STATUS GC_SECS GC_USED_BOX GC_META

usage() { sed -n '2,34p' "$self" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# ------------------------------------------------------------------ stages
# Each runs in its own process with the parent's exported environment.

stage_build() {
  local t0 cfg=() n
  if compgen -G "$root/third_party/debs/*.deb" >/dev/null; then
    mkdir -p "$GC_PREFIX"
    for d in "$root"/third_party/debs/*.deb; do unpack_deb "$d" "$GC_PREFIX" || { detail "cannot unpack $d"; exit 1; }; done
    n="$(find "$root/third_party/debs" -name '*.deb' | wc -l) packages of third_party/debs unpacked"
    echo "$n into $GC_PREFIX"
  else
    n="no third_party/debs: the system's packages"
  fi
  local configured=0
  if [[ $GC_DRY == 1 && -f $GC_BUILD/CMakeCache.txt ]]; then
    echo "dry run: reusing the configured $GC_BUILD"
  else
    [[ -n ${GC_CUDNN_INC:-} ]] && cfg+=(-DLKASEG_CUDNN_INCLUDE="$GC_CUDNN_INC" -DLKASEG_CUDNN_LIB="$GC_CUDNN_LIB")
    [[ -n ${GC_ARCH:-} ]] && cfg+=(-DCMAKE_CUDA_ARCHITECTURES="$GC_ARCH")
    # The top-level CMakeLists looks for OpenBLAS under the CMake variable's prefixes.
    [[ -d $GC_PREFIX/usr ]] && cfg+=(-DCMAKE_PREFIX_PATH="$GC_PREFIX/usr")
    command -v ninja >/dev/null && [[ ! -f $GC_BUILD/CMakeCache.txt ]] && cfg+=(-G Ninja)
    t0=$(date +%s)
    # CMake 4 refuses package files that ask for a policy level under 3.5.
    export CMAKE_POLICY_VERSION_MINIMUM=3.5
    cmake -S "$root" -B "$GC_BUILD" -DCMAKE_BUILD_TYPE=Release "${cfg[@]}" || { detail "configure failed ($n)"; exit 1; }
    echo "configured in $(($(date +%s) - t0)) s"
    configured=1
  fi
  local targets=$GC_TARGETS
  if ! grep -q '^LKASEG_CUDA:BOOL=ON' "$GC_BUILD/CMakeCache.txt"; then
    [[ $GC_DRY == 1 ]] || { detail "configured without CUDA (no nvcc?)"; exit 1; }
    targets="lkaseg step_profile"  # a CPU-only build folder: what the dry run runs
    n="$n; CUDA off in this build folder: the GPU targets are not built"
  fi
  t0=$(date +%s)
  # Keep going past a broken target: the other stages use what was built.
  local keep=(-k)
  [[ -f $GC_BUILD/build.ninja ]] && keep=(-k 0)
  # shellcheck disable=SC2086
  cmake --build "$GC_BUILD" -j "$GC_JOBS" --target $targets -- "${keep[@]}"
  local rc=$? missing=() t
  for t in $targets; do [[ -x $(target_path "$t") ]] || missing+=("$t"); done
  local dt=$(($(date +%s) - t0)) notfound
  notfound="$(ldd "$(target_path lkaseg)" 2>/dev/null | grep 'not found' | awk '{print $1}' | paste -sd' ')"
  grep -E 'ptxas info *: (Used|Function properties)|spill' "$GC_WORK/build.log" >"$GC_WORK/ptxas.txt" 2>/dev/null
  { echo "Targets: \`$targets\`; arch ${GC_ARCH:-default}; $GC_JOBS jobs; $n."
    [[ -n ${GC_CUDNN_LIB:-} ]] && echo "cuDNN: \`$GC_CUDNN_LIB\`"
    ((${#missing[@]})) && echo "**Not built:** ${missing[*]}"
    [[ -n $notfound ]] && echo "**lkaseg's libraries not found:** $notfound"
    [[ $configured == 1 && -d $GC_PREFIX/usr ]] && echo "Found outside the unpacked packages: $(grep -E '^[A-Za-z0-9_]*(_DIR|_INCLUDE|_LIB|OPENBLAS|_LIBRARY_RELEASE):' \
      "$GC_BUILD/CMakeCache.txt" | grep -v -e "$GC_PREFIX" -e REDIRECTS -e "$GC_BUILD" | cut -d= -f2 | paste -sd' ')"
    echo "Spills (ptxas): $(grep -c ' [1-9][0-9]* bytes spill stores' "$GC_WORK/ptxas.txt" 2>/dev/null) kernels"
    if ((rc != 0)); then
      echo "First errors:"; echo '```'
      grep -E -m 30 'error|Error [0-9]|FAILED:|undefined reference' "$GC_WORK/build.log"; echo '```'
    fi
  } | section
  if ((rc != 0 || ${#missing[@]})); then detail "build failed after $dt s; not built: ${missing[*]:-none}"; exit 1; fi
  [[ -n $notfound ]] && { detail "built in $dt s but libraries missing: $notfound"; exit 1; }
  detail "built ${targets// /, } in $dt s"
}

stage_gpu_tests() {
  have_gpu || skip "no GPU visible"
  local rc sum
  (cd "$GC_BUILD" && ctest -L '^gpu$' -j 4 --timeout 120 --output-on-failure) >"$GC_WORK/gpu_tests.txt" 2>&1
  rc=$?
  cat "$GC_WORK/gpu_tests.txt"
  sum="$(grep -E 'tests passed|tests failed' "$GC_WORK/gpu_tests.txt" | tail -1)"
  # A skip means the test saw no device, except the cuda:1 test on a one-GPU machine.
  local skipped second
  skipped="$(grep '\*\*\*Skipped' "$GC_WORK/gpu_tests.txt" | grep -vc 'cuda:1')"
  second="$(grep '\*\*\*Skipped' "$GC_WORK/gpu_tests.txt" | grep -c 'cuda:1')"
  { echo "$sum; $skipped skipped, $second for want of a second GPU (any other skip: the test saw no device)"
    echo '```'
    grep -E '\*\*\*Failed|\*\*\*Skipped|\*\*\*Timeout|Not Run' "$GC_WORK/gpu_tests.txt" | head -60
    echo '```'
    # Catch2's expansions of the failed checks: how far off, against which tolerance.
    if ((rc != 0)); then
      echo "Failed checks (expanded):"
      echo '```'
      grep -B3 -A2 -E 'FAILED:|with expansion' "$GC_WORK/gpu_tests.txt" | head -150
      echo '```'
    fi
  } | section
  detail "${sum:-no summary (see the log)}; $skipped skipped (+$second: cuda:1)"
  ((rc == 0 && skipped == 0))
}

stage_sanitizers() {
  have_gpu || skip "no GPU visible"
  local cs
  cs="$(command -v compute-sanitizer || ls /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null ||
    find /usr/local /opt -maxdepth 5 -name compute-sanitizer -type f -perm -u+x 2>/dev/null | head -1)"
  [[ -n $cs ]] || skip "no compute-sanitizer found"
  local bin; bin="$(target_path test_gpu_backend)"
  [[ -x $bin ]] || { detail "test_gpu_backend not built"; exit 1; }
  local tool rc box bad=() res=()
  local tools=(memcheck racecheck initcheck synccheck) i=0
  for tool in "${tools[@]}"; do
    # An equal share of what is left for each tool still to run.
    box=$(($(stage_left 3) / (${#tools[@]} - i)))
    i=$((i + 1))
    ((box < 5)) && { res+=("$tool: no time"); bad+=("$tool"); continue; }
    timeout -k 3 "$box" "$cs" --tool "$tool" --error-exitcode 9 --print-limit 30 \
      "$bin" "[golden]" >"$GC_WORK/sanitizer_$tool.txt" 2>&1
    rc=$?
    case $rc in
      0) res+=("$tool ok") ;;
      124 | 137) res+=("$tool TIMEOUT ${box}s"); bad+=("$tool") ;;
      9) res+=("$tool ERRORS"); bad+=("$tool") ;;
      *) res+=("$tool exit $rc"); bad+=("$tool") ;;
    esac
    { echo "### ${res[-1]}"
      echo '```'
      grep -i -E '^========= (error|invalid|race|uninitialized|barrier|program hit|warning| +at |.*summary)' \
        "$GC_WORK/sanitizer_$tool.txt" | head -40
      tail -n 3 "$GC_WORK/sanitizer_$tool.txt"
      echo '```'
    } | section
  done
  detail "test_gpu_backend [golden]: ${res[*]}"
  ((${#bad[@]} == 0))
}

stage_bench_kernels() {
  have_gpu || skip "no GPU visible"
  local bin; bin="$(target_path bench_gpu_kernels)"
  [[ -x $bin ]] || { detail "bench_gpu_kernels not built"; exit 1; }
  # The ceiling: a device-to-device copy through PyTorch, bytes read + written.
  local bw
  bw="$(LD_LIBRARY_PATH="$GC_TORCH_LD_LIBRARY_PATH" timeout 30 python3 -c '
import torch
x = torch.empty(256 * 2**20, dtype=torch.float32, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
a.record()
for _ in range(20): y.copy_(x)
b.record(); torch.cuda.synchronize()
print(2 * x.numel() * 4 * 20 / (a.elapsed_time(b) / 1e3))' 2>/dev/null)"
  echo "copy bandwidth: ${bw:-unknown} B/s"
  timeout -k 3 "$(stage_left 6)" "$bin" --benchmark_min_time=0.02 --benchmark_out="$GC_WORK/bench_gpu_kernels.json" \
    --benchmark_out_format=json
  local rc=$?
  python3 "$root/tools/gpu/summarize.py" bench "$GC_WORK/bench_gpu_kernels.json" --copy-bw "${bw:-0}" \
    --md "$GC_WORK/bench_kernels.md" --json "$GC_WORK/bench_kernels.json" --detail "$GC_WORK/bench_kernels.detail"
  local rs=$?
  ((rc == 0 && rs == 0))
}

stage_step_vs_torch() {
  command -v python3 >/dev/null || skip "no python3"
  local dry=()
  [[ $GC_DRY == 1 ]] && dry=(--dry-run)
  python3 "$root/tools/gpu/step_vs_torch.py" --build "$GC_BUILD" --deadline "$GC_STAGE_DEADLINE" \
    --work "$GC_WORK" "${dry[@]}"
}

stage_memory() {
  command -v python3 >/dev/null || skip "no python3"
  [[ -s $GC_WORK/step_runs.jsonl ]] || skip "no step runs (step_vs_torch did not run)"
  python3 "$root/tools/gpu/summarize.py" memory "$GC_WORK/step_runs.jsonl" \
    --md "$GC_WORK/memory.md" --json "$GC_WORK/memory.json" --detail "$GC_WORK/memory.detail"
}

# Issue 13's accuracy check: the same short training on real cases in fp32
# and bf16 (paper widths, batch 8; one split with enhancing tumour in the
# training and the validation cases); the second run reuses the first's cache.
stage_precision() {
  have_gpu || skip "no GPU visible"
  local bin data w="$GC_WORK/precision" p box rc=0 c
  data="${LKASEG_REAL_CASES:-$root/third_party/real_cases}"
  for c in BraTS2021_00006 BraTS2021_01478 BraTS2021_01479; do
    [[ -d $data/$c ]] || skip "no real case $c in $data (tools/gpu_prepare_deps.sh copies them; carry third_party/real_cases)"
  done
  bin="$(target_path lkaseg)"
  [[ -x $bin ]] || { detail "lkaseg not built"; exit 1; }
  rm -rf "$w" && mkdir -p "$w/data"
  for c in BraTS2021_00006 BraTS2021_01478 BraTS2021_01479; do ln -s "$data/$c" "$w/data/$c"; done
  cat >"$w/split.json" <<'JSON'
{"version": 1, "seed": 42, "fraction": 1.0,
 "selected": ["BraTS2021_00006", "BraTS2021_01478", "BraTS2021_01479"],
 "folds": [{"train": ["BraTS2021_00006", "BraTS2021_01478"], "val": ["BraTS2021_01479"]},
           {"train": ["BraTS2021_01478", "BraTS2021_01479"], "val": ["BraTS2021_00006"]}]}
JSON
  for p in fp32 bf16; do
    # The first run may take half of what is left, the second the rest.
    local share=2 extra=()
    [[ $p == bf16 ]] && share=1 extra=(--cache "$w/fp32/slices.lkcache")
    box=$(($(stage_left 12) / share))
    timeout -k 3 "$box" "$bin" train --data "$w/data" --out "$w/$p" --split "$w/split.json" "${extra[@]}" \
      --fraction 1 --folds 2 --fold 0 --epochs 6 --steps-per-epoch 50 --val-every 3 --batch 8 --lr 1e-3 --warmup-epochs 1 \
      --oversample 0.5 --log-every 0 --device cuda:0 --precision "$p" >"$GC_WORK/precision_$p.txt" 2>&1 || rc=$?
    { echo "### lkaseg train --precision $p (train 00006, 01478; validate 01479; 6 x 50 steps, widths 32-512)"
      echo '```'; grep -v -E '^epoch [0-9]+/[0-9]+: ' "$GC_WORK/precision_$p.txt" | tail -n 14; echo '```'; } | section
    ((rc == 0)) || { detail "the $p run failed (exit $rc)"; exit 1; }
  done
  command -v python3 >/dev/null || { detail "both runs done; no python3 for the table"; exit 1; }
  python3 "$root/tools/gpu/summarize.py" precision --fp32 "$w/fp32/fold_0/log.jsonl" --bf16 "$w/bf16/fold_0/log.jsonl" \
    --md "$w/table.md" --json "$GC_WORK/precision.json" --detail "$GC_WORK/precision.detail"
  rc=$?
  section <"$w/table.md"
  return $rc
}

stage_e2e() {
  have_gpu || skip "no GPU visible"
  local bin e2e="$GC_WORK/e2e" t0 ok=1 res=()
  bin="$(target_path lkaseg)"
  [[ -x $bin ]] || { detail "lkaseg not built"; exit 1; }
  rm -rf "$e2e" && mkdir -p "$e2e"
  t0=$(date +%s)
  if timeout -k 3 "$(($(stage_left) / 2))" "$bin" demo --device cuda:0 --steps 150 --batch 8 --work "$e2e/demo" \
       >"$GC_WORK/e2e_demo.txt" 2>&1; then
    res+=("demo ok in $(($(date +%s) - t0)) s;")
  else
    res+=("demo FAILED (exit $?);"); ok=0
  fi
  { echo "### lkaseg demo --device cuda:0 --steps 150 --batch 8"; echo '```'; tail -n 25 "$GC_WORK/e2e_demo.txt"; echo '```'; } | section
  t0=$(date +%s)
  if "$bin" synth --out "$e2e/data" --cases 6 --seed 7 --size 96 96 32 >"$GC_WORK/e2e_synth.txt" 2>&1 &&
     timeout -k 3 "$(stage_left)" "$bin" cv --data "$e2e/data" --out "$e2e/run" --fraction 1 --folds 2 --epochs 2 \
       --steps-per-epoch 20 --val-every 1 --size 96 --widths 16 32 64 128 --batch 8 --device cuda:0 \
       >"$GC_WORK/e2e_cv.txt" 2>&1; then
    res+=("cv ok in $(($(date +%s) - t0)) s")
  else
    res+=("cv FAILED (exit $?)"); ok=0
  fi
  { echo "### lkaseg cv (6 synthetic cases 96x96x32, 2 folds x 2 epochs x 20 steps) --device cuda:0"; echo '```'
    grep -v -E '^(preprocess|predict|evaluate): [0-9]+/' "$GC_WORK/e2e_cv.txt" | tail -n 40; echo '```'; } | section
  detail "${res[*]}"
  ((ok))
}

# ------------------------------------------------------------------ helpers

have_gpu() { [[ $GC_DRY != 1 ]] && nvidia-smi -L >/dev/null 2>&1; }
target_path() {
  case $1 in
    lkaseg) echo "$GC_BUILD/lkaseg" ;;
    step_profile | bench_gpu_kernels) echo "$GC_BUILD/bench/$1" ;;
    test_gpu_*) echo "$GC_BUILD/tests/engine/cuda/$1" ;;
  esac
}

# A .deb's files under a prefix: dpkg -x, or ar + tar where there is no dpkg.
unpack_deb() {
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  local t; t="$(mktemp -d)"
  (cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2"); local rc=$?
  rm -rf "$t"
  return $rc
}

# cuDNN: the toolkit's or the system's, else the pip wheel beside PyTorch
# (nvidia/cudnn/{include,lib}); sets GC_CUDNN_INC/LIB (header folder, library
# file: a bare libcudnn.so.9 without the -dev link works too).
locate_cudnn() {
  local d l
  for d in /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu /usr/local/include; do
    [[ -f $d/cudnn.h ]] || continue
    l="$(ls /usr/local/cuda/lib64/libcudnn.so /usr/local/cuda/lib64/libcudnn.so.[0-9] /usr/local/cuda/lib/libcudnn.so \
      /usr/lib/x86_64-linux-gnu/libcudnn.so /usr/lib/x86_64-linux-gnu/libcudnn.so.[0-9] 2>/dev/null | head -1)"
    if [[ -n $l ]]; then
      export GC_CUDNN_INC="$d" GC_CUDNN_LIB="$l"
      return 0
    fi
  done
  d="$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)"
  if [[ -z $d ]]; then
    d="$(find /opt /usr/local /usr/lib -maxdepth 9 -name cudnn.h -path '*nvidia/cudnn/include/*' 2>/dev/null | head -1)"
    d="${d%/include/cudnn.h}"
  fi
  [[ -n $d && -f $d/include/cudnn.h ]] || return 1
  GC_CUDNN_INC="$d/include"
  GC_CUDNN_LIB="$(ls "$d"/lib/libcudnn.so "$d"/lib/libcudnn.so.[0-9] 2>/dev/null | head -1)"
  [[ -n $GC_CUDNN_LIB ]] || return 1
  # cuDNN's engines load cuBLASLt and NVRTC at run time: the wheels' lib folders.
  local libs="$d/lib" w
  for w in "$d"/../cu13/lib "$d"/../cublas/lib "$d"/../cuda_nvrtc/lib; do [[ -d $w ]] && libs="$libs:$(cd "$w" && pwd)"; done
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$libs"
  export GC_CUDNN_INC GC_CUDNN_LIB
}

# ------------------------------------------------------------------ main

main() {
  GC_DRY=0 GC_BUDGET=540 GC_RESERVE=5 GC_ONLY="" GC_SKIP="" GC_ARCH="${LKASEG_CUDA_ARCHS:-}"
  GC_BUILD="${LKASEG_BUILD_DIR:-}" GC_JOBS="$(nproc)"
  local report_dir="" kv
  while (($#)); do
    case "$1" in
      --budget | --only | --skip | --box | --build | --report-dir | --jobs | --arch)
        (($# >= 2)) || { echo "gpu_check: $1 needs a value (--help)" >&2; exit 2; } ;;&
      --dry-run) GC_DRY=1; shift ;;
      --budget) GC_BUDGET="$2"; shift 2 ;;
      --only) GC_ONLY="${2//,/ }"; shift 2 ;;
      --skip) GC_SKIP="${2//,/ }"; shift 2 ;;
      --box) kv="$2"; shift 2
        [[ $kv =~ ^([a-z0-9_]+)=([0-9]+)$ && -n ${GC_BOX[${BASH_REMATCH[1]}]:-} ]] ||
          { echo "gpu_check: --box wants <stage>=<seconds> with a stage of: ${GC_STAGES[*]}" >&2; exit 2; }
        GC_BOX[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]} ;;
      --build) GC_BUILD="$2"; shift 2 ;;
      --report-dir) report_dir="$2"; shift 2 ;;
      --jobs) GC_JOBS="$2"; shift 2 ;;
      --arch) GC_ARCH="$2"; shift 2 ;;
      -h | --help) usage 0 ;;
      *) echo "gpu_check: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
  done
  [[ $GC_BUDGET =~ ^[0-9]+$ && $GC_JOBS =~ ^[0-9]+$ ]] || { echo "gpu_check: --budget and --jobs take whole numbers" >&2; exit 2; }
  local s
  for s in $GC_ONLY $GC_SKIP; do
    [[ -n ${GC_BOX[$s]:-} ]] || { echo "gpu_check: no stage '$s' (stages: ${GC_STAGES[*]})" >&2; exit 2; }
  done
  [[ -z $GC_BUILD ]] && GC_BUILD="$root/$([[ $GC_DRY == 1 ]] && echo build || echo build-gpu)"
  GC_BUILD="$(mkdir -p "$GC_BUILD" && cd "$GC_BUILD" && pwd)"
  GC_T0=$(date +%s)
  GC_DATE="$(date -u +%Y-%m-%d)"
  export PATH="/usr/local/cuda/bin:$PATH" PYTHONUNBUFFERED=1

  local cc="" driver=""
  if [[ $GC_DRY == 1 ]]; then
    GC_CARD="no GPU (dry run)"
  else
    GC_CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
    cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)"
    GC_CARD="${GC_CARD:-no GPU found}"
    [[ -z $GC_ARCH && -n $cc ]] && GC_ARCH="$cc"
  fi
  local slug; slug="$(echo "$GC_CARD" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/^-//; s/-$//')"
  [[ -z $report_dir ]] && report_dir="$([[ $GC_DRY == 1 ]] && echo "$GC_BUILD/gpu-check-dry-run" || echo "$root/docs/gpu_runs")"
  mkdir -p "$report_dir" || exit 2
  GC_REPORT="$report_dir/$GC_DATE-$slug"
  local k=2
  while [[ -e $GC_REPORT.md && $GC_DRY != 1 ]]; do GC_REPORT="$report_dir/$GC_DATE-$slug-$k"; k=$((k + 1)); done
  GC_WORK="${LKASEG_GPU_CHECK_WORK:-$GC_BUILD/gpu-check-work}"
  rm -rf "$GC_WORK" && mkdir -p "$GC_WORK"
  GC_PREFIX="$GC_BUILD/deps"
  # PyTorch gets the library path it came with: ours puts the toolkit's and
  # Debian's libraries first, which must not replace its CUDA wheels'.
  export GC_TORCH_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
  if compgen -G "$root/third_party/debs/*.deb" >/dev/null; then
    export CMAKE_PREFIX_PATH="$GC_PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export LD_LIBRARY_PATH="$GC_PREFIX/usr/lib/x86_64-linux-gnu/openblas-openmp:$GC_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  [[ $GC_DRY == 1 ]] || locate_cudnn || echo "gpu_check: cuDNN not found beside the toolkit nor in python3's nvidia wheels"

  GC_META=([commit]="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
    [nvcc]="$(nvcc --version 2>/dev/null | tail -1)" [driver]="${driver:-?}" [compute_capability]="${cc:-?}"
    [cores]="$(nproc)" [host]="$(uname -sr)" [cudnn]="${GC_CUDNN_LIB:-system}")
  GC_META_LINE="Commit ${GC_META[commit]}; ${GC_META[nvcc]:-no nvcc}; driver ${GC_META[driver]}, sm_${cc:-?}; ${GC_META[cores]} cores; budget $GC_BUDGET s."
  export GC_DRY GC_BUILD GC_WORK GC_PREFIX GC_JOBS GC_ARCH GC_TARGETS
  GC_FAILED=0
  echo "== gpu_check: $GC_CARD; ${GC_META_LINE}"
  echo "== report: $GC_REPORT.md"
  run_stages "$self"
  echo
  summary_table
  echo "report: $GC_REPORT.md and .json$([[ -n ${OUT:-} ]] && echo ", copied to \$OUT")"
  return "$GC_FAILED"
}

if [[ ${1:-} == __stage ]]; then
  gc_dispatch "$2"
else
  main "$@"
fi
