#!/bin/sh
# Nothing lost, nothing silently wrong (issue 11), through the lkaseg binary:
# foreign files are never overwritten, a run folder refuses changed settings
# before anything is built, a run that cannot start writes nothing, the cache
# notices a changed case, progress inside epochs, Ctrl-C in every phase and
# no temporary file left, and the command-line polish. Each block names the
# issue's item it covers.
# Usage: cli_safety.sh <path to lkaseg>
. "$(dirname "$0")/cli_common.sh"
out="$dir/out"
tmps() { find "$1" -name '*.tmp.*' | wc -l; }
# train/cv on the small dataset; "$@" adds flags (each flag at most once).
net="--widths 4 8 16 32 --batch 4 --warmup-epochs 1 --device cpu --lr 3e-3 --steps-per-epoch 2 --val-every 1"
run() { "$bin" "$@" >"$out" 2>&1; }

"$bin" synth --out "$dir/data" --cases 4 --seed 5 --size 48 48 16 >/dev/null || fail "synth exited $?"

# 1. synth never replaces cases it did not write; a folder of other files needs --force.
mkdir -p "$dir/real/BraTS2021_00006"
echo "a real scan" >"$dir/real/BraTS2021_00006/BraTS2021_00006_flair.nii.gz"
run synth --out "$dir/real" --cases 8 --size 16 16 8 && fail "synth into a folder of real cases accepted"
grep -q "lkaseg did not write (BraTS2021_00006)" "$out" || fail "foreign folder not explained: $(cat "$out")"
run synth --out "$dir/real" --cases 8 --size 16 16 8 --force && fail "synth --force replaced a real case"
grep -q "BraTS2021_00006: exists and was not written by lkaseg synth" "$out" || fail "collision not named: $(cat "$out")"
run synth --out "$dir/real" --cases 2 --size 16 16 8 --first-id 7 --force || fail "synth beside real cases: $(cat "$out")"
[ "$(cat "$dir/real/BraTS2021_00006/BraTS2021_00006_flair.nii.gz")" = "a real scan" ] || fail "the real case changed"
[ -f "$dir/real/BraTS2021_00008/BraTS2021_00008_seg.nii.gz" ] || fail "no synthetic case beside the real one"
run synth --out "$dir/data" --cases 4 --seed 5 --size 48 48 16 || fail "synth over its own output refused: $(cat "$out")"

# 2. --cache naming a file that is not a slice cache is never overwritten.
victim="$dir/data/BraTS2021_00000/BraTS2021_00000_t1.nii.gz"
cp "$victim" "$dir/victim.copy"
run preprocess --data "$dir/data" --cache "$victim" && fail "preprocess overwrote a case file"
grep -q "not a slice cache" "$out" || fail "not explained: $(cat "$out")"
run train --data "$dir/data" --out "$dir/x" --fraction 1 --folds 2 --cache "$victim" --size 32 $net &&
  fail "train accepted a case file as its cache"
cmp -s "$victim" "$dir/victim.copy" || fail "the case file was overwritten"

# 6, 7. A run that cannot start writes nothing and builds nothing; flags are
# checked before the cache.
r="$dir/run"
nothing() { [ ! -e "$r/run.json" ] && [ ! -e "$r/slices.lkcache" ] && [ ! -e "$r/split.json" ] && [ ! -e "$r/fold_0" ]; }
run train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --size 32 --widths 8 --device cpu && fail "--widths 8 accepted"
grep -q -- "--widths: 1 level" "$out" || fail "--widths 8 not explained: $(cat "$out")"
nothing || fail "--widths 8 wrote: $(ls "$r")"
run train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --size 16 --widths 4 8 16 32 64 --batch 1 --device cpu &&
  fail "--batch 1 at a 1x1 level accepted"
grep -q "batch norm" "$out" || fail "--batch 1 not explained: $(cat "$out")"
nothing || fail "--batch 1 wrote: $(ls "$r")"
run train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --fold 7 --size 32 $net && fail "--fold 7 accepted"
grep -q "the split has 2 folds" "$out" || fail "--fold 7 not explained: $(cat "$out")"
nothing || fail "--fold 7 wrote: $(ls "$r")"
run train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --size 32 --widths 4 8 16 32 --batch 4000 --device cpu &&
  fail "--batch 4000 accepted"
