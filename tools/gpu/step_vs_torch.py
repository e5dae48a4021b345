#!/usr/bin/env python3
"""The step_vs_torch stage of tools/gpu_check.sh: a training step, ours vs PyTorch.

Runs bench/step_profile (--backend cuda) and tools/bench/torch_peer.py
(--device cuda) one after the other, same network, widths, batch, size and
steps, TF32 off on both sides, most valuable first:

  1. each network: ours, PyTorch channels_last, PyTorch NCHW (eager)
  2. the paper's network: PyTorch with cuDNN's deterministic algorithms only
     (as ours by default); ours --precision bf16 against PyTorch bf16
     autocast when step_profile's --help offers bf16; torch.compile
     (channels_last: it compiles for a minute or more); ours --graph on when
     the --help lists --graph (its JSON says whether it really captured).

Each run has its own time limit inside the stage's deadline (--deadline,
seconds since the epoch); a run that fails or runs out of time is recorded
and the next one runs. After every run, WORK/step_runs.jsonl (one line per
run; also copied to $OUT when set) and WORK/step_vs_torch.{md,json,detail}
are rewritten, so a stage killed at its deadline still leaves its table.

--dry-run (no GPU): ours on the CPU backend at a tiny shape, and the peer on
the CPU at the same shape if the peer's Python imports torch (else a note).
The peer's Python: $LKASEG_TORCH_PYTHON, else this interpreter; it runs with
LD_LIBRARY_PATH as $GC_TORCH_LD_LIBRARY_PATH when set (gpu_check.sh: the path
before it put the toolkit's and the unpacked packages' libraries first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import summarize  # noqa: E402

PAPER_NET = "resse_lka_unet"
NETS = [PAPER_NET, "unet", "attention_unet"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the build folder (bench/step_profile)")
    ap.add_argument("--work", required=True, help="where the runs and tables go")
    ap.add_argument("--deadline", type=float, default=0, help="seconds since the epoch (0: 10 minutes from now)")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    return ap.parse_args(argv)


class Stage:
    def __init__(self, a):
        self.a = a
        self.deadline = a.deadline or time.time() + 600
        self.runs_path = os.path.join(a.work, "step_runs.jsonl")
        self.runs = []
        self.notes = []
        self.python = os.environ.get("LKASEG_TORCH_PYTHON") or sys.executable
        self.sp = os.path.join(a.build, "bench", "step_profile")
        self.peer = os.path.join(ROOT, "tools", "bench", "torch_peer.py")
        if a.dry_run:
            self.backend, self.device = "cpu", "cpu"
            self.shape = ["--widths", "4,8,16,32", "--batch", "2", "--size", "32", "--steps", "1", "--warmup", "1",
                          "--threads", "2"]
        else:
            self.backend, self.device = "cuda", "cuda"
            self.shape = ["--widths", "32,64,128,256,512", "--batch", "8", "--size", "128",
                          "--steps", str(a.steps), "--warmup", str(a.warmup)]

    def left(self):
        return self.deadline - time.time() - 3

    def run(self, net, runner, cmd, limit, env=None):
        """Runs one command (its stdout: one JSON line), records the outcome."""
        t = min(limit, self.left())
        rec = {"net": net, "runner": runner, "cmd": " ".join(cmd)}
        if t < 5:
            rec.update(status="no time left", result=None)
        else:
            t0 = time.time()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=t, env=env)
                rec["wall_s"] = round(time.time() - t0, 1)
                line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
                if p.returncode == 0 and line.startswith("{"):
                    rec.update(status="ok", result=json.loads(line))
                else:
                    rec.update(status=f"failed (exit {p.returncode})", result=None,
                               error=(p.stderr or p.stdout)[-1500:])
            except subprocess.TimeoutExpired as e:
                err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
                rec.update(status=f"timeout ({t:.0f} s)", result=None, wall_s=round(time.time() - t0, 1),
                           error=err[-1500:])
        print(f"{net:16s} {runner:22s} {rec['status']:18s} "
              f"{rec['result']['step_seconds'] * 1e3 if rec['result'] else float('nan'):9.2f} ms", flush=True)
        self.runs.append(rec)
        self.write()
        return rec

    def ours(self, net, runner, extra=(), limit=60):
        return self.run(net, runner, [self.sp, "--backend", self.backend, "--net", net, *self.shape, *extra], limit)

    def torch(self, net, runner, extra=(), limit=60):
        return self.run(net, runner, [self.python, self.peer, "--device", self.device, "--net", net,
                                      *self.shape, *extra], limit, env=torch_env())

    def write(self):
        tmp = self.runs_path + ".tmp"
        with open(tmp, "w") as f:
            for r in self.runs:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.runs_path)
        out = os.environ.get("OUT")
        if out and os.path.isdir(out):  # the device tool's: back even if the call is cut off mid-stage
            shutil.copy(self.runs_path, os.path.join(out, "step_runs.jsonl"))
        summarize.write_step_tables(self.runs, self.notes, os.path.join(self.a.work, "step_vs_torch"))


def torch_env():
    env = dict(os.environ)
    if "GC_TORCH_LD_LIBRARY_PATH" in env:
        env["LD_LIBRARY_PATH"] = env["GC_TORCH_LD_LIBRARY_PATH"]
    return env


def torch_importable(python):
    try:
        p = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                           text=True, timeout=90, env=torch_env())
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main(argv=None) -> int:
    a = parse_args(argv)
    st = Stage(a)
    if not os.access(st.sp, os.X_OK):
        st.notes.append(f"{st.sp} not built")
        st.write()
        return 1
    help_text = subprocess.run([st.sp, "--help"], capture_output=True, text=True).stdout
    tv = torch_importable(st.python)
    if tv is None:
        st.notes.append(f"{st.python} cannot import torch: the PyTorch rows are skipped")
    else:
        st.notes.append(f"PyTorch {tv} ({st.python})")
    if a.dry_run:
        st.notes.append("dry run: CPU backend, widths 4,8,16,32, batch 2, 32x32, 1 step")
        for net in NETS:
            st.ours(net, "ours")
        if tv:
            st.torch(PAPER_NET, "torch_channels_last", ["--layout", "channels_last", "--threads", "2"], limit=120)
        st.write()
        return 0 if all(r["status"] == "ok" for r in st.runs) else 1

    st.notes.append("batch 8, 128x128, widths 32-512, TF32 off both sides; ours: deterministic cuDNN algorithms "
                    "(lkaseg's default), PyTorch: cudnn.benchmark unless a row says deterministic")
    for net in NETS:
        st.ours(net, "ours")
        if tv:
            st.torch(net, "torch_channels_last", ["--layout", "channels_last"])
            st.torch(net, "torch_nchw", ["--layout", "nchw"])
    if tv:
        st.torch(PAPER_NET, "torch_channels_last_det", ["--layout", "channels_last", "--deterministic"])
    if "bf16" in help_text:
        st.ours(PAPER_NET, "ours_bf16", ["--precision", "bf16"])
        if tv:
            st.torch(PAPER_NET, "torch_bf16", ["--layout", "channels_last", "--precision", "bf16"])
    if tv:
        st.torch(PAPER_NET, "torch_compile", ["--layout", "channels_last", "--compile"], limit=240)
    if "--graph" in help_text:
        st.ours(PAPER_NET, "ours_graph", ["--graph", "on"])
    st.write()
    return 0 if all(r["status"] == "ok" for r in st.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
