#!/usr/bin/env python3
"""The PyTorch peer of bench/step_profile: the same step, one JSON line.

Runs the training step of the PyTorch reference network
(tools/golden/reference_models.py, the same layers, loss and optimiser as
lkaseg) with the settings step_profile takes, so the two can be timed back to
back (tools/bench_vs_torch.sh):

  forward -> deep-supervision loss (weighted CE + adaptive Tversky on every
  output) -> zero_grad + backward -> AdamW (lr 1e-4, betas 0.9/0.999,
  eps 1e-5, weight decay 0.01), on a fixed random batch already on the device.

--inference times the forward pass (eval mode, no gradients) over one
155-slice case in batches of --batch, as step_profile --inference does.

  python3 tools/bench/torch_peer.py --net resse_lka_unet --widths 32,64,128,256,512 \\
      --batch 8 --size 128 --threads 2 --steps 5 --warmup 3 --layout channels_last
  python3 tools/bench/torch_peer.py --device cuda --channels-last [--compile] [--tf32] \\
      [--deterministic] [--precision bf16]

Prints {"peer": "torch", ..., "step_seconds": median, "step_seconds_min": ...,
"phases": {"forward": {"seconds": ...}, ...}} on stdout. On a CPU the clock is
time.perf_counter; on CUDA, events on the current stream (the step's
seconds span its first to its last event), cudnn.benchmark on unless
--no-cudnn-benchmark, TF32 off unless --tf32 (so the arithmetic is fp32 like
ours), --deterministic for cuDNN's deterministic algorithms only (as lkaseg's
default), --precision bf16 for autocast to bfloat16. "peak_memory_bytes" is
torch.cuda.max_memory_allocated() over the run (weights, optimiser state,
activations, workspaces: what step_profile's field counts on our caching
allocator), null on the CPU. Optional: never needed by the tests. Needs torch
(tools/bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "golden"))

SLICES_PER_CASE = 155


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="resse_lka_unet", help="resse_lka_unet, unet or attention_unet")
    ap.add_argument("--widths", default="32,64,128,256,512")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, help="image side")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--layout", default="channels_last", choices=["nchw", "channels_last"])
    ap.add_argument("--channels-last", dest="layout", action="store_const", const="channels_last",
                    help="same as --layout channels_last")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: forward and loss under torch.autocast(bfloat16)")
    ap.add_argument("--deterministic", action="store_true", help="CUDA: cuDNN deterministic algorithms only")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--inference", action="store_true", help="forward over one 155-slice case instead")
    ap.add_argument("--tf32", action="store_true", help="CUDA: allow TF32 in convolutions and matmuls")
    ap.add_argument("--no-cudnn-benchmark", action="store_true", help="CUDA: cudnn.benchmark off")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (default mode)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.steps < 1 or a.warmup < 0 or a.batch < 1 or a.size < 1:
        ap.error("--steps >= 1, --warmup >= 0, --batch >= 1, --size >= 1")
    return a


class HostClock:
    """Marks on the host clock (the CPU runs synchronously)."""

    def mark(self):
        return time.perf_counter()

    @staticmethod
    def seconds(a, b):
        return b - a

    def sync(self):
        pass


class CudaClock:
    """CUDA events on the current stream: device time between marks."""

    def __init__(self, torch):
        self.torch = torch

    def mark(self):
        e = self.torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    @staticmethod
    def seconds(a, b):
        return a.elapsed_time(b) / 1e3

    def sync(self):
        self.torch.cuda.synchronize()


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads > 0:
        # Before torch starts its pools: one OpenMP pool of this size.
        os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch
    import reference_models as rm

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (inter-op pool started)
    torch.manual_seed(a.seed)

    dev = torch.device(a.device)
    if a.device == "cuda":
        if not torch.cuda.is_available():
            print("torch_peer: --device cuda but torch sees no CUDA device", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
        torch.backends.cudnn.deterministic = a.deterministic
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        clock = CudaClock(torch)
        device_name = torch.cuda.get_device_name(dev)
    else:
        clock = HostClock()
        device_name = cpu_name()
    mf = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format

    widths = rm.parse_widths(a.widths)
    model = rm.build_model(a.net, rm.NetConfig(widths=widths)).to(dev).to(memory_format=mf)
    fwd = torch.compile(model) if a.compile else model

    g = torch.Generator().manual_seed(a.seed + 1)
    out = {
        "peer": "torch", "torch": torch.__version__, "backend": a.device, "device": device_name,
        "net": a.net, "widths": list(widths), "batch": a.batch, "size": a.size,
        "threads": torch.get_num_threads(), "layout": a.layout, "precision": a.precision,
        "tf32": a.tf32, "compile": a.compile, "steps": a.steps, "warmup": a.warmup,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    if a.device == "cuda":
        out["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        out["deterministic"] = a.deterministic
    autocast = (torch.autocast(device_type=a.device, dtype=torch.bfloat16) if a.precision == "bf16"
                else contextlib.nullcontext())
    seconds, phase_seconds = [], []

    if a.inference:
        phase_names = ["forward"]
        host = torch.randn(SLICES_PER_CASE, 4, a.size, a.size, generator=g)
        model.eval()
        with torch.inference_mode():
            for s in range(a.warmup + a.steps):
                clock.sync()
                m0 = clock.mark()
                for b0 in range(0, SLICES_PER_CASE, a.batch):
                    x = host[b0:b0 + a.batch].to(dev).contiguous(memory_format=mf)
                    with autocast:
                        fwd(x)
                m1 = clock.mark()
                clock.sync()
                if s >= a.warmup:
                    seconds.append(clock.seconds(m0, m1))
                    phase_seconds.append([clock.seconds(m0, m1)])
        out["mode"] = "inference"
        out["case_slices"] = SLICES_PER_CASE
    else:
        phase_names = ["forward", "loss", "backward", "optimizer"]
        images = torch.randn(a.batch, 4, a.size, a.size, generator=g).to(dev).contiguous(memory_format=mf)
        labels = torch.randint(0, 4, (a.batch, a.size, a.size), generator=g, dtype=torch.int32).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-5, weight_decay=0.01)
        model.train()
        for s in range(a.warmup + a.steps):
            clock.sync()
            marks = [clock.mark()]
            with autocast:
                outs = fwd(images)
                marks.append(clock.mark())
                loss = rm.deep_supervision_loss(outs, labels)
            marks.append(clock.mark())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            marks.append(clock.mark())
            opt.step()
            marks.append(clock.mark())
            clock.sync()
            del outs, loss
            if s >= a.warmup:
                seconds.append(clock.seconds(marks[0], marks[-1]))
                phase_seconds.append([clock.seconds(marks[i], marks[i + 1]) for i in range(4)])
        out["mode"] = "train"

    out["step_seconds"] = statistics.median(seconds)
    out["step_seconds_min"] = min(seconds)
    out["phases"] = {name: {"seconds": statistics.median(p[i] for p in phase_seconds)}
                     for i, name in enumerate(phase_names)}
    if a.device == "cuda":
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(dev)
        out["peak_memory_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    else:
        out["peak_memory_bytes"] = None
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
