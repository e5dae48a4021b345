#!/usr/bin/env bash
# Data-parallel training on the CPU: N ranks of T/N threads against one
# process of T threads, for the same global batch (lkaseg train through
# mpirun; results in bench/README.md, "Data-parallel ranks").
#
# Each round runs, back to back, one process (OMP_NUM_THREADS=T, batch G)
# and N ranks (mpirun -np N, OMP_NUM_THREADS=T/N each, batch G/N; per-rank
# and synchronised batch norm), each for 2 epochs of S steps on synthetic
# cases, and reads the seconds of epoch 2 (no warm-up, no validation) from
# log.jsonl. The ratio ranks/one is printed per round and as the median.
#
# Usage: bench/bench_ranks.sh [build dir] [rounds] [steps]
#   env: RANKS (2), THREADS (2), BATCH (global, 8), WIDTHS ("16 32 64 128"), SIZE (128)
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
steps=${3:-6}
ranks=${RANKS:-2}
threads=${THREADS:-2}
batch=${BATCH:-8}
widths=${WIDTHS:-16 32 64 128}
size=${SIZE:-128}
bin="$build/lkaseg"
mpirun=${MPIRUN:-mpirun}
[[ -x "$bin" ]] || { echo "no $bin: build first (tools/build.sh)"; exit 1; }
root_flag=""
[[ $(id -u) -eq 0 ]] && root_flag="--allow-run-as-root"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$bin" synth --out "$dir/data" --cases 4 --seed 7 --size 160 160 48 >/dev/null
common=(--data "$dir/data" --fraction 1 --folds 2 --fold 0 --device cpu --size "$size" --widths $widths
        --val-every 1000 --warmup-epochs 1 --workers 1)
run=(--epochs 2 --steps-per-epoch "$steps")
# The split and the cache once, shared by every run.
"$bin" train "${common[@]}" --out "$dir/prep" --batch "$batch" --epochs 1 --steps-per-epoch 1 >/dev/null
shared=(--split "$dir/prep/split.json" --cache "$dir/prep/slices.lkcache")

# Seconds per step of epoch 2 in a run folder.
per_step() {
  sed -n 2p "$1/fold_0/log.jsonl" | sed -E 's/.*"seconds":([0-9.eE+-]+).*/\1/' |
    awk -v s="$steps" '{ printf "%.3f", $1 / s }'
}

echo "global batch $batch, widths $widths, ${size}x${size}, $steps steps; 1 x $threads threads vs $ranks ranks x $((threads / ranks)) thread(s)"
ratios=()
ratios_sync=()
for r in $(seq 1 "$rounds"); do
  rm -rf "$dir/one" "$dir/ranks" "$dir/sync"
  OMP_NUM_THREADS=$threads "$bin" train "${common[@]}" "${run[@]}" "${shared[@]}" --out "$dir/one" --batch "$batch" \
    >/dev/null
  $mpirun -np "$ranks" $root_flag -x OMP_NUM_THREADS=$((threads / ranks)) "$bin" train "${common[@]}" "${run[@]}" "${shared[@]}" \
    --out "$dir/ranks" --batch $((batch / ranks)) >/dev/null
  $mpirun -np "$ranks" $root_flag -x OMP_NUM_THREADS=$((threads / ranks)) "$bin" train "${common[@]}" "${run[@]}" "${shared[@]}" \
    --out "$dir/sync" --batch $((batch / ranks)) --sync-bn >/dev/null
  one=$(per_step "$dir/one")
  rk=$(per_step "$dir/ranks")
  sy=$(per_step "$dir/sync")
  ratio=$(awk -v a="$rk" -v b="$one" 'BEGIN { printf "%.3f", a / b }')
  ratio_sync=$(awk -v a="$sy" -v b="$one" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  ratios_sync+=("$ratio_sync")
  echo "round $r: one process $one s/step, $ranks ranks $rk s/step (x$ratio), with --sync-bn $sy s/step (x$ratio_sync)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median ratio: ranks / one process = $(median "${ratios[@]}"), with --sync-bn $(median "${ratios_sync[@]}")"
