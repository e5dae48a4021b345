#!/usr/bin/env python3
"""Generate whole-network golden fixtures for lkaseg from PyTorch (CPU, float64).

For each of the three networks of docs/MODELS.md (resse_lka_unet, unet,
attention_unet) this writes ``tests/golden/models/<net>.safetensors`` for the
small configuration widths 8,16,32,64 (L = 4), in_channels 4, classes 4, deep
supervision on, batch 2, 64 x 64 input.  The C++ side loads the initial
weights, runs its own forward/backward/AdamW in F32 and compares.

How the numbers are made
------------------------
    torch.manual_seed(1234); x = randn(2, 4, 64, 64)            (float32; same x for every net)
    y = blob_labels(2, 64, seed 1235)                           (deterministic, own generator)
    torch.manual_seed(INIT_SEEDS[net]); model = build_model(net) (PyTorch default init, float32)

The reference computation converts a copy of the model and x to float64 and
runs in train mode (batch statistics, running stats updated with momentum
0.1); results are rounded to F32 for storage, except the scalar losses, which
stay F64.  ``loss`` is ``reference_models.deep_supervision_loss`` with class
weights [0.1, 1, 1, 1], lambdas [1.0, 0.4, 0.3, 0.2], adaptive Tversky alpha
clamped to [0.2, 0.8] from detached counts, eps 1e-5.

Kink margin.  The loss is piecewise smooth: if an F32 re-computation puts a
ReLU input that the float64 reference has at, say, +3e-7 on the other side of
0 (or swaps a near-tied max-pool argmax), that element's gradient is switched
off and the parameter gradients upstream move by ~1e-3 relative.  F32 forward
errors reach ~1e-5 on this net size, so the model-init seed of each net is the
first one whose float64 forward has every ReLU input at |x| >= 1e-5 and every
max-pool window's top-2 gap >= 1e-5 (``--search-seeds``; recorded as
``init_seed`` and ``kink_margin`` in the metadata).  That makes out.*, loss,
grad.*, after.*, step1.param.* and steps.loss[0..1] robust to F32 rounding.
The later AdamW steps cannot be protected that way (``steps_kink_margins`` in
the metadata: the forwards of steps 2..10 come within 1e-7..1e-6 of a kink),
and Adam turns a flipped kink into O(lr) parameter differences: PyTorch's own
F32 run of the 10 steps differs from the float64 reference by up to ~1e-3 in
steps.loss[9] and ~5e-3 in steps.param.*.  Compare those loosely (or run the
C++ side in F64, which agrees tightly).

Tensors in each file (file format: see st_io.py)
------------------------------------------------
    input.x                      F32 [2,4,64,64]  standard normal
    input.y                      I32 [2,64,64]    labels 0..3 (0 bg, 1 ET, 2 ED, 3 NCR), every
                                                  class present in every sample
    param.<key>                  every state_dict entry BEFORE any step: float tensors F32,
                                 <bn>.num_batches_tracked I64 with shape [] (value 0)
    out.main / out.aux0..2       F32 logits of the train-mode forward, [2,4,64,64],
                                 [2,4,32,32], [2,4,16,16], [2,4,8,8]
    loss                         F64 [1]  total loss of that forward
    loss.ce, loss.tversky        F64 [4]  per output (main, aux0, aux1, aux2), before lambda
    loss.alpha                   F64 [4,4] detached Tversky alpha, per output x class
    grad.<param>                 F32, d loss / d param for every parameter (loss.backward())
    after.<buffer>               every BN buffer after that one train-mode forward
                                 (running_mean/var F32, num_batches_tracked I64 = 1)
    steps.loss                   F64 [10] loss of each of 10 AdamW steps (computed in that
                                 step's forward, before its update); steps.loss[0] == loss
    step1.param.<key>            F32, a few parameters after the FIRST update
    steps.param.<key>            F32, the same parameters after the 10th update
    steps.buffer.<key>           F32, the running stats of one BN after the 10 forwards

The 10 steps start again from the initial weights and buffers and use the
same batch every step: forward (train mode), loss, zero_grad, backward,
torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-5, weight_decay 0.01,
decay applied to every parameter incl. BN affine and biases).step(), in float64.

Some gradients are exactly zero in exact arithmetic (stored as ~1e-18): a bias
followed, through linear ops only, by a train-mode batch norm -- enc.i.lka.dw7.bias
(dw7 -> pw -> bn) and dec.j.att.{w_g,w_x,psi}.bias.  F32 gives ~1e-9 noise
there: compare gradients with an absolute tolerance scaled to the net's
largest gradient, not per tensor.

Usage
-----
    python3 tools/golden/make_model_fixtures.py               # (re)generate all three
    python3 tools/golden/make_model_fixtures.py --gradcheck   # also finite-difference checks
    python3 tools/golden/make_model_fixtures.py --check       # re-read files, recompute, compare
    python3 tools/golden/make_model_fixtures.py unet          # just one net
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_models import (CLASS_WEIGHT, LAMBDAS, NETS, NetConfig, build_model,  # noqa: E402
                              count_params, deep_supervision_loss)
from st_io import read_safetensors, write_safetensors  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "golden" / "models"

WIDTHS = (8, 16, 32, 64)
IN_CHANNELS = 4
CLASSES = 4
BATCH = 2
SIZE = 64
INPUT_SEED = 1234
# Model-initialisation seed per net: the first seed >= 0 whose float64 forward
# has a kink margin of at least MIN_KINK_MARGIN (found with --search-seeds;
# PyTorch's default init draws from torch.manual_seed(seed)).
INIT_SEEDS = {"resse_lka_unet": 257, "unet": 13, "attention_unet": 13}
MIN_KINK_MARGIN = 1e-5
STEPS = 10
LR = 1e-3
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-5
WEIGHT_DECAY = 0.01
ALPHA_MIN, ALPHA_MAX, TV_EPS = 0.2, 0.8, 1e-5

MAX_FILE_BYTES = 2_500_000

OUT_NAMES = ["out.main", "out.aux0", "out.aux1", "out.aux2"]


def small_config() -> NetConfig:
    return NetConfig(in_channels=IN_CHANNELS, classes=CLASSES, widths=WIDTHS, deep_supervision=True)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def blob_labels(n: int, size: int, seed: int) -> torch.Tensor:
    """Blob-like BraTS-style label maps (I32 [n, size, size]).

    Each sample holds two lesions; a lesion is a wobbly disc of edema (2)
    around a ring of enhancing tumour (1) around a necrotic core (3):
    d(p) = |p - c| / (r (1 + a sin(k theta + phi))), class 2 where d < 1,
    1 where d < 0.6, 3 where d < 0.3.  Lesion parameters come from a
    torch.Generator seeded with ``seed``; every class occurs in every sample.
    """
    g = torch.Generator().manual_seed(seed)

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64).item()

    coords = torch.arange(size, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    out = torch.zeros(n, size, size, dtype=torch.int32)
    for b in range(n):
        for lesion in range(2):
            r = size * (u(0.16, 0.24) if lesion == 0 else u(0.09, 0.13))
            cy, cx = u(0.3, 0.7) * size, (u(0.25, 0.45) if lesion == 0 else u(0.62, 0.78)) * size
            amp, k, phi = u(0.05, 0.2), int(u(2, 5)), u(0, 2 * math.pi)
            dy, dx = yy - cy, xx - cx
            theta = torch.atan2(dy, dx)
            d = torch.sqrt(dy * dy + dx * dx) / (r * (1 + amp * torch.sin(k * theta + phi)))
            lab = out[b]
            lab[d < 1.0] = 2
            lab[d < 0.6] = 1
            lab[d < 0.3] = 3
        present = torch.unique(out[b]).tolist()
        if present != list(range(CLASSES)):
            raise RuntimeError(f"sample {b}: classes present {present}")
    return out


def make_inputs(seed: int = INPUT_SEED):
    torch.manual_seed(seed)
    x = torch.randn(BATCH, IN_CHANNELS, SIZE, SIZE)
    y = blob_labels(BATCH, SIZE, seed + 1)
    return x, y


def make_model(net: str, init_seed: int):
    torch.manual_seed(init_seed)
    return build_model(net, small_config())


def search_init_seed(net: str, x, start: int = 0, count: int = 20000,
                     margin: float = MIN_KINK_MARGIN) -> tuple[int, float, str]:
    """First init seed in [start, start + count) whose float64 forward on x has
    a kink margin >= ``margin``; returns (seed, its margin, where)."""
    best = (-1.0, -1, "")
    for seed in range(start, start + count):
        mg, where = kink_margin(make_model(net, seed), x)
        if mg >= margin:
            return seed, mg, where
        best = max(best, (mg, seed, where))
    raise RuntimeError(f"{net}: no init seed in [{start}, {start + count}) reaches margin {margin:g}; "
                       f"best {best[0]:.2e} at seed {best[1]}")


# ---------------------------------------------------------------------------
# Reference computations (float64)
# ---------------------------------------------------------------------------

def loss_of(outputs, y, frozen_alphas=None, return_parts=False):
    return deep_supervision_loss(outputs, y, class_weight=CLASS_WEIGHT, lambdas=LAMBDAS,
                                 alpha_min=ALPHA_MIN, alpha_max=ALPHA_MAX, eps=TV_EPS,
                                 frozen_alphas=frozen_alphas, return_parts=return_parts)


def forward_backward(model32, x, y):
    """One train-mode forward + backward in float64 on a copy of ``model32``."""
    m = copy.deepcopy(model32).double().train()
    outs = m(x.double())
    loss, parts = loss_of(outs, y, return_parts=True)
    m.zero_grad(set_to_none=True)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    after = {n: b.detach().clone() for n, b in m.named_buffers()}
    return m, outs, loss, parts, grads, after


def adamw_steps(model32, x, y, steps: int):
    """``steps`` AdamW steps in float64 on the same batch; returns (losses,
    trained model, kink margin of each step's forward, state after step 1)."""
    m = copy.deepcopy(model32).double().train()
    opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=BETAS, eps=ADAM_EPS,
                            weight_decay=WEIGHT_DECAY, foreach=False)
    xd = x.double()
    losses, margins = [], []
    after_first = None
    with KinkPattern() as kp:
        for step in range(steps):
            loss, _ = kp.run(lambda: loss_of(m(xd), y))
            margins.append(kp.margin()[0])
            losses.append(loss.item())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step == 0:
                after_first = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return losses, m, margins, after_first


