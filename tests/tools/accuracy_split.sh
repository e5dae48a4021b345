#!/usr/bin/env bash
# tools/accuracy/split.sh + pool.py (docs/ACCURACY.md's ensemble runs) on six
# small synthetic cases at a toy budget: cv on four, every fold and the four
# ensemble variants predicted and evaluated on the other two; run again on
# the finished folder with --pp-convention brats it trains nothing and
# chooses the post-processing again; an unknown cv
# id fails naming the step and its log; no arguments, or a test case among
# the cv cases, is refused with exit 2 before anything runs; the
# pooled table (when python3 is there) has every row and agrees with
# evaluate's own summaries.
# Usage: accuracy_split.sh <source root> <lkaseg binary>
set -uo pipefail
src=$1 bin=$2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$bin" synth --out "$dir/data" --cases 6 --seed 3 --size 48 48 20 >/dev/null 2>&1 || fail "synth"
mapfile -t ids < <(find "$dir/data" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
((${#ids[@]} == 6)) || fail "synth made ${#ids[@]} cases: ${ids[*]}"
cv="${ids[*]:0:4}" test="${ids[*]:4:2}"
flags=(--folds 2 --epochs 1 --steps-per-epoch 2 --val-every 1 --size 32 --widths 4 8 --batch 2 --device cpu --threads 1)
bash "$src/tools/accuracy/split.sh" "$bin" "$dir/data" "$dir/s1" "$test" "$cv" "${flags[@]}" >"$dir/out1" 2>&1 ||
  fail "split.sh exited $?: $(cat "$dir/out1"; tail -n 20 "$dir"/s1/*.log)"
for n in fold_0 fold_1 fold_0_pp fold_1_pp ens ens_tta ens_pp ens_tta_pp; do
  [[ -s $dir/s1/eval_$n.json ]] || fail "no eval_$n.json: $(ls "$dir/s1")"
  # each evaluation covers exactly the two test cases
  for c in ${ids[4]} ${ids[5]}; do grep -q "\"$c\"" "$dir/s1/eval_$n.json" || fail "eval_$n.json lacks $c"; done
  for c in ${ids[0]}; do grep -q "\"$c\"" "$dir/s1/eval_$n.json" && fail "eval_$n.json holds cv case $c"; done
done
[[ $(grep -c ' rc=0 ' "$dir/s1/times.log") == 17 ]] || fail "times.log: $(cat "$dir/s1/times.log")"
# The ensemble with mirroring differs from the one without (two views averaged).
cmp -s "$dir/s1/ens/${ids[4]}.nii.gz" "$dir/s1/ens_tta/${ids[4]}.nii.gz" &&
  echo "note: mirroring left ${ids[4]}'s mask unchanged at this budget"
# The same split again on the finished folder, the post-processing counted
# the BraTS way: cv trains nothing, chooses again, every prediction is redone.
cp "$dir/s1/eval_ens_tta.json" "$dir/ens_tta_before.json"
bash "$src/tools/accuracy/split.sh" "$bin" "$dir/data" "$dir/s1" "$test" "$cv" "${flags[@]}" --pp-convention brats \
  >"$dir/out1b" 2>&1 || fail "split.sh again exited $?: $(cat "$dir/out1b"; tail -n 20 "$dir"/s1/cv.log)"
[[ $(grep -c "already trained" "$dir/s1/cv.log") == 2 ]] || fail "the rerun trained: $(cat "$dir/s1/cv.log")"
grep -q '"convention": "brats"' "$dir/s1/run/postprocessing.json" || fail "post-processing not chosen again"
[[ $(grep -c ' rc=0 ' "$dir/s1/times.log") == 34 ]] || fail "times.log after the rerun: $(cat "$dir/s1/times.log")"
cmp -s "$dir/s1/eval_ens_tta.json" "$dir/ens_tta_before.json" || fail "the same models predicted otherwise on the rerun"
# An unknown id stops the first step with its log named.
bash "$src/tools/accuracy/split.sh" "$bin" "$dir/data" "$dir/s2" "$test" "${ids[0]} nosuch_case" "${flags[@]}" \
  >"$dir/out2" 2>&1 && fail "an unknown cv case, yet exit 0"
grep -q "accuracy/split: cv failed (exit [1-9]" "$dir/out2" || fail "no failed-step message: $(cat "$dir/out2")"
grep -q "nosuch_case" "$dir/s2/cv.log" || fail "cv's log does not name the bad id: $(cat "$dir/s2/cv.log")"
bash "$src/tools/accuracy/split.sh" "$bin" >/dev/null 2>&1
[[ $? == 2 ]] || fail "no arguments: want exit 2"
# A test case that cv would train on is refused before anything runs.
bash "$src/tools/accuracy/split.sh" "$bin" "$dir/data" "$dir/s3" "${ids[4]} ${ids[0]}" "$cv" "${flags[@]}" \
  >"$dir/out3" 2>&1
[[ $? == 2 ]] || fail "a test case among the cv cases: want exit 2: $(cat "$dir/out3")"
grep -q "${ids[0]} is both a test case and a cv case" "$dir/out3" || fail "no overlap message: $(cat "$dir/out3")"
[[ -e $dir/s3 ]] && fail "the refused split wrote $dir/s3"
if command -v python3 >/dev/null; then
  python3 "$src/tools/accuracy/pool.py" "$dir/s1" --cases >"$dir/pool" || fail "pool.py exited $?"
  for r in "fold, oracle" "fold, cv's pick" "fold, mean of all" "fold, oracle + pp" ens ens_tta ens_pp ens_tta_pp; do
    grep -q "^| $r | " "$dir/pool" || fail "pool: no row '$r': $(cat "$dir/pool")"
  done
  # With one split, a pooled row is that variant's own evaluate summary, and
  # the mean-of-all row the mean of the folds' summaries (evaluate's means,
  # computed apart from pool.py's per-case averaging).
  python3 - "$dir/s1" "$dir/pool" <<'PY' || fail "pooled rows differ from evaluate's summaries: $(cat "$dir/pool")"
import json, sys
split, pool = sys.argv[1], open(sys.argv[2]).read().splitlines()
R = ["NCR", "ET", "ED", "WT", "TC"]
def row(names):
    sums = [json.load(open(f"{split}/eval_{n}.json"))["summary"] for n in names]
    def m(r, k, sc):
        v = [s[r][k] for s in sums if s[r].get(k) is not None]
        return "n/a" if not v else f"{sc * sum(v) / len(v):.2f}"
    return [m(r, "dice_mean", 100) for r in R] + [m(r, "hd95_mean_mm", 1) for r in R]
def got(name):
    line = next(l for l in pool if l.startswith(f"| {name} | "))
    return [c.strip() for c in line.strip("|").split("|")][1:]
ok = True
# The targets rows: WT gain over each single-fold row and HD95 over the oracle's, from the pooled rows.
head = next(i for i, l in enumerate(pool) if l.startswith("| prediction | WT Dice − oracle"))
for v in ("ens_tta", "ens_tta_pp"):
    t = next(l for l in pool[head:] if l.startswith(f"| {v} | "))
    cells = [c.strip() for c in t.strip("|").split("|")][1:]
    for i, single in enumerate(["fold, oracle", "fold, cv's pick", "fold, mean of all"]):
        want_gain = float(got(v)[3]) - float(got(single)[3])
        if abs(float(cells[i]) - want_gain) > 0.011:
            print("target row", v, "gain over", single, cells[i], "want", want_gain); ok = False
    for j in range(5):
        o, e = got("fold, oracle")[5 + j], got(v)[5 + j]
        # the pooled cells are rounded to 0.01 mm: the ratio of the rounded values is that close
        if o not in ("n/a", "0.00") and e != "n/a" and \
                abs(float(cells[4 + j]) - float(e) / float(o)) > 0.006 + 0.006 * (1 + float(e) / float(o)) / float(o):
            print("target row", v, "HD95 ratio", R[j], cells[4 + j], "want", float(e) / float(o)); ok = False
for name, want in [("ens_tta", row(["ens_tta"])), ("ens_pp", row(["ens_pp"])), ("fold, mean of all", row(["fold_0", "fold_1"]))]:
    g = got(name)
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(g, want)) if a != b and not (a != "n/a" and b != "n/a" and abs(float(a) - float(b)) <= 0.011)]
    if bad or len(g) != 10:
        print(name, "pooled", g, "summaries", want)
        ok = False
sys.exit(0 if ok else 1)
PY
  # The targets table on made-up rows with known answers (the toy models above predict alike).
  python3 - "$src/tools/accuracy/pool.py" <<'PY' || fail "pool.py's targets table is wrong"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("pool", sys.argv[1])
pool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pool)
def case(wt_dice, hd95, ncr_dice=0.5, et_empty=False):
    r = {k: {"dice": 0.5, "hd95_mm": hd95, "gt_empty": False} for k in pool.REGIONS}
    r["WT"]["dice"], r["NCR"]["dice"] = wt_dice, ncr_dice
    r["ET"]["gt_empty"] = et_empty
    return {"case": "c", "regions": r}
rows = {"fold, oracle": [case(0.80, 40), case(0.70, 40, et_empty=True)],      # WT 75 %, HD95 40
        "fold, cv's pick": [case(0.70, 40), case(0.60, 40)],                   # 65 %
        "fold, mean of all": [case(0.72, 40), case(0.68, 40)],                 # 70 %
        "ens_tta": [case(0.78, 30, ncr_dice=0.4), case(0.76, 30)],             # 77 %, NCR Dice lower, 0.75x
        "ens_tta_pp": [case(0.79, 10), case(0.71, 30)]}                        # 75 %, 0.5x
out = pool.targets(rows, False)
cells = {l.split("|")[1].strip(): [c.strip() for c in l.strip("|").split("|")][1:] for l in out[2:]}
want = {"ens_tta": ["+2.00", "+12.00", "+7.00", "NCR", "0.75", "0.75", "0.75", "0.75", "0.75", "none"],
        "ens_tta_pp": ["+0.00", "+10.00", "+5.00", "none", "0.50", "0.50", "0.50", "0.50", "0.50", "NCR, ET, ED, WT, TC"]}
ok = cells == want
if not ok: print(cells, want)
sys.exit(0 if ok else 1)
PY
  python3 "$src/tools/accuracy/pool.py" "$dir/nosuch" >/dev/null 2>&1 && fail "pool.py on a missing split, yet exit 0"
fi
echo "ok"
