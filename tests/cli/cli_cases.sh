#!/bin/sh
# train/cv --cases (issue 15): only the named cases of --data are looked at
# (a bad folder beside them does not matter), --fraction draws from them, the
# split and the cache hold them alone, and every disagreement is refused
# before anything is written: an unknown or repeated id, a resumed run given
# other cases (or none), a split (the run's or --split's) that selects others
# or, with --fraction 1, not all of them.
# Usage: cli_cases.sh <path to lkaseg>
. "$(dirname "$0")/cli_common.sh"
out="$dir/out"
net="--size 32 --widths 4 8 16 32 --batch 4 --warmup-epochs 1 --device cpu --lr 3e-3 --epochs 1 --steps-per-epoch 1"
net="$net --val-every 1 --folds 2"
run() { "$bin" "$@" >"$out" 2>&1; }
# The ids of a split file's "selected" list, on one line.
selected() { sed -n '/"selected"/,/]/p' "$1" | grep -o 'BraTS2021_[0-9]*' | tr '\n' ' '; }
c0=BraTS2021_00000 c1=BraTS2021_00001 c2=BraTS2021_00002 c3=BraTS2021_00003

"$bin" synth --out "$dir/data" --cases 4 --seed 5 --size 48 48 16 >/dev/null || fail "synth exited $?"
# The same cases beside a bad folder (no T1, T1ce, T2, seg), which discovery refuses.
cp -r "$dir/data" "$dir/mixed"
mkdir "$dir/mixed/BraTS2021_00009"
cp "$dir/data/$c0/${c0}_flair.nii.gz" "$dir/mixed/BraTS2021_00009/BraTS2021_00009_flair.nii.gz"
run train --data "$dir/mixed" --out "$dir/nocases" --fraction 1 --fold 0 $net && fail "the bad folder was accepted"

# cv on three of the cases, through the evaluation in the original grid.
r="$dir/run"
run cv --data "$dir/mixed" --out "$r" --cases $c3 $c0 $c2 --fraction 1 $net || fail "cv --cases exited $?: $(cat "$out")"
[ "$(selected "$r/split.json")" = "$c0 $c2 $c3 " ] || fail "split.json selects $(selected "$r/split.json")"
grep -q "$c1" "$r/split.json" && fail "split.json names $c1: $(cat "$r/split.json")"
grep -q "split: 3 of 3 cases named by --cases" "$out" || fail "split line: $(cat "$out")"
grep -q "slices of 3 cases" "$out" || fail "the cache does not hold the 3 cases: $(cat "$out")"
grep -q '"cases"' "$r/run.json" || fail "run.json does not record --cases: $(cat "$r/run.json")"
[ "$(wc -l <"$r/evaluation.csv")" = 16 ] || fail "evaluation.csv (3 cases x 5 regions + header): $(cat "$r/evaluation.csv")"
cp "$r/split.json" "$dir/split.copy"

# The same cases in another order resume the run.
run train --data "$dir/mixed" --out "$r" --cases $c2 $c0 $c3 --fraction 1 --fold 0 $net ||
  fail "same --cases refused: $(cat "$out")"
grep -q "already trained" "$out" || fail "fold 0 retrained: $(cat "$out")"
# Other cases, no --cases, or more cases than the split selects: refused, nothing changed.
run train --data "$dir/mixed" --out "$r" --cases $c0 $c1 $c2 --fraction 1 --fold 0 $net && fail "other --cases accepted"
grep -q "$c3.*--cases" "$out" || fail "other --cases not explained: $(cat "$out")"
run train --data "$dir/data" --out "$r" --fraction 1 --fold 0 $net && fail "a resume without --cases accepted"
grep -q "'split.cases' differs" "$out" || fail "missing --cases not named: $(cat "$out")"
run train --data "$dir/data" --out "$r" --cases $c0 $c1 $c2 $c3 --fraction 1 --fold 0 $net && fail "more --cases accepted"
grep -q -- "--cases names $c1, which .*split.json does not select" "$out" || fail "extra case not named: $(cat "$out")"
cmp -s "$r/split.json" "$dir/split.copy" || fail "split.json changed"

# An unknown id: nothing made, the id, the folder and some cases named.
run train --data "$dir/data" --out "$dir/run2" --cases $c0 BraTS2021_00099 --fraction 1 $net && fail "unknown id accepted"
grep -q -- "--cases: $dir/data: case BraTS2021_00099 is not there (4 case(s): $c0, $c1, $c2, $c3)" "$out" ||
  fail "unknown id not explained: $(cat "$out")"
[ ! -e "$dir/run2" ] || fail "an unknown id made $(ls -R "$dir/run2")"
run cv --data "$dir/data" --out "$dir/run2" --cases $c0 $c1 $c0 --fraction 1 $net && fail "a repeated id accepted"
grep -q -- "--cases: $c0 is given twice" "$out" || fail "repeated id not explained: $(cat "$out")"

# --split must select among --cases, and with --fraction 1 all of them.
r3="$dir/run3"
run train --data "$dir/data" --out "$r3" --split "$dir/split.copy" --cases $c0 $c1 $c2 --fraction 1 --fold 0 $net &&
  fail "--split selecting a case outside --cases accepted"
grep -q "$c3.*not among the available cases (with --cases" "$out" || fail "--split outside not explained: $(cat "$out")"
run train --data "$dir/data" --out "$r3" --split "$dir/split.copy" --cases $c0 $c1 $c2 $c3 --fraction 1 --fold 0 $net &&
  fail "--split leaving out a case of --cases accepted"
grep -q -- "--cases names $c1" "$out" || fail "--split leaving out not explained: $(cat "$out")"
[ ! -e "$r3/run.json" ] && [ ! -e "$r3/slices.lkcache" ] || fail "a refused --split wrote: $(ls "$r3")"
run train --data "$dir/data" --out "$r3" --split "$dir/split.copy" --cases $c0 $c2 $c3 --fraction 1 --fold 0 $net ||
  fail "an agreeing --split refused: $(cat "$out")"
grep -q "slices of 3 cases" "$out" || fail "the cache does not hold the 3 cases: $(cat "$out")"

# --fraction draws from the named cases only (of all four, seed 42 draws $c0 and $c1).
run train --data "$dir/data" --out "$dir/run4" --cases $c0 $c2 $c3 --fraction 0.5 --fold 0 $net ||
  fail "--fraction 0.5 with --cases: $(cat "$out")"
grep -q "split: 2 of 3 cases named by --cases" "$out" || fail "split line: $(cat "$out")"
grep -q "$c1" "$dir/run4/split.json" && fail "the draw took $c1: $(cat "$dir/run4/split.json")"
echo "cli_cases: ok"
