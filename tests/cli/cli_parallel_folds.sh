#!/bin/sh
# cv --parallel-folds through the lkaseg binary: the folds train at once in
# child processes (output in RUN/fold_<k>/train.out), one summary at the end;
# a second run finds them trained; SIGINT to the parent stops the children
# with checkpoints (exit 130) and the next run resumes them.
# Usage: cli_parallel_folds.sh <path to lkaseg>
. "$(dirname "$0")/cli_common.sh"
opts="--fraction 1 --folds 2 --size 32 --widths 4 8 16 32 --batch 4 --warmup-epochs 1 --device cpu --lr 3e-3 --no-eval"

"$bin" synth --out "$dir/data" --cases 6 --seed 5 --size 48 48 16 >/dev/null || fail "synth exited $?"
"$bin" cv --data "$dir/data" --out "$dir/run" $opts --epochs 2 --steps-per-epoch 2 --val-every 1 --parallel-folds 2 \
  >"$dir/out" 2>&1 || fail "cv --parallel-folds exited $?: $(cat "$dir/out")"
[ "$(grep -c "started on cpu" "$dir/out")" = 2 ] || fail "two children expected: $(cat "$dir/out")"
for k in 0 1; do
  grep -q "fold $k: done" "$dir/out" || fail "fold $k not done: $(cat "$dir/out")"
  grep -q "epoch 2/2" "$dir/run/fold_$k/train.out" || fail "fold $k output: $(cat "$dir/run/fold_$k/train.out")"
done
grep -q "mean +- sample std over folds" "$dir/out" || fail "no summary: $(cat "$dir/out")"
[ -f "$dir/run/cv_summary.json" ] || fail "no cv_summary.json"
# Again: the children find their folds trained.
"$bin" cv --data "$dir/data" --out "$dir/run" $opts --epochs 2 --steps-per-epoch 2 --val-every 1 --parallel-folds 2 \
  >"$dir/out" 2>&1 || fail "second cv exited $?"
[ "$(grep -c "already trained" "$dir/out")" = 2 ] || fail "finished folds retrained: $(cat "$dir/out")"

# SIGINT to the parent alone: it passes the stop on; both folds keep a checkpoint and resume.
"$bin" cv --data "$dir/data" --out "$dir/long" $opts --epochs 100000 --steps-per-epoch 2 --val-every 1000 \
  --parallel-folds 2 >"$dir/out" 2>&1 &
pid=$!
i=0
while { [ ! -f "$dir/long/fold_0/log.jsonl" ] || [ ! -f "$dir/long/fold_1/log.jsonl" ]; } && [ $i -lt 900 ]; do
  sleep 0.1
  i=$((i + 1))
done
[ -f "$dir/long/fold_1/log.jsonl" ] || { kill -9 $pid; fail "no epoch finished in 90 s: $(cat "$dir/out")"; }
kill -INT $pid
wait $pid
rc=$?
[ $rc = 130 ] || fail "SIGINT exit $rc, expected 130: $(cat "$dir/out")"
grep -q "stopped: run the same command again" "$dir/out" || fail "stop not reported: $(cat "$dir/out")"
for k in 0 1; do
  [ -f "$dir/long/fold_$k/last.json" ] && ls "$dir/long/fold_$k"/last-*.safetensors.state >/dev/null 2>&1 ||
    fail "fold $k: no checkpoint"
done
timeout --preserve-status -s INT 4 "$bin" cv --data "$dir/data" --out "$dir/long" $opts --epochs 100000 \
  --steps-per-epoch 2 --val-every 1000 --parallel-folds 2 >"$dir/out" 2>&1
grep -q "resuming .* at step" "$dir/long/fold_0/train.out" || fail "fold 0 did not resume: $(cat "$dir/long/fold_0/train.out")"
echo "cli_parallel_folds: ok"
