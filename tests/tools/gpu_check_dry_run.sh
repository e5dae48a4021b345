#!/usr/bin/env bash
# tools/gpu_check.sh without a GPU (ctest gpu_check_dry_run, label cpu):
#  1. --dry-run on the configured build folder: every stage listed in the
#     markdown and JSON reports, the GPU stages "skipped: dry run", the build
#     (up to date: nothing rebuilt), the step of the three networks on the CPU
#     and the memory table ok, the JSON valid;
#  2. a planted failing stage and a planted hanging one (a 3 s box): both
#     recorded, the stages after them still run;
#  3. a hanging first stage inside a 9 s budget: killed at the budget, the
#     rest skipped as out of budget, all within seconds;
#  4. bad arguments refused with exit 2;
#  5. the benchmark table from a made-up Google Benchmark JSON;
#  6. the bf16-vs-fp32 precision table from made-up train logs, and the
#     memory table's bf16 row from made-up step runs.
# Usage: gpu_check_dry_run.sh <source root> <build folder>
set -uo pipefail
src=$1 build=$2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
check() {  # report.json expected-statuses
  cmake -DREPORT="$1" -DEXPECT="$2" -P "$src/tests/tools/check_gpu_report.cmake" || fail "report $1: $(cat "${1%.json}.md")"
}
gc() { LKASEG_BUILD_DIR="$build" LKASEG_GPU_CHECK_WORK="$tmp/work" OUT="${out_dir:-}" "$src/tools/gpu_check.sh" "$@"; }
stages="build gpu_tests sanitizers bench_kernels step_vs_torch memory precision e2e"

# 1. The dry run.
t0=$(date +%s)
mkdir -p "$tmp/o"
out_dir="$tmp/o" gc --dry-run --report-dir "$tmp/r1" >"$tmp/out1" 2>&1 || fail "dry run exited $?: $(cat "$tmp/out1")"
echo "dry run: $(($(date +%s) - t0)) s"
md="$(ls "$tmp"/r1/*.md)" js="$(ls "$tmp"/r1/*.json)"
[[ -f $md && -f $js ]] || fail "no report in $tmp/r1: $(ls "$tmp/r1")"
for s in $stages; do grep -q "^| $s | " "$md" || fail "stage $s not in the markdown summary: $(cat "$md")"; done
# $OUT (the device tool's): few files, flat, the same reports.
[[ $(find "$tmp/o" -type f | wc -l) -le 8 && -z $(find "$tmp/o" -mindepth 1 -type d) ]] || fail "\$OUT: $(ls -R "$tmp/o")"
cmp -s "$md" "$tmp/o/$(basename "$md")" && cmp -s "$js" "$tmp/o/$(basename "$js")" || fail "\$OUT lacks the reports: $(ls "$tmp/o")"
[[ "$(tar -tzf "$tmp/o/gpu_check_logs.tar.gz")" == *build.log* ]] || fail "no stage logs in \$OUT"
grep -q "skipped: dry run" "$md" || fail "no 'skipped: dry run' in $md"
py=ok
command -v python3 >/dev/null || py="skipped: no python3"  # the step tables are Python's
check "$js" "build=^ok$;gpu_tests=^skipped: dry run$;sanitizers=^skipped: dry run$;bench_kernels=^skipped: dry run$;step_vs_torch=^$py$;memory=^$py$;precision=^skipped: dry run$;e2e=^skipped: dry run$"
if [[ $py == ok ]]; then
  grep -q '| resse_lka_unet | ours | ok |' "$md" || fail "no step row for ours: $(cat "$md")"
  grep -q '| attention_unet | ours | ok |' "$md" || fail "no step row for attention_unet: $(cat "$md")"
  grep -q 'resse_lka_unet [0-9]* MiB' "$js" || fail "no peak memory in the memory stage: $(cat "$js")"
fi
grep -q -E 'Built target step_profile|no work to do' "$tmp/work/build.log" || fail "build stage did not build: $(cat "$tmp/work/build.log")"
grep -q 'Building' "$tmp/work/build.log" && echo "note: the dry run rebuilt something (build folder not up to date)"

# 2. A planted failure and a planted hang: recorded, and the next stages run.
LKASEG_GPU_CHECK_PLANT="fail:gpu_tests slow:sanitizers" gc --dry-run --report-dir "$tmp/r2" \
  --only gpu_tests,sanitizers,step_vs_torch,memory --box sanitizers=3 >"$tmp/out2" 2>&1 &&
  fail "planted failures, yet exit 0: $(cat "$tmp/out2")"
check "$(ls "$tmp"/r2/*.json)" "build=^skipped: not selected$;gpu_tests=^FAILED \\(exit 3\\)$;sanitizers=^TIMEOUT$;bench_kernels=^skipped: not selected$;step_vs_torch=^$py$;memory=^$py$;precision=^skipped: not selected$;e2e=^skipped: not selected$"
grep -q "planted failure" "$(ls "$tmp"/r2/*.md)" || fail "the failing stage's log is not in the report"
# The hang was cut at its 3 s box (the table records the seconds it ran).
grep -q "^| sanitizers | TIMEOUT | [3-9] | 3 |" "$(ls "$tmp"/r2/*.md)" || fail "sanitizers' box: $(cat "$tmp"/r2/*.md)"

# 3. A hang in the first stage inside a 9 s budget (4 s box after the 5 s reserve).
t0=$(date +%s)
LKASEG_GPU_CHECK_PLANT="slow:build" gc --dry-run --budget 9 --report-dir "$tmp/r3" >"$tmp/out3" 2>&1 &&
  fail "planted hang, yet exit 0"
