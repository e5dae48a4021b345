#!/usr/bin/env python3
"""Tables of tools/gpu_check.sh's stages, in markdown and JSON.

  summarize.py bench  BENCH.json --copy-bw B_PER_S --md M --json J --detail D
      bench_gpu_kernels' Google Benchmark JSON: per case and shape, ours
      (fast) vs cuDNN in ms, the ratio, ours as % of the copy bandwidth
      (bytes read + written per second, measured in the same run), the
      validation error; rows that failed validation listed.
  summarize.py memory STEP_RUNS.jsonl --md M --json J --detail D
      peak memory of the step runs (step_vs_torch.py): ours vs PyTorch, and
      ours in bf16 vs ours in fp32 (issue 13's target: at most 0.6x).
  summarize.py precision --fp32 LOG.jsonl --bf16 LOG.jsonl --md M --json J --detail D
      two `lkaseg train` runs' validation Dice (fold log.jsonl), fp32 vs
      bf16: the last validation of each, per class and mean, and the gap
      (issue 13's target: bf16 within 1 point of fp32); exit 1 when a run
      has no validation or the gap is larger.
write_step_tables() is step_vs_torch.py's table. Files are written whole
(temporary file, then renamed): the report embeds whatever is there when a
stage is cut off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

MIB = 2.0 ** 20


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_outputs(base_md, base_json, base_detail, md, data, detail):
    write_atomic(base_md, md)
    write_atomic(base_json, json.dumps(data) + "\n")
    write_atomic(base_detail, detail + "\n")


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


# ------------------------------------------------------------------ step

# For each PyTorch row, the row of ours it is compared with.
OURS_FOR = {"torch_channels_last": "ours", "torch_nchw": "ours", "torch_channels_last_det": "ours",
            "torch_compile": "ours", "torch_bf16": "ours_bf16"}


def step_ms(r):
    return r["result"]["step_seconds"] * 1e3 if r.get("result") else None


def step_ratios(runs):
    by = {(r["net"], r["runner"]): r for r in runs}
    out = []
    for r in runs:
        ours = by.get((r["net"], OURS_FOR.get(r["runner"], "")))
        if ours and step_ms(ours) and step_ms(r):
            out.append({"net": r["net"], "ours": ours["runner"], "peer": r["runner"],
                        "ours_ms": step_ms(ours), "peer_ms": step_ms(r), "ratio": step_ms(ours) / step_ms(r)})
    return out


def write_step_tables(runs, notes, base):
    ratios = step_ratios(runs)
    lines = [f"- {n}" for n in notes]
    lines += ["", "ours/PyTorch: our step time over PyTorch's (above 1: we are slower).", "",
              "| net | runner | status | step ms (median) | min ms | fwd / loss / bwd / opt ms | peak MiB | ours/PyTorch |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rat = {(x["net"], x["peer"]): x["ratio"] for x in ratios}
    rows = []
    for r in runs:
        res = r.get("result") or {}
        ph = res.get("phases", {})
        phases = " / ".join(fmt(ph[k]["seconds"] * 1e3, ".1f") for k in ("forward", "loss", "backward", "optimizer")
                            if k in ph)
        peak = res.get("peak_memory_bytes")
        status = r["status"] + (f" ({res['graph']})" if res.get("graph", "off") not in ("off", False) else "")
        lines.append(f"| {r['net']} | {r['runner']} | {status} | {fmt(step_ms(r))} | "
                     f"{fmt(res['step_seconds_min'] * 1e3 if 'step_seconds_min' in res else None)} | "
                     f"{phases or '-'} | {fmt(peak / MIB if peak else None, '.0f')} | "
                     f"{fmt(rat.get((r['net'], r['runner'])))} |")
        rows.append({"net": r["net"], "runner": r["runner"], "status": r["status"], "step_ms": step_ms(r),
                     "peak_memory_bytes": peak, "device": res.get("device")})
    errors = [r for r in runs if r.get("error")]
    for r in errors:
        lines += ["", f"{r['net']} {r['runner']}: {r['status']}", "```", r["error"].strip()[-1200:], "```"]
    by_net = {}
    for x in ratios:
        by_net.setdefault(x["net"], []).append(f"{x['peer'].replace('torch_', '')} {x['ratio']:.2f}")
    ok = sum(r["status"] == "ok" for r in runs)
    detail = f"{ok}/{len(runs)} runs ok"
    if by_net:
        detail += "; ours/PyTorch: " + "; ".join(f"{n}: {', '.join(v)}" for n, v in by_net.items())
    write_outputs(base + ".md", base + ".json", base + ".detail", "\n".join(lines) + "\n",
                  {"notes": notes, "rows": rows, "ratios": ratios}, detail)


# ------------------------------------------------------------------ memory

def memory(a):
    runs = [json.loads(line) for line in open(a.runs) if line.strip()]
    peak = {(r["net"], r["runner"]): (r.get("result") or {}).get("peak_memory_bytes") for r in runs}
    nets = list(dict.fromkeys(r["net"] for r in runs))
    peers = [p for p in ("torch_channels_last", "torch_nchw", "torch_compile") if any(k[1] == p for k in peak)]
    lines = ["Peak bytes held by tensors over the run (weights, optimiser state, activations, workspaces): "
             "ours from the caching allocator (step_profile's peak_memory_bytes), PyTorch's "
             "torch.cuda.max_memory_allocated(); on the CPU (dry run) PyTorch's is not measured.", "",
             "| " + " | ".join(["net", "ours MiB"] + [f"{p} MiB" for p in peers] + [f"ours/{p}" for p in peers]) + " |",
             "| --- " * (2 + 2 * len(peers)) + "|"]
    data, parts = [], []
    for n in nets:
        o = peak.get((n, "ours"))
        cells, ratios = [], []
        for p in peers:
            t = peak.get((n, p))
            cells.append(fmt(t / MIB if t else None, ".0f"))
            ratios.append(fmt(o / t if o and t else None))
            data.append({"net": n, "peer": p, "ours_bytes": o, "peer_bytes": t, "ratio": o / t if o and t else None})
        lines.append("| " + " | ".join([n, fmt(o / MIB if o else None, '.0f')] + cells + ratios) + " |")
        parts.append(f"{n} {fmt(o / MIB if o else None, '.0f')} MiB" +
                     (f" (x{ratios[0]} of {peers[0]})" if peers and ratios[0] != "-" else ""))
    if not data:
        data = [{"net": n, "ours_bytes": peak.get((n, "ours"))} for n in nets]
    # Ours in bf16 against ours in fp32 (same net, batch and size).
    half = [(n, peak.get((n, "ours")), peak.get((n, "ours_bf16"))) for n in nets if peak.get((n, "ours_bf16"))]
    if half:
        lines += ["", "| net | ours fp32 MiB | ours bf16 MiB | bf16/fp32 (target <= 0.6) |", "| --- | --- | --- | --- |"]
        for n, f, h in half:
            r = h / f if f else None
            lines.append(f"| {n} | {fmt(f / MIB if f else None, '.0f')} | {h / MIB:.0f} | {fmt(r)} |")
            data.append({"net": n, "peer": "ours_bf16", "ours_bytes": f, "peer_bytes": h, "ratio": r})
            parts.append(f"{n} bf16 x{fmt(r)} of fp32")
    write_outputs(a.md, a.json, a.detail, "\n".join(lines) + "\n", data, "ours: " + "; ".join(parts))
    return 0 if any(peak.get((n, "ours")) for n in nets) else 1


# ------------------------------------------------------------------ precision

DICE_KEYS = ("dice_ncr", "dice_ed", "dice_et", "mean")


def last_validation(path):
    """The last epoch line of a train log.jsonl that carries a validation."""
    last = None
    for line in open(path):
        line = line.strip()
        if line:
            rec = json.loads(line)
            if isinstance(rec.get("val"), dict):
                last = rec
    return last


def precision(a):
    runs = {"fp32": last_validation(a.fp32), "bf16": last_validation(a.bf16)}
    lines = ["Validation Dice (%) of the last validation of two `lkaseg train` runs that differ only in "
             "--precision (same data, split, seed and steps); target: bf16 within 1 point of fp32 on the mean.", "",
             "| precision | epoch | " + " | ".join(DICE_KEYS) + " |", "| --- " * (2 + len(DICE_KEYS)) + "|"]
    data = {}
    for p, rec in runs.items():
        if rec is None:
            lines.append(f"| {p} | - | " + " | ".join("-" for _ in DICE_KEYS) + " |")
            continue
        v = rec["val"]
        data[p] = {"epoch": rec.get("epoch"), **{k: v.get(k) for k in DICE_KEYS}}
        lines.append(f"| {p} | {rec.get('epoch')} | " +
                     " | ".join(fmt(100 * v[k] if v.get(k) is not None else None) for k in DICE_KEYS) + " |")
    missing = [p for p in runs if runs[p] is None]
    if missing:
        detail = "no validation in the " + " and ".join(missing) + " run's log"
        gap, ok = None, False
    else:
        gap = 100 * (data["bf16"]["mean"] - data["fp32"]["mean"])
        ok = gap >= -1.0
        detail = (f"mean Dice fp32 {100 * data['fp32']['mean']:.2f}, bf16 {100 * data['bf16']['mean']:.2f} "
                  f"({gap:+.2f} points): target {'met' if ok else 'NOT met'}")
    lines += ["", detail]
    data["gap_points"], data["target_met"] = gap, ok
    write_outputs(a.md, a.json, a.detail, "\n".join(lines) + "\n", data, detail)
    return 0 if ok else 1


# ------------------------------------------------------------------ bench

def bench(a):
    try:
        doc = json.load(open(a.bench))
    except (OSError, ValueError) as e:
        write_outputs(a.md, a.json, a.detail, f"No benchmark JSON: {e}\n", None, f"no benchmark JSON ({e})")
        return 1
    rows, errors = {}, []
    for b in doc.get("benchmarks", []):
        parts = b["name"].split("/")
        if parts and parts[-1] in ("manual_time", "real_time"):
            parts = parts[:-1]
        if len(parts) < 3:
            continue
        case, variant, shape = parts[0], parts[1], "/".join(parts[2:])
        if b.get("error_occurred"):
            errors.append(f"{b['name']}: {b.get('error_message', '?')}")
            continue
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}.get(b.get("time_unit", "ns"), 1e-6)
        rows.setdefault((case, shape), {})[variant] = {"ms": b["real_time"] * scale,
                                                       "bps": b.get("bytes_per_second"),
                                                       "val_err": b.get("val_err")}
    bw = a.copy_bw if a.copy_bw > 0 else None
    lines = [f"Copy bandwidth measured here: {fmt(bw / 1e9 if bw else None, '.0f')} GB/s (bytes read + written); "
             "ours/cuDNN above 1: ours is slower.", "",
             "| case | shape | ours ms | cuDNN ms | ours/cuDNN | % of copy BW (ours, else cuDNN) | validation error |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    data, ratios = [], []
    for (case, shape), v in rows.items():
        f, c = v.get("fast"), v.get("cudnn")
        r = f["ms"] / c["ms"] if f and c else None
        if r:
            ratios.append(r)
        main = f or c  # ours, or cuDNN where it is the only implementation
        pct = 100 * main["bps"] / bw if main and main.get("bps") and bw else None
        err = max((x["val_err"] for x in v.values() if x.get("val_err") is not None), default=None)
        lines.append(f"| {case} | {shape} | {fmt(f['ms'] if f else None, '.3f')} | {fmt(c['ms'] if c else None, '.3f')} "
                     f"| {fmt(r)} | {fmt(pct, '.0f')} | {fmt(err, '.1e')} |")
        data.append({"case": case, "shape": shape, "ours_ms": f["ms"] if f else None,
                     "cudnn_ms": c["ms"] if c else None, "ratio": r, "pct_copy_bw": pct, "val_err": err})
    if errors:
        lines += ["", "Rows with an error (validation failed or an exception):", "```", *errors, "```"]
    detail = f"{len(rows)} cases, {len(errors)} errors"
    if ratios:
        detail += (f"; ours/cuDNN median {statistics.median(ratios):.2f} over {len(ratios)} pairs, "
                   f"ours faster in {sum(r < 1 for r in ratios)}")
    write_outputs(a.md, a.json, a.detail, "\n".join(lines) + "\n",
                  {"copy_bytes_per_second": bw, "rows": data, "errors": errors}, detail)
    return 1 if errors else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    b = sub.add_parser("bench")
    b.add_argument("bench")
    b.add_argument("--copy-bw", type=float, default=0)
    m = sub.add_parser("memory")
    m.add_argument("runs")
    pr = sub.add_parser("precision")
    pr.add_argument("--fp32", required=True)
    pr.add_argument("--bf16", required=True)
    for p in (b, m, pr):
        p.add_argument("--md", required=True)
        p.add_argument("--json", required=True)
        p.add_argument("--detail", required=True)
    a = ap.parse_args(argv)
    return {"bench": bench, "memory": memory, "precision": precision}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