def representative_params(net: str, model) -> list[str]:
    """Parameters stored after the 10 steps: enc.0's first conv, the deepest
    level's first weight, one BN weight and bias, the decoder's transposed conv,
    the heads, and a few net-specific ones."""
    L = len(model.cfg.widths)
    names = [n for n, _ in model.named_parameters()]
    first = lambda prefix: next(n for n in names if n.startswith(prefix))  # noqa: E731
    bn = first("enc.0.res.bn1." if net == "resse_lka_unet" else "enc.0.bn1.")
    keep = [first("enc.0."), first(f"enc.{L - 1}."), bn, bn.replace("weight", "bias"),
            "dec.0.up.weight", f"dec.{L - 2}.conv2.weight", "head.weight", "head.bias", "aux.2.weight"]
    if net == "resse_lka_unet":
        keep += ["enc.0.res.se.fc1.weight", "enc.0.lka.dw7.weight", "enc.1.lka.dw5.bias", "ce.b3.weight",
                 "ce.bn.weight"]
    if net == "attention_unet":
        keep += ["dec.0.att.w_g.weight", "dec.2.att.psi.weight", "dec.2.att.bn_psi.weight"]
    for n in keep:
        assert n in names, n
    return keep


def c_order(a: np.ndarray) -> np.ndarray:
    """C-contiguous copy that keeps 0-d arrays 0-d (np.ascontiguousarray would make them [1])."""
    return np.array(a, order="C", copy=True)


