#!/bin/sh
# The lkaseg binary end to end: synth 3 tiny cases, preprocess them (exit 0,
# the summary on stdout, progress on stderr), reuse; a missing folder and a
# bad flag exit non-zero with a message naming them.
# Usage: cli_preprocess.sh <path to lkaseg>
. "$(dirname "$0")/cli_common.sh"

"$bin" synth --out "$dir/set" --cases 3 --seed 2 --size 40 36 16 >/dev/null || fail "synth exited $?"
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --size 32 --threads 2 >"$dir/out" 2>"$dir/err" ||
  fail "preprocess exited $?: $(cat "$dir/err")"
grep -q "3 cases" "$dir/out" || fail "no summary on stdout: $(cat "$dir/out")"
grep -q "preprocess: 3/3 cases in" "$dir/err" || fail "no progress on stderr: $(cat "$dir/err")"
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --size 32 >"$dir/out" 2>&1 || fail "reuse exited $?"
grep -q "reused" "$dir/out" || fail "not reused: $(cat "$dir/out")"

"$bin" preprocess --data "$dir/missing" --cache "$dir/c.lkslc" >"$dir/out" 2>&1 && fail "missing folder exited 0"
grep -q "$dir/missing" "$dir/out" || fail "missing folder not named: $(cat "$dir/out")"
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --size 0 >"$dir/out" 2>&1 && fail "--size 0 exited 0"
grep -q -- "--size" "$dir/out" || fail "--size not named: $(cat "$dir/out")"
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --clip-lo 70 --clip-hi 20 >"$dir/out" 2>&1 &&
  fail "--clip-lo > --clip-hi exited 0"
grep -q "lkaseg: error: --clip-lo" "$dir/out" || fail "clip error not reported: $(cat "$dir/out")"
# CLAHE is part of the cache's options: asking for it rebuilds.
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --size 32 --clahe >"$dir/out" 2>&1 || fail "--clahe exited $?"
grep -q "built" "$dir/out" || fail "--clahe did not rebuild: $(cat "$dir/out")"
"$bin" preprocess --data "$dir/set" --cache "$dir/c.lkslc" --size 32 --clahe --clahe-tiles 40 >"$dir/out" 2>&1 &&
  fail "--clahe-tiles 40 > --size 32 exited 0"
grep -q "lkaseg: error: --clahe-tiles" "$dir/out" || fail "tiles error not reported: $(cat "$dir/out")"
echo "cli_preprocess: ok"
