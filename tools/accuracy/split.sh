#!/usr/bin/env bash
# One split of an ensemble accuracy run (docs/ACCURACY.md, runs 7 and 7b):
# `lkaseg cv` on the cv cases, then on the test cases (never seen by cv)
# every fold alone (cv's checkpoint choice; with and without cv's
# post-processing) and the fold ensemble without/with mirroring, without/with
# post-processing; `lkaseg evaluate --json` of each into OUT/eval_<name>.json
# (names: fold_<k>, fold_<k>_pp, ens, ens_tta, ens_pp, ens_tta_pp), for
# tools/accuracy/pool.py to pool over splits.
#
#   tools/accuracy/split.sh LKASEG DATA OUT "TEST_ID ..." "CV_ID ..." [cv flags ...]
#
# The cv flags are lkaseg cv's (budget, widths, --device, --seed ...). Times
# go to OUT/times.log. Exit status: the first command that failed (2: a test
# case among the cv cases, or too few arguments).
set -uo pipefail
(($# >= 5)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bin=$1 data=$2 out=$3 test_ids=$4 cv_ids=$5
shift 5
for t in $test_ids; do  # a test case cv trains on would not be unseen
  for c in $cv_ids; do
    [[ $t == "$c" ]] && { echo "accuracy/split: $t is both a test case and a cv case" >&2; exit 2; }
  done
done
mkdir -p "$out" || exit 1
log="$out/times.log"
run() {  # run NAME CMD...: the command's output in OUT/NAME.log, its time in times.log
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  echo "$name rc=$rc $(($(date +%s) - t0)) s" >>"$log"
  ((rc == 0)) || { echo "accuracy/split: $name failed (exit $rc), see $out/$name.log" >&2; exit "$rc"; }
}
# shellcheck disable=SC2086
run cv "$bin" cv --data "$data" --cases $cv_ids --out "$out/run" --fraction 1 "$@"
folds=$(find "$out/run" -maxdepth 1 -name "fold_*" -type d | wc -l)
dev=()
for a in "$@"; do [[ ${prev:-} == --device ]] && dev=(--device "$a"); prev=$a; done
# shellcheck disable=SC2086,SC2206
T=(--data "$data" --cases $test_ids "${dev[@]}")
for ((k = 0; k < folds; ++k)); do
  # cv's choice for the fold (selected.json: best or last), as the ensemble takes it.
  f="$out/run/fold_$k"
  w=$(sed -n 's/.*"checkpoint": *"\([a-z]*\).*/\1/p' "$f/selected.json" 2>/dev/null | head -1)
  m="$f/${w:-best}.safetensors"
  [[ -f $m ]] || m="$f/${w:-best}.json"
  echo "fold_$k: $m" >>"$log"
  run "pred_fold_$k" "$bin" predict --model "$m" "${T[@]}" --no-postprocess --out "$out/fold_$k"
  run "pred_fold_${k}_pp" "$bin" predict --model "$m" "${T[@]}" --postprocess "$out/run/postprocessing.json" \
    --out "$out/fold_${k}_pp"
done
run pred_ens "$bin" predict --run "$out/run" "${T[@]}" --no-postprocess --out "$out/ens"
run pred_ens_tta "$bin" predict --run "$out/run" "${T[@]}" --tta --no-postprocess --out "$out/ens_tta"
run pred_ens_pp "$bin" predict --run "$out/run" "${T[@]}" --out "$out/ens_pp"
run pred_ens_tta_pp "$bin" predict --run "$out/run" "${T[@]}" --tta --out "$out/ens_tta_pp"
for ((k = 0; k < folds; ++k)); do names+=" fold_$k fold_${k}_pp"; done
for n in ${names:-} ens ens_tta ens_pp ens_tta_pp; do
  # shellcheck disable=SC2086
  run "eval_$n" "$bin" evaluate --pred "$out/$n" --gt "$data" --cases $test_ids --json "$out/eval_$n.json"
done
echo "accuracy/split: done, $out/eval_*.json"
