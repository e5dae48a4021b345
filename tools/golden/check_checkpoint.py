#!/usr/bin/env python3
"""Check that a checkpoint written by lkaseg loads into the PyTorch reference,
or write a PyTorch-made checkpoint for lkaseg to load.

Read direction (default)
------------------------
    check_checkpoint.py PATH --net resse_lka_unet --widths 8,16,32,64 [config options]

PATH is a plain safetensors state dict: keys are the state_dict names of
docs/MODELS.md without any prefix (``enc.0.res.conv1.weight``, ...,
``<bn>.num_batches_tracked``), float tensors F32 or F64, num_batches_tracked
I32 or I64 of shape [] (our C++ side writes I32).  The file is parsed by
st_io.py (no dependency on the ``safetensors`` package; header entries may
come in any order), the named reference model is built and
``load_state_dict(strict=True)`` is called after converting dtypes.  Any
missing or unexpected key, shape mismatch or float/integer mix-up is listed
and the exit status is 1.  Then a forward in eval mode (running statistics)
runs on a fixed input and the main logits' checksums are printed.

Write direction
---------------
    check_checkpoint.py --write PATH --net unet --widths 8,16,32,64 [--seed 0]

builds the reference model from torch.manual_seed(seed), makes its batch
norms non-trivial (weight = 1 + 0.1 N(0,1), bias = 0.1 N(0,1), then --warm
train-mode forwards on randn inputs (batch 2), which move running_mean/var and
num_batches_tracked), writes its state_dict (F32, num_batches_tracked I64 by
default) in state_dict order, and prints the same checksums as the read
direction would, so a loader on the other side can compare.

The fixed input (``--input``)
-----------------------------
    randn (default): torch.randn(batch, in_channels, size, size) from
                     torch.Generator().manual_seed(--input-seed), float32
    sin:             x[k] = (float) sin(0.1 * k), k the C-order flat index;
                     reproducible without PyTorch
``--dump FILE`` additionally writes input.x and the eval-mode outputs
(out.main, out.aux0..) as F32 safetensors, for an element-wise comparison.

Checksums of the main logits y (N, classes, H, W), computed in float64:
    sum     = sum_k y_k
    abs_sum = sum_k |y_k|
    sq_sum  = sum_k y_k^2
    wsum    = sum_k ((k mod 7) - 3) * y_k     (k = C-order flat index; catches permutations)

Exit status: 0 ok, 1 the checkpoint does not match the model, 2 unreadable
file or bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_models import DEFAULT_WIDTHS, NETS, NetConfig, build_model, parse_widths  # noqa: E402
from st_io import read_safetensors, write_safetensors  # noqa: E402


class CheckpointMismatch(Exception):
    pass


def config_from_args(args) -> NetConfig:
    return NetConfig(in_channels=args.in_channels, classes=args.classes, widths=args.widths,
                     deep_supervision=not args.no_deep_supervision, se_ratio=args.se_ratio,
                     se_min_hidden=args.se_min_hidden, lka_dilation=args.lka_dilation)


def to_state_dict(model: torch.nn.Module, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Match file tensors against the model's state_dict; convert dtypes.
    Raises CheckpointMismatch listing every problem."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    for k in missing:
        problems.append(f"missing key: {k} (expected shape {list(expected[k].shape)})")
    for k in unexpected:
        problems.append(f"unexpected key: {k} (shape {list(tensors[k].shape)})")
    out = {}
    for k, ref in expected.items():
        if k not in tensors:
            continue
        a = tensors[k]
        if tuple(a.shape) != tuple(ref.shape):
            problems.append(f"shape mismatch: {k}: file {list(a.shape)}, model {list(ref.shape)}")
            continue
        if ref.dtype.is_floating_point:
            if a.dtype.kind != "f":
                problems.append(f"dtype mismatch: {k}: file {a.dtype}, model expects a float tensor")
                continue
            if not np.isfinite(a).all():
                problems.append(f"non-finite values: {k}")
                continue
        else:
            if a.dtype.kind not in "iu":
                problems.append(f"dtype mismatch: {k}: file {a.dtype}, model expects an integer tensor")
                continue
        out[k] = torch.from_numpy(np.array(a, copy=True)).to(ref.dtype)
    if problems:
        raise CheckpointMismatch("\n".join(problems))
    return out


def fixed_input(kind: str, seed: int, batch: int, channels: int, size: int) -> torch.Tensor:
    shape = (batch, channels, size, size)
    if kind == "randn":
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    if kind == "sin":
        k = torch.arange(math.prod(shape), dtype=torch.float64)
        return torch.sin(0.1 * k).to(torch.float32).reshape(shape)
    raise ValueError(f"unknown input kind {kind!r}")


def checksums(y: torch.Tensor) -> dict[str, float]:
    y = y.detach().double().reshape(-1)
    k = torch.arange(y.numel(), dtype=torch.int64)
    w = ((k % 7) - 3).double()
    return {"sum": y.sum().item(), "abs_sum": y.abs().sum().item(), "sq_sum": (y * y).sum().item(),
            "wsum": (w * y).sum().item()}


def eval_forward(model, x, dtype):
    m = model.to(dtype).eval()
    with torch.no_grad():
        return m(x.to(dtype))


def report(model, args, dump: Path | None) -> None:
    x = fixed_input(args.input, args.input_seed, args.batch, model.cfg.in_channels, args.size)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    outs = eval_forward(model, x, dtype)
    cs = checksums(outs[0])
    print(f"input: {args.input} (seed {args.input_seed}), shape {list(x.shape)}; eval mode, {args.dtype}")
    print(f"main logits {list(outs[0].shape)}: " + "  ".join(f"{k} {v:.10e}" for k, v in cs.items()))
    if dump is not None:
        tensors = {"input.x": np.array(x.numpy().astype("<f4"), order="C")}
        names = ["out.main"] + [f"out.aux{i}" for i in range(len(outs) - 1)]
        for n, o in zip(names, outs):
            tensors[n] = np.array(o.detach().float().numpy().astype("<f4"), order="C")
        meta = {"net": model.NAME, "widths": ",".join(map(str, model.cfg.widths)), "mode": "eval",
                "compute_dtype": args.dtype, "input": args.input, "input_seed": str(args.input_seed)}
        meta.update({f"checksum_{k}": repr(v) for k, v in cs.items()})
        write_safetensors(dump, tensors, meta)
        print(f"wrote {dump}")


def cmd_check(args) -> int:
    try:
        meta, tensors = read_safetensors(Path(args.path), strict_order=False, require_metadata=False)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: cannot read {args.path}: {e}", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    model = build_model(args.net, cfg)
    try:
        sd = to_state_dict(model, tensors)
        model.load_state_dict(sd, strict=True)
    except CheckpointMismatch as e:
        n = str(e).count("\n") + 1
        print(f"error: {args.path} does not match {args.net} with widths "
              f"{','.join(map(str, cfg.widths))} ({n} problem{'s' if n > 1 else ''}):\n{e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # load_state_dict's own complaints, should the checks above miss one
        print(f"error: load_state_dict(strict=True) failed for {args.path}:\n{e}", file=sys.stderr)
        return 1
    nbt = sorted({int(v) for k, v in sd.items() if k.endswith("num_batches_tracked")})
    dtypes = sorted({str(a.dtype) for a in tensors.values()})
    print(f"ok: {args.path}: {len(tensors)} tensors ({', '.join(dtypes)}) load into {args.net} "
          f"(strict), {sum(p.numel() for p in model.parameters())} params; "
          f"num_batches_tracked values {nbt}; metadata {meta if meta else '{}'}")
    report(model, args, Path(args.dump) if args.dump else None)
    return 0


def cmd_write(args) -> int:
    cfg = config_from_args(args)
    torch.manual_seed(args.seed)
    model = build_model(args.net, cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
        model.train()
        for _ in range(args.warm):
            model(torch.randn(2, cfg.in_channels, args.size, args.size))
    int_dt = "<i8" if args.nbt_dtype == "i64" else "<i4"
    tensors = {}
    for k, v in model.state_dict().items():
        a = v.detach().numpy()
        a = a.astype("<f4") if v.dtype.is_floating_point else a.astype(int_dt)
        tensors[k] = np.array(a, order="C")
    meta = {"net": args.net, "widths": ",".join(map(str, cfg.widths)), "in_channels": str(cfg.in_channels),
            "classes": str(cfg.classes), "deep_supervision": "1" if cfg.deep_supervision else "0",
            "se_ratio": str(cfg.se_ratio), "se_min_hidden": str(cfg.se_min_hidden),
            "lka_dilation": str(cfg.lka_dilation), "seed": str(args.seed), "warm": str(args.warm),
            "writer": "tools/golden/check_checkpoint.py --write", "torch": torch.__version__}
    nbytes = write_safetensors(Path(args.write), tensors, meta)
    print(f"wrote {args.write}: {len(tensors)} tensors, {nbytes} bytes, {args.net} widths "
          f"{','.join(map(str, cfg.widths))}, seed {args.seed}, num_batches_tracked {args.warm} ({args.nbt_dtype})")
    # Checksums of the model exactly as stored (F32 weights).
    model.load_state_dict({k: torch.from_numpy(a).to(model.state_dict()[k].dtype) for k, a in tensors.items()})
    report(model, args, Path(args.dump) if args.dump else None)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", help="checkpoint to check")
    ap.add_argument("--write", metavar="PATH", help="write a checkpoint from a seeded reference model instead")
    ap.add_argument("--net", default="resse_lka_unet", choices=list(NETS))
    ap.add_argument("--widths", type=parse_widths, default=DEFAULT_WIDTHS,
                    help="comma-separated level widths (default 32,64,128,256,512)")
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--no-deep-supervision", action="store_true")
    ap.add_argument("--se-ratio", type=int, default=16)
    ap.add_argument("--se-min-hidden", type=int, default=4)
    ap.add_argument("--lka-dilation", type=int, default=1)
    ap.add_argument("--size", type=int, default=64, help="input height = width (multiple of 2^(L-1))")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--input", choices=["randn", "sin"], default="randn")
    ap.add_argument("--input-seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="compute dtype of the checksum forward")
    ap.add_argument("--dump", metavar="FILE", help="also write input.x and the outputs to FILE")
    ap.add_argument("--seed", type=int, default=0, help="--write: model seed")
    ap.add_argument("--warm", type=int, default=30,
                    help="--write: train-mode forwards (batch 2, randn input) before writing")
    ap.add_argument("--nbt-dtype", choices=["i64", "i32"], default="i64",
                    help="--write: dtype of num_batches_tracked")
    args = ap.parse_args(argv)

    if (args.path is None) == (args.write is None):
        ap.print_usage(sys.stderr)
        print("error: give either a PATH to check or --write PATH", file=sys.stderr)
        return 2
    if args.size % (2 ** (len(args.widths) - 1)):
        print(f"error: --size {args.size} is not a multiple of 2^{len(args.widths) - 1}", file=sys.stderr)
        return 2
    try:
        config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    return cmd_write(args) if args.write else cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
