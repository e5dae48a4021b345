#!/usr/bin/env python3
"""Pool the splits of an ensemble accuracy run (tools/accuracy/split.sh).

  tools/accuracy/pool.py SPLIT_DIR [SPLIT_DIR ...] [--include-empty] [--cases]

Every test case counts once, predicted only by models that never saw it.
Rows: three single-fold choices per split -- oracle (the best WT Dice on that
split's test cases: a choice no user can make), cv's pick (the best
validation Dice in RUN/cv_summary.json), and the mean of the folds (each
case's metrics averaged over them) -- then oracle + post-processing and the
ensemble variants. Dice %, HD95 mm; a region whose ground truth is empty is
left out (the SPEC's "not applicable") unless --include-empty (BraTS: it
counts, Dice 1 / HD95 0 when nothing is predicted, else 0 / 373.13). Then
issue 15's targets for ens_tta and ens_tta_pp: WT Dice gain over each
single-fold row, regions whose Dice is below the oracle fold's, and HD95
over the oracle fold's per region. Markdown on stdout.
"""

import argparse
import json
import os
import sys

REGIONS = ["NCR", "ET", "ED", "WT", "TC"]
ENSEMBLES = ["ens", "ens_tta", "ens_pp", "ens_tta_pp"]


def cases(split, name):
    path = os.path.join(split, f"eval_{name}.json")
    if not os.path.exists(path):
        raise SystemExit(f"pool: {path} is missing (did split.sh finish?)")
    return json.load(open(path))["cases"]


def wt_dice(cs):
    return sum(c["regions"]["WT"]["dice"] for c in cs) / len(cs)


def mean_over_folds(folds):
    """Per case, each region's Dice and HD95 averaged over the folds."""
    out = []
    for i, c in enumerate(folds[0]):
        regions = {}
        for r in REGIONS:
            vals = [f[i]["regions"][r] for f in folds]
            regions[r] = {"gt_empty": c["regions"][r]["gt_empty"],
                          "dice": sum(v["dice"] for v in vals) / len(vals),
                          "hd95_mm": sum(v["hd95_mm"] for v in vals) / len(vals)}
        out.append({"case": c["case"], "regions": regions})
    return out


def pool(splits):
    rows, picks = {}, []
    for s in splits:
        n = sum(1 for d in os.listdir(os.path.join(s, "run")) if d.startswith("fold_"))
        folds = [cases(s, f"fold_{k}") for k in range(n)]
        oracle = max(range(n), key=lambda k: wt_dice(folds[k]))
        summary = json.load(open(os.path.join(s, "run", "cv_summary.json")))
        val = {f["fold"]: f["dice_mean"] for f in summary["folds"]}
        pick = max(val, key=val.get)
        picks.append((s, [c["case"] for c in folds[0]], oracle, pick))
        for name, cs in [("fold, oracle", folds[oracle]), ("fold, cv's pick", folds[pick]),
                         ("fold, mean of all", mean_over_folds(folds)),
                         ("fold, oracle + pp", cases(s, f"fold_{oracle}_pp"))] + [(e, cases(s, e)) for e in ENSEMBLES]:
            rows.setdefault(name, []).extend(cs)
    return rows, picks


def stat(cs, region, key, include_empty):
    v = [c["regions"][region][key] for c in cs if include_empty or not c["regions"][region]["gt_empty"]]
    return (sum(v) / len(v), len(v)) if v else (None, 0)


def table(rows, include_empty):
    out = ["| prediction | " + " | ".join(f"{r} Dice" for r in REGIONS) + " | " +
           " | ".join(f"{r} HD95" for r in REGIONS) + " |", "| --- |" + " --- |" * (2 * len(REGIONS))]
    for name, cs in rows.items():
        cells = []
        for key, scale in (("dice", 100), ("hd95_mm", 1)):
            for r in REGIONS:
                m, _ = stat(cs, r, key, include_empty)
                cells.append("n/a" if m is None else f"{scale * m:.2f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def targets(rows, include_empty):
    """Issue 15's targets for the ensembles with mirroring: WT Dice gain over
    each single-fold row (>= 2 points over the best fold), regions whose Dice
    is below the oracle fold's, HD95 against the oracle fold's (<= 0.5x in
    every region)."""
    def m(name, r, key):
        return stat(rows[name], r, key, include_empty)[0]
    singles = ["fold, oracle", "fold, cv's pick", "fold, mean of all"]
    out = ["| prediction | " + " | ".join(f"WT Dice − {s[6:]}" for s in singles) +
           " | Dice below the oracle | " + " | ".join(f"{r} HD95 / oracle" for r in REGIONS) + " | HD95 halved |",
           "| --- |" + " --- |" * (len(singles) + 2 + len(REGIONS))]
    for v in ("ens_tta", "ens_tta_pp"):
        gains = [100 * (m(v, "WT", "dice") - m(s, "WT", "dice")) for s in singles]
        lower = [r for r in REGIONS if m(v, r, "dice") is not None and m(v, r, "dice") < m(singles[0], r, "dice")]
        ratios = {r: (m(v, r, "hd95_mm") / m(singles[0], r, "hd95_mm")
                      if m(v, r, "hd95_mm") is not None and m(singles[0], r, "hd95_mm") else None) for r in REGIONS}
        halved = [r for r in REGIONS if ratios[r] is not None and ratios[r] <= 0.5]
        out.append(f"| {v} | " + " | ".join(f"{g:+.2f}" for g in gains) + f" | {', '.join(lower) or 'none'} | " +
                   " | ".join("n/a" if x is None else f"{x:.2f}" for x in ratios.values()) +
                   f" | {', '.join(halved) or 'none'} |")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("splits", nargs="+")
    ap.add_argument("--include-empty", action="store_true")
    ap.add_argument("--cases", action="store_true", help="also each case's rows for oracle and ens_tta_pp")
    a = ap.parse_args(argv)
    rows, picks = pool(a.splits)
    for s, test, oracle, pick in picks:
        print(f"- {s}: test {', '.join(test)}; oracle fold {oracle}, cv's pick {pick}")
    print()
    print("\n".join(table(rows, a.include_empty)))
    n = {r: stat(rows["ens"], r, "dice", a.include_empty)[1] for r in REGIONS}
    print(f"\ncases per region: {', '.join(f'{r} {k}' for r, k in n.items())}")
    print("\nissue 15's targets (ensemble + TTA WT Dice >= 2 points over the best fold; HD95 of every region at most "
          "half the oracle fold's, Dice not lower):\n")
    print("\n".join(targets(rows, a.include_empty)))
    if a.cases:
        for name in ("fold, oracle", "ens_tta_pp"):
            for c in rows[name]:
                print(f"- {name} {c['case']}: " + " ".join(
                    f"{r} {100 * c['regions'][r]['dice']:.1f}/{c['regions'][r]['hd95_mm']:.1f}" for r in REGIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