grep -q "not one batch" "$out" || fail "--batch 4000 not explained: $(cat "$out")"
nothing || fail "--batch 4000 wrote: $(ls "$r")"

# The corrected run trains; 8. with a progress line inside each epoch (plain
# lines off a terminal, on stderr; the loss from its first read, --log-every).
"$bin" train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --epochs 2 --size 32 --log-every 1 $net >"$out" 2>"$dir/err" ||
  fail "train exited $?: $(cat "$out" "$dir/err")"
grep -q "epoch 1/2: 1/2 steps (50%), .* steps/s, ETA .*loss .*run ETA" "$dir/err" || fail "no progress: $(cat "$dir/err")"
[ "$(tmps "$r")" = 0 ] || fail "temporary files left: $(find "$r" -name '*.tmp.*')"

# 4. A rerun that changes anything but --epochs is refused before anything is
# rebuilt, naming the field.
inode=$(ls -i "$r/slices.lkcache")
for change in "--size 48:preprocess.size" "--clahe:preprocess.clahe" "--folds 3:split.folds" \
  "--fraction 0.5:split.fraction" "--seed 7:split.seed" "--lka-dilation 3:train.net.lka_dilation"; do
  flag=${change%%:*}
  field=${change#*:}
  size="--size 32"
  folds="--folds 2"
  fraction="--fraction 1"
  case $flag in --size*) size=$flag ;; --folds*) folds=$flag ;; --fraction*) fraction=$flag ;; *) size="$size $flag" ;; esac
  run train --data "$dir/data" --out "$r" $fraction $folds --epochs 2 $size $net && fail "$flag accepted in the same run folder"
  grep -q "'$field' differs" "$out" || fail "$flag: '$field' not named: $(cat "$out")"
done
[ "$(ls -i "$r/slices.lkcache")" = "$inode" ] || fail "the cache was rebuilt for a refused run"

# 5. The cache notices a replaced segmentation, names it, and rebuilds.
"$bin" synth --out "$dir/other" --cases 1 --seed 9 --size 48 48 16 >/dev/null || fail "synth other"
cp "$dir/other/BraTS2021_00000/BraTS2021_00000_seg.nii.gz" "$dir/data/BraTS2021_00000/"
run train --data "$dir/data" --out "$r" --fraction 1 --folds 2 --epochs 3 --size 32 $net || fail "rerun: $(cat "$out")"
grep -q "case BraTS2021_00000 (BraTS2021_00000_seg.nii.gz: .*) changed" "$out" || fail "change not named: $(cat "$out")"
grep -q "resuming .* at step 4" "$out" || fail "--epochs 3 did not go on: $(cat "$out")"

# 8. Ctrl-C in cv's predict phase stops it (exit 130); a killed preprocess's
# temporary file is named and removed by the next run, an interrupted one
# leaves none.
"$bin" synth --out "$dir/big" --cases 4 --seed 3 --size 96 96 48 >/dev/null || fail "synth big"
# A signal must land while the phase runs: on a loaded machine this shell's
# polling can be starved for longer than the phase lasts, and the command then
# ends (exit 0) before the signal; such a try is void and made again.
tries=0
while :; do
  rm -rf "$dir/cv"
  "$bin" cv --data "$dir/big" --out "$dir/cv" --fraction 1 --folds 2 --epochs 1 --size 32 $net >"$out" 2>&1 &
  pid=$!
  i=0
  while ! grep -q "validation cases predicted" "$out" && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
  kill -INT $pid
  wait $pid
  rc=$?
  [ $rc = 0 ] && [ $tries -lt 5 ] && { tries=$((tries + 1)); continue; }
  break
done
[ $rc = 130 ] || fail "SIGINT in cv's predict phase: exit $rc: $(cat "$out")"
[ "$(tmps "$dir/cv")" = 0 ] || fail "temporary files left by cv: $(find "$dir/cv" -name '*.tmp.*')"
# The cache's own temporary (written from the start of the build to its end);
# a kill may also leave the labels' scratch file, named as a temporary too.
cache_tmps() { find "$dir" -maxdepth 1 -name 'c.lkcache.tmp.lkaseg-*' | wc -l; }
for sig in INT KILL; do
  tries=0
  while :; do
    rm -f "$dir/c.lkcache"
    "$bin" preprocess --data "$dir/big" --cache "$dir/c.lkcache" --size 128 --threads 1 >"$out" 2>&1 &
    pid=$!
    i=0
    while [ "$(cache_tmps)" = 0 ] && [ $i -lt 600 ]; do sleep 0.02; i=$((i + 1)); done
    kill -$sig $pid
    wait $pid
    rc=$?
    [ $rc = 0 ] && [ $tries -lt 5 ] && { tries=$((tries + 1)); continue; }
    break
  done
  [ $sig = KILL ] || [ $rc = 130 ] || fail "SIGINT in preprocess: exit $rc: $(cat "$out")"
  [ $sig = INT ] || [ $rc = 137 ] || fail "SIGKILL in preprocess: exit $rc: $(cat "$out")"
  [ $sig = KILL ] || [ "$(tmps "$dir")" = 0 ] || fail "SIGINT in preprocess left $(find "$dir" -name '*.tmp.*')"
