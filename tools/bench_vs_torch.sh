#!/usr/bin/env bash
# lkaseg's CPU step against PyTorch's, back to back, in one invocation.
#
# For each case (a training step of each network; an inference pass over a
# 155-slice case) it runs build/bench/step_profile and tools/bench/torch_peer.py
# (PyTorch NCHW and channels_last) interleaved, --reps times, rotating the
# order each round, with the same network, widths, batch, size and threads;
# then prints a table of median seconds and ratios (ours / PyTorch) and writes
# every run plus the summary as JSON. The load average before each run is
# recorded: on a shared machine, compare ratios, not seconds.
#
#   tools/bench_vs_torch.sh                        # paper settings: widths 32-512, batch 8, 128x128, 2 threads
#   tools/bench_vs_torch.sh --reps 5 --out r.json
#   tools/bench_vs_torch.sh --widths 16,32,64,128 --nets unet --no-inference
#   tools/bench_vs_torch.sh --device cuda          # peer on the GPU, ours with --backend cuda
#   tools/bench_vs_torch.sh --layouts channels_last # skip the (slow) NCHW peer
#
# Needs a build (tools/build.sh) and a Python with torch: --python, else
# $LKASEG_BENCH_PYTHON, else .venv-bench/bin/python, else python3
# (python3 -m venv .venv-bench && .venv-bench/bin/pip install torch).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

reps=3 steps=5 warmup=2 threads=2 batch=8 size=128 infer_batch=16
widths=32,64,128,256,512
nets="resse_lka_unet unet attention_unet"
infer_net=resse_lka_unet
inference=1 device=cpu layouts="channels_last nchw"
build="${LKASEG_BUILD_DIR:-$root/build}"
out="bench_vs_torch.json"
py="${LKASEG_BENCH_PYTHON:-}"
extra_ours=() extra_peer=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --infer-batch) infer_batch="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --widths) widths="$2"; shift 2 ;;
    --nets) nets="$2"; shift 2 ;;
    --infer-net) infer_net="$2"; shift 2 ;;
    --no-inference) inference=0; shift ;;
    --layouts) layouts="${2//,/ }"; shift 2 ;;     # the peer's layouts: channels_last, nchw
    --device) device="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --python) py="$2"; shift 2 ;;
    --ours-arg) extra_ours+=("$2"); shift 2 ;;   # passed through to step_profile
    --peer-arg) extra_peer+=("$2"); shift 2 ;;   # passed through to torch_peer.py
    -h|--help) usage 0 ;;
    *) echo "bench_vs_torch: unknown option $1" >&2; usage 2 ;;
  esac
done

if [[ -z "$py" ]]; then
  if [[ -x "$root/.venv-bench/bin/python" ]]; then py="$root/.venv-bench/bin/python"; else py=python3; fi
fi
sp="$build/bench/step_profile"
[[ -x "$sp" ]] || { echo "bench_vs_torch: $sp not found: build first (tools/build.sh)" >&2; exit 2; }
"$py" -c 'import torch' 2>/dev/null || {
  echo "bench_vs_torch: $py has no torch (python3 -m venv .venv-bench && .venv-bench/bin/pip install torch, or --python)" >&2
  exit 2
}

runs="$(mktemp)"
trap 'rm -f "$runs"' EXIT
common=(--widths "$widths" --size "$size" --threads "$threads" --steps "$steps" --warmup "$warmup")

