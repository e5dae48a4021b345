#!/bin/sh
# The training protocol end to end through the lkaseg binary: cv on a tiny
# network (split, cache of the selection, folds, summary), a finished fold is
# skipped, SIGINT stops a run with exit 130 and a checkpoint that the next run
# resumes from, predict writes one NIfTI per case (one model, the last checkpoint,
# the run's folds as an ensemble with mirrored views, post-processing and
# probability maps), bad flags fail.
# Usage: cli_train.sh <path to lkaseg>
. "$(dirname "$0")/cli_common.sh"
base="--size 32 --widths 4 8 16 32 --batch 4 --warmup-epochs 1 --device cpu"
tiny="$base --lr 3e-3"

"$bin" synth --out "$dir/data" --cases 6 --seed 5 --size 48 48 16 >/dev/null || fail "synth exited $?"
"$bin" cv --data "$dir/data" --out "$dir/run" --fraction 1 --folds 2 --epochs 2 --steps-per-epoch 2 --val-every 1 \
  $tiny >"$dir/out" 2>&1 || fail "cv exited $?: $(cat "$dir/out")"
for f in split.json slices.lkcache cv_summary.json fold_0/best.safetensors fold_1/last.json fold_1/log.jsonl run.json \
  evaluation.csv evaluation.json table3.json predictions/BraTS2021_00000.nii.gz fold_0/selected.json \
  postprocessing.json predictions_postprocessed/BraTS2021_00005.nii.gz; do
  [ -f "$dir/run/$f" ] || fail "no $f after cv: $(cat "$dir/out")"
done
grep -q "mean +- sample std over folds" "$dir/out" || fail "no summary: $(cat "$dir/out")"
grep -q "HD95 mm" "$dir/out" || fail "no original-grid evaluation: $(cat "$dir/out")"
grep -q "^fold 1: [a-z]* (.*safetensors, epoch [0-9]*)" "$dir/out" || fail "no checkpoint choice: $(cat "$dir/out")"
grep -q "post-processing on the cross-validation predictions" "$dir/out" || fail "no post-processing table: $(cat "$dir/out")"
grep -q '"checkpoints"' "$dir/run/cv_summary.json" || fail "cv_summary.json without the choices"
# 6 cases x 5 regions + the header
[ "$(wc -l <"$dir/run/evaluation.csv")" = 31 ] || fail "evaluation.csv: $(cat "$dir/run/evaluation.csv")"
grep -q '"convention": "spec"' "$dir/run/postprocessing.json" || fail "post-processing not chosen under SPEC by default"
grep -q '^  "keep_labels": true' "$dir/run/postprocessing.json" || fail "SPEC post-processing may empty labels"
# Again: both folds are done, nothing is trained; the post-processing is chosen again under the other convention.
"$bin" cv --data "$dir/data" --out "$dir/run" --fraction 1 --folds 2 --epochs 2 --steps-per-epoch 2 --val-every 1 \
  $tiny --pp-convention brats >"$dir/out" 2>&1 || fail "second cv exited $?"
[ "$(grep -c "already trained" "$dir/out")" = 2 ] || fail "finished folds retrained: $(cat "$dir/out")"
grep -q "(--pp-convention brats: " "$dir/out" || fail "convention not reported: $(cat "$dir/out")"
grep -q '"convention": "brats"' "$dir/run/postprocessing.json" || fail "post-processing not chosen again"
grep -q '^  "keep_labels": false' "$dir/run/postprocessing.json" || fail "BraTS post-processing keeps labels"
grep -q '"convention": "brats"' "$dir/run/cv_summary.json" || fail "cv_summary.json without the convention"
# Another configuration in the same folder is refused, naming the field.
"$bin" train --data "$dir/data" --out "$dir/run" --fraction 1 --folds 2 --epochs 2 --steps-per-epoch 2 --val-every 1 \
  $base --lr 1e-2 >"$dir/out" 2>&1 && fail "changed lr accepted"
grep -q "'train.adamw.lr' differs: 0.003 then, 0.01 now" "$dir/out" || fail "lr change not named: $(cat "$dir/out")"
# Oversampling by class is part of the configuration: a run by tumour is not resumed by class.
ob="--data $dir/data --out $dir/ob --fraction 1 --folds 2 --fold 0 --epochs 1 --steps-per-epoch 1 --val-every 1 --oversample 0.5"
"$bin" train $ob $tiny >"$dir/out" 2>&1 || fail "run with --oversample exited $?: $(cat "$dir/out")"
cp "$dir/ob/fold_0/config.json" "$dir/ob_config.json"
"$bin" train $ob $tiny --oversample-by class >"$dir/out" 2>&1 && fail "oversampling by class accepted in a run by tumour"
grep -q "'train.oversample_by' differs: (none) then, \"class\" now" "$dir/out" || fail "oversample_by not named: $(cat "$dir/out")"
cmp -s "$dir/ob/fold_0/config.json" "$dir/ob_config.json" || fail "a refused run changed config.json"

# SIGINT: exit 130 with a checkpoint; the next run resumes from it.
"$bin" train --data "$dir/data" --out "$dir/long" --fraction 1 --folds 2 --fold 1 --epochs 100000 --steps-per-epoch 2 \
  --val-every 1000 $tiny >"$dir/out" 2>&1 &