done
[ "$(cache_tmps)" = 1 ] || fail "SIGKILL left no temporary file to clean (test broken?)"
run preprocess --data "$dir/big" --cache "$dir/c.lkcache" --size 32 || fail "preprocess after a kill: $(cat "$out")"
grep -q "removed .*c.lkcache.tmp.* (left by a killed run)" "$out" || fail "stale file not named: $(cat "$out")"
[ "$(tmps "$dir")" = 0 ] || fail "stale temporary file left"

# 9. Command-line polish.
run --version || fail "--version exited $?"
grep -q "^lkaseg [0-9]" "$out" || fail "--version: $(cat "$out")"
run trian && fail "unknown subcommand accepted"
grep -q "unknown subcommand 'trian' (did you mean 'train'?)" "$out" || fail "unknown subcommand: $(cat "$out")"
run train --data "$dir/data" --out "$dir/y" --lr -1 && fail "--lr -1 accepted"
grep -q "^--lr: must be a positive number, got -1$" "$out" || fail "--lr message: $(cat "$out")"
run train --data "$dir/data" --out "$dir/y" --epochs 2 --epochs 3 && fail "repeated flag accepted"
grep -q "\-\-epochs was given 2 times; give it once" "$out" || fail "repeated flag: $(cat "$out")"
run init --out "$dir/w.safetensors" --seed -1 && fail "--seed -1 accepted"
grep -q "from 0 to 18446744073709551615, got -1" "$out" || fail "--seed -1: $(cat "$out")"
run summary --widths 60000 60000 60000 60000 && fail "huge --widths accepted"
grep -q "needs at least .* GB .* this machine has" "$out" || fail "huge --widths: $(cat "$out")"
grep -q "bad_alloc" "$out" && fail "bad_alloc shown: $(cat "$out")"
run train --data "$dir/data" --out "$dir/y" --cuda-graph maybe && fail "--cuda-graph maybe accepted"
grep -q "cuda-graph" "$out" || fail "--cuda-graph maybe not explained: $(cat "$out")"
run train --data "$dir/data" --out "$dir/y" --oversample-by voxel && fail "--oversample-by voxel accepted"
grep -q "oversample-by.*voxel" "$out" || fail "--oversample-by voxel not explained: $(cat "$out")"
run train --data "$dir/data" --out "$dir/y" --oversample-by class && fail "--oversample-by class without --oversample accepted"
grep -q "oversampling by class needs an oversampling fraction above 0" "$out" || fail "--oversample-by class alone: $(cat "$out")"
[ ! -e "$dir/y" ] || fail "a refused run wrote $dir/y"
for o in --weight-decay --warmup-epochs --steps-per-epoch --oversample --oversample-by --seed --augment-on --workers --threads \
  --lka-dilation --widths --cuda-graph; do
  "$bin" cv --help | grep -- "^  $o " | grep -q "=" || fail "cv --help: no default for $o"
done
run demo --save /nonexistent/x.safetensors --work "$dir/demo" --steps 1 && fail "demo --save into a missing folder"
grep -q "/nonexistent" "$out" || fail "demo --save not explained: $(cat "$out")"
grep -q "step " "$out" && fail "demo trained before refusing --save: $(cat "$out")"
run preprocess --data "$dir/data" --cache "$dir/huge.lkcache" --size 4096 && fail "--size 4096 on 48-voxel volumes accepted"
grep -q "at most 192" "$out" || fail "--size 4096 not bounded: $(cat "$out")"
[ ! -e "$dir/huge.lkcache" ] || fail "a cache was written for --size 4096"
echo "cli_safety: ok"