# One run: appends {"case", "runner", "rep", "loadavg", "result"} to $runs.
run_one() {  # case runner rep mode net
  local case="$1" runner="$2" rep="$3" mode="$4" net="$5" b line load
  b=$batch; [[ $mode == inference ]] && b=$infer_batch
  local args=(--net "$net" --batch "$b" "${common[@]}")
  [[ $mode == inference ]] && args+=(--inference)
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  case "$runner" in
    ours) line="$(OMP_NUM_THREADS="$threads" "$sp" --backend "$device" "${args[@]}" "${extra_ours[@]}")" ;;
    torch_nchw) line="$(OMP_NUM_THREADS="$threads" "$py" "$root/tools/bench/torch_peer.py" --device "$device" --layout nchw "${args[@]}" "${extra_peer[@]}")" ;;
    torch_cl) line="$(OMP_NUM_THREADS="$threads" "$py" "$root/tools/bench/torch_peer.py" --device "$device" --layout channels_last "${args[@]}" "${extra_peer[@]}")" ;;
  esac
  printf '{"case": "%s", "runner": "%s", "rep": %d, "loadavg": "%s", "result": %s}\n' \
    "$case" "$runner" "$rep" "$load" "$line" >>"$runs"
  printf '  %-26s %-10s rep %d  %8.3f s  (load %s)\n' "$case" "$runner" "$rep" \
    "$(printf '%s' "$line" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["step_seconds"])')" "$load" >&2
}

cases=()
for n in $nets; do cases+=("train:$n"); done
((inference)) && cases+=("inference:$infer_net")
runners=(ours)
for l in $layouts; do
  case "$l" in
    channels_last) runners+=(torch_cl) ;;
    nchw) runners+=(torch_nchw) ;;
    *) echo "bench_vs_torch: unknown layout $l (channels_last, nchw)" >&2; exit 2 ;;
  esac
done
echo "bench_vs_torch: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads; widths $widths, batch $batch (inference $infer_batch), ${size}x${size}; $reps reps x $steps steps" >&2
for ((r = 0; r < reps; ++r)); do
  for c in "${cases[@]}"; do
    mode="${c%%:*}" net="${c#*:}"
    for ((k = 0; k < ${#runners[@]}; ++k)); do  # rotate the order every round
      run_one "$mode $net" "${runners[$(((k + r) % ${#runners[@]}))]}" "$r" "$mode" "$net"
    done
  done
done

"$py" - "$runs" "$out" <<'EOF'
import json, statistics, sys, datetime, platform
runs = [json.loads(l) for l in open(sys.argv[1])]
cases = list(dict.fromkeys(r["case"] for r in runs))
def med(case, runner):
    v = [r["result"]["step_seconds"] for r in runs if r["case"] == case and r["runner"] == runner]
    return statistics.median(v) if v else None
def paired(case, peer):
    # ours / peer within each round (adjacent runs), then the median over rounds
    by = {}
    for r in runs:
        if r["case"] == case: by.setdefault(r["rep"], {})[r["runner"]] = r["result"]["step_seconds"]
    v = [d["ours"] / d[peer] for d in by.values() if "ours" in d and peer in d]
    return statistics.median(v) if v else None
rows = []
for c in cases:
    o, cl, nc = med(c, "ours"), med(c, "torch_cl"), med(c, "torch_nchw")
    rows.append({"case": c, "ours_s": o, "torch_channels_last_s": cl, "torch_nchw_s": nc,
                 "ratio_vs_channels_last": paired(c, "torch_cl"), "ratio_vs_nchw": paired(c, "torch_nchw")})
print(f"{'case':28s} {'ours s':>8s} {'torch cl s':>10s} {'torch nchw s':>12s} {'ours/cl':>8s} {'ours/nchw':>9s}")
for r in rows:
    f = lambda x, w, p=3: f"{x:{w}.{p}f}" if x is not None else " " * (w - 1) + "-"
    print(f"{r['case']:28s} {f(r['ours_s'], 8)} {f(r['torch_channels_last_s'], 10)} {f(r['torch_nchw_s'], 12)} "
          f"{f(r['ratio_vs_channels_last'], 8, 2)} {f(r['ratio_vs_nchw'], 9, 2)}")
loads = [float(r["loadavg"].split()[0]) for r in runs]
print(f"(medians over rounds; ratios: median of per-round ratios; load average {min(loads):.2f}-{max(loads):.2f})")
meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")}
json.dump({"meta": meta, "summary": rows, "runs": runs}, open(sys.argv[2], "w"), indent=1)
print(f"wrote {sys.argv[2]}")
EOF