pid=$!
i=0
while [ ! -f "$dir/long/fold_1/log.jsonl" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
[ -f "$dir/long/fold_1/log.jsonl" ] || { kill -9 $pid; fail "no epoch finished in 60 s: $(cat "$dir/out")"; }
kill -INT $pid
wait $pid
rc=$?
[ $rc = 130 ] || fail "SIGINT exit $rc, expected 130: $(cat "$dir/out")"
[ -f "$dir/long/fold_1/last.json" ] || fail "no checkpoint after SIGINT"
grep -q "stopped" "$dir/out" || fail "stop not reported: $(cat "$dir/out")"
timeout --preserve-status -s INT 3 "$bin" train --data "$dir/data" --out "$dir/long" --fraction 1 --folds 2 --fold 1 --epochs 100000 \
  --steps-per-epoch 2 --val-every 1000 $tiny >"$dir/out" 2>&1
rc=$?
[ $rc = 130 ] || fail "second SIGINT exit $rc: $(cat "$dir/out")"
grep -q "resuming .* at step" "$dir/out" || fail "did not resume: $(cat "$dir/out")"

# predict: one mask per case; also from a fold folder and from its newest checkpoint (last.json).
"$bin" predict --model "$dir/run/fold_0/best.safetensors" --data "$dir/data" --out "$dir/pred" --device cpu \
  >"$dir/out" 2>&1 || fail "predict exited $?: $(cat "$dir/out")"
[ "$(ls "$dir/pred" | grep -c '\.nii\.gz$')" = 6 ] || fail "predict wrote $(ls "$dir/pred")"
for m in "$dir/run/fold_0" "$dir/run/fold_1/last.json"; do
  "$bin" predict --model "$m" --data "$dir/data" --out "$dir/pred2" --cases BraTS2021_00001 --device cpu >"$dir/out" 2>&1 ||
    fail "predict --model $m exited $?: $(cat "$dir/out")"
done
# In the original geometry: evaluate refuses any other grid.
"$bin" evaluate --pred "$dir/pred" --gt "$dir/data" >"$dir/out" 2>&1 || fail "evaluate of predict's output: $(cat "$dir/out")"
"$bin" predict --model "$dir/run/split.json" --data "$dir/data" --out "$dir/pred" >"$dir/out" 2>&1 &&
  fail "predict accepted a JSON file as a model"
# The whole run as an ensemble, mirrored views, cv's post-processing, probability maps.
"$bin" predict --run "$dir/run" --tta --save-probabilities --data "$dir/data" --out "$dir/ens" --device cpu \
  >"$dir/out" 2>&1 || fail "predict --run exited $?: $(cat "$dir/out")"
grep -q "with 2 model(s) x 2 views" "$dir/out" || fail "predict --run: $(cat "$dir/out")"
grep -q "post-processing $dir/run/postprocessing.json" "$dir/out" || fail "predict --run without post-processing: $(cat "$dir/out")"
grep -q "s per case" "$dir/out" || fail "no time per case: $(cat "$dir/out")"
[ "$(ls "$dir/ens/probabilities" | grep -c '\.nii\.gz$')" = 6 ] || fail "probabilities: $(ls "$dir/ens/probabilities")"
"$bin" evaluate --pred "$dir/ens" --gt "$dir/data" >"$dir/out" 2>&1 || fail "evaluate of the ensemble: $(cat "$dir/out")"
# Any checkpoint a run wrote: the last one too (its manifest), mixed with a best.
"$bin" predict --model "$dir/run/fold_0/last.json" --model "$dir/run/fold_1/best.safetensors" --data "$dir/data" \
  --out "$dir/pair" --cases BraTS2021_00001 --device cpu >"$dir/out" 2>&1 || fail "predict with last: $(cat "$dir/out")"
[ -f "$dir/pair/BraTS2021_00001.nii.gz" ] || fail "no prediction from the last checkpoint"
"$bin" predict --run "$dir/run" --model "$dir/run/fold_0/best.safetensors" --data "$dir/data" --out "$dir/x" \
  >"$dir/out" 2>&1 && fail "--run with --model accepted"
"$bin" train --data "$dir/data" --out "$dir/run" --fraction 1 --folds 2 --fold 7 $tiny >"$dir/out" 2>&1 &&
  fail "--fold 7 of 2 accepted"
grep -q "the split has 2 folds" "$dir/out" || fail "--fold 7 not explained: $(cat "$dir/out")"
# An unknown convention is refused by name before anything is read or written: the finished run keeps its rules.
cp "$dir/run/postprocessing.json" "$dir/pp_before.json"
"$bin" cv --data "$dir/data" --out "$dir/run" --fraction 1 --folds 2 --epochs 2 --steps-per-epoch 2 --val-every 1 \
  $tiny --pp-convention nope >"$dir/out" 2>&1 && fail "--pp-convention nope accepted"
grep -q "pp-convention: nope not in {spec,brats}" "$dir/out" || fail "bad convention not named: $(cat "$dir/out")"
cmp -s "$dir/run/postprocessing.json" "$dir/pp_before.json" || fail "a refused cv changed postprocessing.json"
echo "cli_train: ok"