def f32(t: torch.Tensor) -> np.ndarray:
    return c_order(t.detach().cpu().numpy().astype("<f4"))


def f64(t) -> np.ndarray:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return c_order(a.astype("<f8"))


def state_array(name: str, t: torch.Tensor) -> np.ndarray:
    """State-dict entry -> stored array: floats F32, num_batches_tracked I64 (shape [])."""
    if t.dtype.is_floating_point:
        return f32(t)
    assert name.endswith("num_batches_tracked"), name
    return c_order(t.detach().cpu().numpy().astype("<i8"))


# ---------------------------------------------------------------------------
# Finite-difference gradient check
# ---------------------------------------------------------------------------

class KinkPattern:
    """Context manager that records the loss's piecewise-linear "pattern":
    every ReLU's sign mask and every max-pool argmax, by wrapping
    torch.nn.functional.relu / max_pool2d (which reference_models calls) while
    active.  Between two parameter values with the same pattern the loss is
    smooth, so a central difference there is a valid check of autograd.

    It also records the *kink margin* of the evaluation: the smallest |x| over
    all ReLU inputs and the smallest gap between the largest and second
    largest value of a max-pool window (windows whose two largest values are
    both exactly 0, i.e. ReLU zeros, are ignored: their gradient is 0 either
    way).  An F32 re-computation whose rounding errors stay below the margin
    takes the same branches as the float64 reference."""

    def __enter__(self):
        self._relu, self._pool = F.relu, F.max_pool2d
        self.trace: list[torch.Tensor] = []
        self.margins: list[tuple[float, str]] = []

        def relu(x, inplace=False):
            self.trace.append(x > 0)
            self.margins.append((x.detach().abs().min().item(), f"relu#{len(self.trace) - 1}"))
            return self._relu(x)

        def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
            out, idx = self._pool(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                                  return_indices=True)
            self.trace.append(idx)
            win = F.unfold(x.detach().flatten(0, 1)[:, None], kernel_size, dilation, padding,
                           stride or kernel_size)                      # [N*C, k*k, windows]
            top2 = win.topk(2, dim=1).values
            gap = top2[:, 0] - top2[:, 1]
            gap = gap[~((top2[:, 0] == 0) & (top2[:, 1] == 0))]
            if gap.numel():
                self.margins.append((gap.min().item(), f"max_pool#{len(self.trace) - 1}"))
            return (out, idx) if return_indices else out

        F.relu, F.max_pool2d = relu, max_pool2d
        return self

    def __exit__(self, *exc):
        F.relu, F.max_pool2d = self._relu, self._pool
        return False

    def run(self, fn):
        """fn() -> value; returns (value, pattern of that evaluation)."""
        self.trace = []
        self.margins = []
        v = fn()
        return v, self.trace

    def margin(self) -> tuple[float, str]:
        """(smallest margin, where) of the last evaluation."""
        return min(self.margins)