dt=$(($(date +%s) - t0))
((dt < 40)) || fail "budget 9 s, took $dt s: $(cat "$tmp/out3")"
check "$(ls "$tmp"/r3/*.json)" "build=^TIMEOUT$;gpu_tests=^skipped: dry run$;sanitizers=^skipped: dry run$;bench_kernels=^skipped: dry run$;step_vs_torch=^skipped: out of budget$;memory=^skipped: out of budget$;precision=^skipped: dry run$;e2e=^skipped: dry run$"
tail -n 12 "$tmp/out3" | grep -q "^| build | TIMEOUT |" || fail "no summary table at the end of the output: $(cat "$tmp/out3")"

# 4. Bad arguments.
for bad in "--box nosuch=3" "--only nosuch" "--budget soon" "--frobnicate" "--budget"; do
  # shellcheck disable=SC2086
  gc --dry-run $bad >"$tmp/out4" 2>&1
  rc=$?
  [[ $rc == 2 ]] || fail "gpu_check $bad: exit $rc (want 2): $(cat "$tmp/out4")"
  grep -q "gpu_check:" "$tmp/out4" || fail "gpu_check $bad: no message"
done
# 5. The benchmark table (a GPU-only stage): pairs ours with cuDNN, % of the
#    copy bandwidth, and a row whose validation failed makes it fail.
if [[ $py == ok ]]; then
  cat >"$tmp/bench.json" <<'JSON'
{"benchmarks": [
 {"name": "depthwise_conv2d_5x5_fwd/fast/128x128x32/manual_time", "real_time": 120, "time_unit": "us", "bytes_per_second": 1.5e12},
 {"name": "depthwise_conv2d_5x5_fwd/cudnn/128x128x32/manual_time", "real_time": 200, "time_unit": "us"},
 {"name": "softmax_fwd/fast/128x128x4/manual_time", "error_occurred": true, "error_message": "scaled error 3e-3"}]}
JSON
  python3 "$src/tools/gpu/summarize.py" bench "$tmp/bench.json" --copy-bw 3e12 --md "$tmp/b.md" --json "$tmp/b.json" \
    --detail "$tmp/b.detail" && fail "a failed benchmark row, yet exit 0"
  grep -q '| depthwise_conv2d_5x5_fwd | 128x128x32 | 0.120 | 0.200 | 0.60 | 50 |' "$tmp/b.md" || fail "bench table: $(cat "$tmp/b.md")"
  grep -q 'softmax_fwd/fast/128x128x4/manual_time: scaled error 3e-3' "$tmp/b.md" || fail "bench errors: $(cat "$tmp/b.md")"
  grep -q '^1 cases, 1 errors; ours/cuDNN median 0.60' "$tmp/b.detail" || fail "bench detail: $(cat "$tmp/b.detail")"
fi
# 6. The precision table (a GPU-only stage) from made-up train logs: the
#    last validation of each run is compared; a gap over 1 point, or a run
#    without a validation, makes it fail.
if [[ $py == ok ]]; then
  v() { echo "{\"epoch\":$1,\"loss\":0.5,\"val\":{\"cases\":1,\"dice_ncr\":$2,\"dice_ed\":$2,\"dice_et\":$2,\"mean\":$2}}"; }
  { v 3 0.10; echo '{"epoch":4,"loss":0.4}'; v 6 0.600; } >"$tmp/f32.jsonl"
  { v 3 0.90; v 6 0.595; } >"$tmp/b16.jsonl"
  { v 3 0.60; v 6 0.580; } >"$tmp/b16_far.jsonl"
  echo '{"epoch":1,"loss":0.4}' >"$tmp/noval.jsonl"
  prec() { python3 "$src/tools/gpu/summarize.py" precision --fp32 "$tmp/f32.jsonl" --bf16 "$tmp/$1.jsonl" \
    --md "$tmp/p.md" --json "$tmp/p.json" --detail "$tmp/p.detail"; }
  prec b16 || fail "bf16 0.5 points below fp32, yet not ok: $(cat "$tmp/p.md")"
  grep -q '| bf16 | 6 | 59.50 | 59.50 | 59.50 | 59.50 |' "$tmp/p.md" || fail "precision table: $(cat "$tmp/p.md")"
  grep -q 'fp32 60.00, bf16 59.50 (-0.50 points): target met' "$tmp/p.detail" || fail "precision detail: $(cat "$tmp/p.detail")"
  prec b16_far && fail "bf16 2 points below fp32, yet exit 0"
  grep -q '(-2.00 points): target NOT met' "$tmp/p.detail" || fail "precision detail: $(cat "$tmp/p.detail")"
  prec noval && fail "a run without validation, yet exit 0"
  grep -q 'no validation in the bf16 run' "$tmp/p.detail" || fail "precision detail: $(cat "$tmp/p.detail")"
  # The memory table puts ours in bf16 beside ours in fp32.
  r() { echo "{\"net\":\"$1\",\"runner\":\"$2\",\"result\":{\"peak_memory_bytes\":$3}}"; }
  { r resse_lka_unet ours 1048576000; r resse_lka_unet torch_channels_last 2097152000; r resse_lka_unet ours_bf16 576716800; } \
    >"$tmp/runs.jsonl"
  python3 "$src/tools/gpu/summarize.py" memory "$tmp/runs.jsonl" --md "$tmp/m.md" --json "$tmp/m.json" \
    --detail "$tmp/m.detail" || fail "memory table exit $?"
  grep -q '| resse_lka_unet | 1000 | 550 | 0.55 |' "$tmp/m.md" || fail "memory bf16 row: $(cat "$tmp/m.md")"
  grep -q 'resse_lka_unet bf16 x0.55 of fp32' "$tmp/m.detail" || fail "memory detail: $(cat "$tmp/m.detail")"
fi
echo "ok"