def kink_margin(model32, x) -> tuple[float, str]:
    """Kink margin of one float64 train-mode forward of a copy of ``model32``."""
    m = copy.deepcopy(model32).double().train()
    with torch.no_grad(), KinkPattern() as kp:
        kp.run(lambda: m(x.double()))
        return kp.margin()


def same_pattern(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


def gradcheck_model(net: str, model32, x, y, n_elems: int = 3, hs=(1e-6, 1e-7, 1e-8, 1e-9),
                    rtol: float = 1e-5, roundoff: float = 3e-15) -> bool:
    """Central differences of the loss w.r.t. a few elements of several
    parameters (float64, train mode, Tversky alpha frozen to the values of the
    unperturbed forward) against autograd.

    The loss is only piecewise smooth (ReLU, max pooling): a step of h flips
    the pre-activations lying within ~h of a kink, and then the difference
    quotient is off (at h = 1e-6, enc.0 weights show relative errors ~1e-3).
    So for each element the largest h in ``hs`` is used for which the ReLU
    masks and max-pool argmaxes at theta +- h equal those at theta (the loss
    is smooth on that segment); there autograd must agree within
    roundoff / h + rtol * |autograd|.  An element whose pattern changes even
    at the smallest h is reported and skipped.  Returns True if none disagree.
    """
    m = copy.deepcopy(model32).double().train()
    xd = x.double()
    outs = m(xd)
    loss, parts = loss_of(outs, y, return_parts=True)
    alphas = parts["alpha"]
    m.zero_grad(set_to_none=True)
    loss.backward()
    params = dict(m.named_parameters())
    L = len(m.cfg.widths)
    names = [n for n in params if n.startswith("enc.0.")][:1] + [
        f"enc.{L - 1}.{'res.conv2' if net == 'resse_lka_unet' else 'conv2'}.weight",
        "dec.0.up.weight", "dec.1.up.bias", f"dec.{L - 2}.bn1.weight", "head.bias", "aux.1.weight"]
    if net == "resse_lka_unet":
        names += ["enc.0.res.se.fc1.weight", "enc.2.res.se.fc2.bias", "enc.0.lka.dw7.weight",
                  "enc.1.lka.dw5.weight", "enc.2.lka.bn.bias", "ce.b3.weight", "ce.b2.weight",
                  "enc.3.res.skip_conv.weight"]
    if net == "attention_unet":
        names += ["enc.1.conv1.weight", "dec.1.att.w_g.weight", "dec.0.att.psi.weight",
                  "dec.2.att.bn_x.weight", "dec.2.att.bn_psi.weight"]
    gen = torch.Generator().manual_seed(7)
    n_ok = n_bad = n_skip = 0

    def f():
        return loss_of(m(xd), y, frozen_alphas=alphas).item()

    with torch.no_grad(), KinkPattern() as kp:
        _, base = kp.run(f)
        for name in names:
            p = params[name]
            idx = torch.randperm(p.numel(), generator=gen)[:n_elems].tolist()
            for i in idx:
                flat = p.view(-1)
                orig = flat[i].item()
                ana = p.grad.view(-1)[i].item()
                used = None
                for h in hs:
                    flat[i] = orig + h
                    lp, pat_p = kp.run(f)
                    flat[i] = orig - h
                    lm, pat_m = kp.run(f)
                    flat[i] = orig
                    if same_pattern(base, pat_p) and same_pattern(base, pat_m):
                        used = (h, (lp - lm) / (2 * h))
                        break
                if used is None:
                    n_skip += 1
                    print(f"    {name}[{i}]: autograd {ana:+.10e}  kink within h={hs[-1]:g}, skipped")
                    continue
                h, num = used
                err = abs(num - ana)
                ok = err <= roundoff / h + rtol * abs(ana)
                n_ok += ok
                n_bad += not ok
                print(f"    {name}[{i}]: autograd {ana:+.10e}  numeric {num:+.10e} (h={h:g})  "
                      f"abs err {err:.1e}{'' if ok else '   <-- MISMATCH'}")
    print(f"  gradcheck: {n_ok} agree, {n_bad} disagree, {n_skip} skipped (kink) "
          f"[|numeric - autograd| <= {roundoff:g}/h + {rtol:g} |autograd|]")
    return n_bad == 0


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def build_fixture(net: str, input_seed: int, init_seed: int, steps: int, min_margin: float):
    x, y = make_inputs(input_seed)
    model32 = make_model(net, init_seed)
    init = {k: v.detach().clone() for k, v in model32.state_dict().items()}
    margin, where = kink_margin(model32, x)
    if margin < min_margin:
        raise RuntimeError(f"{net}: init seed {init_seed} gives kink margin {margin:.2e} at {where} "
                           f"< {min_margin:g}; run --search-seeds and update INIT_SEEDS")

    _, outs, loss, parts, grads, after = forward_backward(model32, x, y)
    losses, trained, step_margins, first = adamw_steps(model32, x, y, steps)
    # The steps start from the initial state: step 0's loss is the same forward.
    assert abs(losses[0] - loss.item()) <= 1e-12 * max(1.0, abs(loss.item())), (losses[0], loss.item())
    # Nothing above may have touched the float32 model.
    for k, v in model32.state_dict().items():
        assert torch.equal(v, init[k]), k

    tensors: dict[str, np.ndarray] = {
        "input.x": f32(x),
        "input.y": c_order(y.numpy().astype("<i4")),
    }
    for k, v in init.items():
        tensors[f"param.{k}"] = state_array(k, v)
    for name, o in zip(OUT_NAMES, outs):
        tensors[name] = f32(o)
    tensors["loss"] = f64(loss.reshape(1))
    tensors["loss.ce"] = f64(torch.stack(parts["ce"]))
    tensors["loss.tversky"] = f64(torch.stack(parts["tversky"]))
    tensors["loss.alpha"] = f64(torch.stack(parts["alpha"]))
    for k, g in grads.items():
        tensors[f"grad.{k}"] = f32(g)
    for k, b in after.items():
        tensors[f"after.{k}"] = state_array(k, b)
    tensors["steps.loss"] = f64(losses)
    tstate = trained.state_dict()
    keep = representative_params(net, model32)
    for k in keep:
        tensors[f"step1.param.{k}"] = f32(first[k])
    for k in keep:
        tensors[f"steps.param.{k}"] = f32(tstate[k])
    bn = keep[2].rsplit(".", 1)[0]
    for b in ("running_mean", "running_var"):
        tensors[f"steps.buffer.{bn}.{b}"] = f32(tstate[f"{bn}.{b}"])

    cfg = model32.cfg
    metadata = {
        "net": net,
        "widths": ",".join(map(str, cfg.widths)),
        "in_channels": str(cfg.in_channels),
        "classes": str(cfg.classes),
        "deep_supervision": "1",
        "se_ratio": str(cfg.se_ratio),
        "se_min_hidden": str(cfg.se_min_hidden),
        "lka_dilation": str(cfg.lka_dilation),
        "batch": str(BATCH),
        "size": str(SIZE),
        "seed": str(input_seed),
        "label_seed": str(input_seed + 1),
        "init_seed": str(init_seed),
        "kink_margin": f"{margin:.3e}",
        "steps_kink_margins": ",".join(f"{v:.1e}" for v in step_margins),
        "params": str(count_params(model32)),
        "bn_momentum": "0.1",
        "bn_eps": "1e-05",
        "class_weight": ",".join(map(str, CLASS_WEIGHT)),
        "lambdas": ",".join(map(str, LAMBDAS)),
        "alpha_min": str(ALPHA_MIN),
        "alpha_max": str(ALPHA_MAX),
        "tversky_eps": str(TV_EPS),
        "optimizer": "AdamW",
        "lr": str(LR),
        "betas": ",".join(map(str, BETAS)),
        "adam_eps": str(ADAM_EPS),
        "weight_decay": str(WEIGHT_DECAY),
        "steps": str(steps),
        "compute_dtype": "float64",
        "num_batches_tracked_dtype": "I64",
        "torch": torch.__version__,
    }
    return metadata, tensors, losses, step_margins


def describe(path: Path, tensors: dict[str, np.ndarray]) -> str:
    groups: dict[str, int] = {}
    for k in tensors:
        g = k.split(".")[0] if not k.startswith("step") else ".".join(k.split(".")[:2])
        groups[g] = groups.get(g, 0) + 1
    return f"{path.name}: {path.stat().st_size} B, " + ", ".join(f"{g} x{n}" for g, n in groups.items())


def check_file(path: Path) -> None:
    """Re-read one fixture, rebuild the model from its param.* tensors and
    recompute forward, loss and gradients in float64; compare with the file."""
    meta, t = read_safetensors(path)
    net = meta["net"]
    model = build_model(net, small_config())
    sd = model.state_dict()
    keys = {k[len("param."):] for k in t if k.startswith("param.")}
    if keys != set(sd):
        raise ValueError(f"{path}: param keys differ from {net}'s state_dict: "
                         f"missing {sorted(set(sd) - keys)}, unexpected {sorted(keys - set(sd))}")
    model.load_state_dict({k: torch.from_numpy(t[f"param.{k}"]).to(sd[k].dtype) for k in sd}, strict=True)
    x = torch.from_numpy(t["input.x"])
    y = torch.from_numpy(t["input.y"])
    _, outs, loss, _, grads, after = forward_backward(model, x, y)

    def close(name, ref, got, rtol=1e-5, atol=1e-6):
        ref = torch.from_numpy(np.asarray(ref, dtype=np.float64))
        got = got.detach().double().reshape(ref.shape)
        if not torch.allclose(got, ref, rtol=rtol, atol=atol):
            raise ValueError(f"{path}: {name} differs, max abs {(got - ref).abs().max().item():.3e}")

    for name, o in zip(OUT_NAMES, outs):
        close(name, t[name], o)
    close("loss", t["loss"], loss, rtol=1e-12, atol=0)
    for k, g in grads.items():
        close(f"grad.{k}", t[f"grad.{k}"], g)
    for k, b in after.items():
        if b.dtype.is_floating_point:
            close(f"after.{k}", t[f"after.{k}"], b)
        elif int(t[f"after.{k}"]) != int(b):
            raise ValueError(f"{path}: after.{k} differs")
    if not t["steps.loss"][-1] < t["steps.loss"][0]:
        raise ValueError(f"{path}: loss did not decrease over the steps")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    print(f"ok  {describe(path, t)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output directory")
    ap.add_argument("--seed", type=int, default=INPUT_SEED, help="seed of the inputs")
    ap.add_argument("--init-seed", type=int, default=None,
                    help="model-init seed for every net (default: INIT_SEEDS per net)")
    ap.add_argument("--min-margin", type=float, default=MIN_KINK_MARGIN,
                    help="required kink margin of the initial forward")
    ap.add_argument("--search-seeds", action="store_true",
                    help="only search the first init seed per net that reaches --min-margin, and print it")
    ap.add_argument("--check", action="store_true", help="only re-read, recompute and compare existing files")
    ap.add_argument("--gradcheck", action="store_true",
                    help="also verify a few gradient elements per net by central differences")
    ap.add_argument("nets", nargs="*", help=f"subset of {', '.join(NETS)} (default: all)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # deterministic reductions
    nets = args.nets or list(NETS)
    unknown = set(nets) - set(NETS)
    if unknown:
        print(f"unknown net(s): {sorted(unknown)}", file=sys.stderr)
        return 2

    if args.check:
        for net in nets:
            check_file(args.out / f"{net}.safetensors")
        return 0

    if args.search_seeds:
        x, _ = make_inputs(args.seed)
        for net in nets:
            seed, mg, where = search_init_seed(net, x, margin=args.min_margin)
            print(f'    "{net}": {seed},   # kink margin {mg:.2e} ({where})')
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for net in nets:
        init_seed = args.init_seed if args.init_seed is not None else INIT_SEEDS[net]
        metadata, tensors, losses, step_margins = build_fixture(net, args.seed, init_seed, STEPS,
                                                                args.min_margin)
        path = args.out / f"{net}.safetensors"
        nbytes = write_safetensors(path, tensors, metadata)

        meta_back, back = read_safetensors(path)
        assert meta_back == metadata and list(back) == list(tensors), net
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and back[k].tobytes() == v.tobytes(), k
        assert nbytes == path.stat().st_size
        if nbytes > MAX_FILE_BYTES:
            raise RuntimeError(f"{net}: {nbytes} bytes exceeds {MAX_FILE_BYTES}")

        print(describe(path, tensors))
        print(f"  params {metadata['params']}, init seed {init_seed}, kink margin {metadata['kink_margin']}, "
              f"loss {tensors['loss'][0]:.10f}")
        print("  steps.loss " + " ".join(f"{v:.6f}" for v in losses))
        print("  steps kink margins " + " ".join(f"{v:.1e}" for v in step_margins))
        if not losses[-1] < losses[0]:
            raise RuntimeError(f"{net}: loss did not decrease over {STEPS} AdamW steps")
        if args.gradcheck:
            x, y = make_inputs(args.seed)
            if not gradcheck_model(net, make_model(net, init_seed), x, y):
                raise RuntimeError(f"{net}: finite-difference check failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
