#!/usr/bin/env python3
"""Generate golden per-op fixtures for lkaseg from PyTorch (CPU, float64).

Every case is written to ``tests/golden/ops/<case>.safetensors``; the C++ test
suite loads these files and compares its forward and backward passes against
them.

File format (a minimal subset of safetensors, written by hand in st_io.py)
--------------------------------------------------------------------------
    bytes [0, 8)        N, the header length: unsigned 64-bit little-endian
    bytes [8, 8+N)      header: UTF-8 JSON, right-padded with ASCII spaces so
                        that 8+N is a multiple of 8 (the data section is
                        8-byte aligned)
    bytes [8+N, EOF)    data section: raw little-endian, C-contiguous tensor
                        bytes, packed back to back in the order the tensors
                        appear in the header

    header JSON:
      {"__metadata__": {"op": "<op>", "seed": "<int>", "<param>": "<value>", ...},
       "<tensor>": {"dtype": "F64" | "I32", "shape": [d0, d1, ...],
                    "data_offsets": [begin, end]},   # relative to data start
       ...}

All float tensors are F64, integer label maps are I32. Scalars (losses) have
shape [1]. Op parameters are stored in ``__metadata__`` as decimal strings.

Tensor naming inside a case
---------------------------
    <input>        the op's inputs (names per op, see the case builders below)
    out            the forward output
    <extra>        extra outputs for some ops (batch-norm running stats after
                   the update, the detached Tversky alpha)
    grad_out       random upstream gradient, standard normal, shape of ``out``
    grad_<input>   d/d<input> of sum(out * grad_out), via torch.autograd, for
                   every differentiable input

Usage
-----
    python3 tools/golden/make_op_fixtures.py              # (re)generate all
    python3 tools/golden/make_op_fixtures.py --check      # validate files only
    python3 tools/golden/make_op_fixtures.py --gradcheck  # also verify the
                                                          # gradients numerically
"""

from __future__ import annotations

import argparse
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

DTYPE = torch.float64
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "golden" / "ops"

# Limits from the fixture policy: every file small, the whole set small.
MAX_FILE_BYTES = 100_000
MAX_TOTAL_BYTES = 1_500_000

# The safetensors writer/reader (and the F64/I32 conversion) live in the
# shared module st_io.py next to this script.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from st_io import read_safetensors, to_numpy, write_safetensors  # noqa: E402


# ---------------------------------------------------------------------------
# Case description
# ---------------------------------------------------------------------------

# forward(inputs, frozen) -> (out, extras). ``frozen`` is None for the real
# run; for --gradcheck it is the extras of the real run so that quantities the
# op treats as constants (the detached Tversky alpha) stay fixed while inputs
# are perturbed numerically.
Forward = Callable[[dict[str, torch.Tensor], "dict[str, torch.Tensor] | None"],
                   tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class Case:
    name: str
    op: str
    params: dict[str, str]
    inputs: dict[str, torch.Tensor]  # in file order
    diff: list[str]                  # differentiable inputs (get grad_<name>)
    forward: Forward
    extra_meta: dict[str, str] = field(default_factory=dict)


def case_seed(name: str) -> int:
    """Stable per-case seed derived from the case name (the name the case was
    first generated under: see SEED_NAMES)."""
    return zlib.crc32(SEED_NAMES.get(name, name).encode("utf-8")) & 0x7FFFFFFF


# Cases renamed after their fixtures were generated (one spelling per op:
# depthwise_conv2d, conv_transpose2d_<k>x<k>_stride<s>), new name -> old name.
# Their seed stays that of the old name, so regenerating gives the same numbers.
SEED_NAMES: dict[str, str] = {
    "conv2d_3x3_pad1": "conv2d_dense3x3_pad1",
    "conv2d_3x3_groups2": "conv2d_groups2_3x3_pad0",
    "depthwise_conv2d_5x5_pad2": "conv2d_dw5x5_pad2",
    "depthwise_conv2d_7x7_dil3_pad9": "conv2d_dw7x7_dil3_pad9",
    "depthwise_conv2d_7x7_stride2_pad3": "conv2d_dw7x7_stride2_pad3",
    "conv_transpose2d_2x2_stride2": "conv_transpose2d_k2_s2_p0",
    "conv_transpose2d_3x3_stride2_pad1": "conv_transpose2d_k3_s2_p1",
}


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=DTYPE)


def fmt(v: object) -> str:
    """Parameter value -> decimal string (Python repr: 0.1, 1e-05, 2)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


# Registry: each builder is called after torch.manual_seed(case_seed(name)),
# draws its inputs from the global generator and returns a Case.
BUILDERS: list[tuple[str, Callable[[str], Case]]] = []


def case(name: str):
    def register(fn: Callable[[str], Case]):
        BUILDERS.append((name, fn))
        return fn
    return register


def random_labels(shape: tuple[int, ...], num_classes: int, require_all: bool) -> torch.Tensor:
    """Uniform random class labels; redraw (deterministically) until every
    class in [0, num_classes) occurs when ``require_all``."""
    for _ in range(1000):
        t = torch.randint(0, num_classes, shape, dtype=torch.int32)
        if not require_all or torch.unique(t).numel() == num_classes:
            return t
    raise RuntimeError("could not draw labels covering all classes")


# ---------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------

def conv2d_case(name, n, cin, cout, h, w, k, stride=1, padding=0, dilation=1, groups=1,
                op="conv2d") -> Case:
    inputs = {
        "x": randn(n, cin, h, w),
        "weight": randn(cout, cin // groups, k, k),
        "bias": randn(cout),
    }

    def fwd(t, frozen):
        out = F.conv2d(t["x"], t["weight"], t["bias"], stride=stride, padding=padding,
                       dilation=dilation, groups=groups)
        return out, {}

    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return Case(name, op, {k_: fmt(v) for k_, v in params.items()}, inputs,
                ["x", "weight", "bias"], fwd)


@case("conv2d_3x3_pad1")
def _(name):
    return conv2d_case(name, n=2, cin=3, cout=5, h=13, w=11, k=3, padding=1)


@case("conv2d_1x1")
def _(name):
    return conv2d_case(name, n=2, cin=6, cout=4, h=7, w=9, k=1)


# Depthwise (groups == C_in == C_out): F.conv2d, written as op depthwise_conv2d
# (the op table's entry; lk::conv2d with groups = C runs it).
@case("depthwise_conv2d_5x5_pad2")
def _(name):
    return conv2d_case(name, n=2, cin=6, cout=6, h=12, w=10, k=5, padding=2, groups=6, op="depthwise_conv2d")


@case("depthwise_conv2d_7x7_dil3_pad9")
def _(name):
    return conv2d_case(name, n=1, cin=4, cout=4, h=15, w=13, k=7, padding=9, dilation=3, groups=4,
                       op="depthwise_conv2d")


@case("conv2d_3x3_stride2_pad1")
def _(name):
    return conv2d_case(name, n=1, cin=4, cout=3, h=13, w=11, k=3, stride=2, padding=1)


@case("conv2d_3x3_groups2")
def _(name):
    return conv2d_case(name, n=2, cin=4, cout=6, h=9, w=8, k=3, groups=2)


@case("depthwise_conv2d_7x7_stride2_pad3")
def _(name):
    return conv2d_case(name, n=2, cin=3, cout=3, h=11, w=13, k=7, stride=2, padding=3, groups=3,
                       op="depthwise_conv2d")


# ---------------------------------------------------------------------------
# conv_transpose2d (output_padding 0, dilation 1, groups 1)
# ---------------------------------------------------------------------------

def conv_transpose2d_case(name, n, cin, cout, h, w, k, stride, padding) -> Case:
    inputs = {
        "x": randn(n, cin, h, w),
        "weight": randn(cin, cout, k, k),
        "bias": randn(cout),
    }

    def fwd(t, frozen):
        return F.conv_transpose2d(t["x"], t["weight"], t["bias"], stride=stride, padding=padding), {}

    return Case(name, "conv_transpose2d", {"stride": fmt(stride), "padding": fmt(padding)},
                inputs, ["x", "weight", "bias"], fwd)


@case("conv_transpose2d_2x2_stride2")
def _(name):
    return conv_transpose2d_case(name, n=2, cin=6, cout=3, h=5, w=7, k=2, stride=2, padding=0)


@case("conv_transpose2d_3x3_stride2_pad1")
def _(name):
    return conv_transpose2d_case(name, n=1, cin=3, cout=4, h=6, w=5, k=3, stride=2, padding=1)


# ---------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def batch_norm_case(name, n, c, h, w, training: bool) -> Case:
    inputs = {
        "x": randn(n, c, h, w),
        "weight": randn(c),
        "bias": randn(c),
        "running_mean": randn(c) * 0.1,
        "running_var": 0.5 + torch.rand(c, dtype=DTYPE),  # uniform [0.5, 1.5)
    }

    def fwd(t, frozen):
        # F.batch_norm updates the running buffers in place (training mode:
        # mean <- (1-m)*mean + m*batch_mean, var <- (1-m)*var + m*unbiased
        # batch var); work on copies so the stored inputs are the "before".
        rm = t["running_mean"].detach().clone()
        rv = t["running_var"].detach().clone()
        out = F.batch_norm(t["x"], rm, rv, t["weight"], t["bias"], training=training,
                           momentum=BN_MOMENTUM, eps=BN_EPS)
        return out, {"running_mean_after": rm, "running_var_after": rv}

    params = {"training": fmt(training), "momentum": fmt(BN_MOMENTUM), "eps": fmt(BN_EPS)}
    return Case(name, "batch_norm", params, inputs, ["x", "weight", "bias"], fwd)


@case("batch_norm_train")
def _(name):
    return batch_norm_case(name, n=3, c=5, h=7, w=6, training=True)


@case("batch_norm_eval")
def _(name):
    return batch_norm_case(name, n=2, c=4, h=5, w=5, training=False)


@case("batch_norm_train_c17")
def _(name):
    return batch_norm_case(name, n=2, c=17, h=3, w=3, training=True)


# ---------------------------------------------------------------------------
# batch_norm_relu: batch norm fused with ReLU and a residual add, from the
# composition of the unfused PyTorch ops
# ---------------------------------------------------------------------------

def batch_norm_relu_case(name, n, c, h, w, training: bool, residual: str) -> Case:
    """residual: "none" (relu(bn(x))), "after_relu" (relu(bn(x)) + r) or
    "before_relu" (relu(bn(x) + r)). The inputs are redrawn until every
    pre-ReLU value is at least 1e-3 away from the kink (gradients unambiguous)."""
    while True:
        inputs = {
            "x": randn(n, c, h, w),
            "weight": randn(c),
            "bias": randn(c),
            "running_mean": randn(c) * 0.1,
            "running_var": 0.5 + torch.rand(c, dtype=DTYPE),  # uniform [0.5, 1.5)
        }
        if residual != "none":
            inputs["residual"] = randn(n, c, h, w)

        def fwd(t, frozen, pre_only=False):
            rm = t["running_mean"].detach().clone()
            rv = t["running_var"].detach().clone()
            z = F.batch_norm(t["x"], rm, rv, t["weight"], t["bias"], training=training,
                             momentum=BN_MOMENTUM, eps=BN_EPS)
            pre = z + t["residual"] if residual == "before_relu" else z
            if pre_only:
                return pre
            out = F.relu(pre)
            if residual == "after_relu":
                out = out + t["residual"]
            return out, {"running_mean_after": rm, "running_var_after": rv}

        with torch.no_grad():
            if bool((fwd(inputs, None, pre_only=True).abs() >= 1e-3).all()):
                break
    params = {"training": fmt(training), "momentum": fmt(BN_MOMENTUM), "eps": fmt(BN_EPS),
              "residual": residual}
    diff = ["x", "weight", "bias"] + (["residual"] if residual != "none" else [])
    return Case(name, "batch_norm_relu", params, inputs, diff, lambda t, frozen: fwd(t, frozen))


@case("batch_norm_relu_train")
def _(name):
    return batch_norm_relu_case(name, n=3, c=5, h=7, w=6, training=True, residual="none")


@case("batch_norm_relu_eval")
def _(name):
    return batch_norm_relu_case(name, n=2, c=4, h=5, w=5, training=False, residual="none")


@case("batch_norm_relu_residual_after_train")
def _(name):
    return batch_norm_relu_case(name, n=2, c=6, h=5, w=4, training=True, residual="after_relu")


@case("batch_norm_relu_residual_before_train")
def _(name):
    return batch_norm_relu_case(name, n=2, c=6, h=5, w=4, training=True, residual="before_relu")


@case("batch_norm_relu_residual_before_eval")
def _(name):
    return batch_norm_relu_case(name, n=2, c=3, h=4, w=4, training=False, residual="before_relu")


# ---------------------------------------------------------------------------
# Elementwise activations
# ---------------------------------------------------------------------------

@case("relu")
def _(name):
    # Keep every element at least 1e-3 away from the kink at 0, so the
    # gradient is unambiguous and finite differences are valid.
    x = randn(2, 3, 5, 4)
    near = x.abs() < 1e-3
    while near.any():
        x[near] = randn(int(near.sum()))
        near = x.abs() < 1e-3
    return Case(name, "relu", {}, {"x": x}, ["x"], lambda t, frozen: (F.relu(t["x"]), {}))


@case("sigmoid")
def _(name):
    return Case(name, "sigmoid", {}, {"x": randn(2, 3, 5, 4)}, ["x"],
                lambda t, frozen: (torch.sigmoid(t["x"]), {}))


@case("sigmoid_extreme")
def _(name):
    # Saturated inputs: a naive 1/(1+exp(-x)) overflows exp() at x = -300 in
    # float32 and loses the gradient; the reference values are exact in F64.
    x = randn(2, 3, 5, 4)
    flat = x.view(-1)
    for idx, v in zip([0, 7, 19, 33, 58, 71, 96, 119], [300.0, -300.0, 50.0, -50.0, 0.0, 300.0, -50.0, 0.0]):
        flat[idx] = v
    return Case(name, "sigmoid", {}, {"x": x}, ["x"],
                lambda t, frozen: (torch.sigmoid(t["x"]), {}))


# ---------------------------------------------------------------------------
# Broadcasting binary ops
# ---------------------------------------------------------------------------

def binary_case(name, op, fn, a_shape, b_shape) -> Case:
    # autograd reduces the gradient of a broadcast operand over the broadcast
    # dimensions, so grad_a / grad_b have the shapes of a / b.
    return Case(name, op, {}, {"a": randn(*a_shape), "b": randn(*b_shape)}, ["a", "b"],
                lambda t, frozen: (fn(t["a"], t["b"]), {}))


@case("add_same_shape")
def _(name):
    return binary_case(name, "add", torch.add, (2, 3, 4, 5), (2, 3, 4, 5))


@case("add_bcast_nc11")
def _(name):
    return binary_case(name, "add", torch.add, (2, 3, 4, 5), (2, 3, 1, 1))


@case("add_bcast_1c11")
def _(name):
    return binary_case(name, "add", torch.add, (2, 3, 4, 5), (1, 3, 1, 1))


@case("mul_same_shape")
def _(name):
    return binary_case(name, "mul", torch.mul, (2, 3, 4, 5), (2, 3, 4, 5))


@case("mul_se_nc11")
def _(name):
    return binary_case(name, "mul", torch.mul, (2, 3, 4, 5), (2, 3, 1, 1))


@case("mul_gate_n1hw")
def _(name):
    return binary_case(name, "mul", torch.mul, (2, 3, 4, 5), (2, 1, 4, 5))


# ---------------------------------------------------------------------------
# Pooling, linear, resampling, concat, softmax
# ---------------------------------------------------------------------------

@case("global_avg_pool")
def _(name):
    return Case(name, "global_avg_pool", {}, {"x": randn(2, 5, 7, 6)}, ["x"],
                lambda t, frozen: (t["x"].mean(dim=(2, 3), keepdim=True), {}))


@case("linear")
def _(name):
    inputs = {"x": randn(3, 7), "weight": randn(4, 7), "bias": randn(4)}
    return Case(name, "linear", {}, inputs, ["x", "weight", "bias"],
                lambda t, frozen: (F.linear(t["x"], t["weight"], t["bias"]), {}))


def max_pool2d_case(name, shape, kernel, stride) -> Case:
    x = randn(*shape)
    # The gradient goes to the window's argmax; ties would make it ambiguous.
    windows = F.unfold(x, kernel_size=kernel, stride=stride)  # [N, C*k*k, L]
    n, c = shape[:2]
    windows = windows.view(n, c, kernel * kernel, -1)
    top2 = windows.topk(2, dim=2).values
    assert (top2[:, :, 0] - top2[:, :, 1]).min() > 1e-6, "max_pool2d window has a near-tie"
    return Case(name, "max_pool2d", {"kernel": fmt(kernel), "stride": fmt(stride)}, {"x": x}, ["x"],
                lambda t, frozen: (F.max_pool2d(t["x"], kernel, stride, ceil_mode=False), {}))


@case("max_pool2d")
def _(name):
    return max_pool2d_case(name, (2, 3, 13, 11), kernel=2, stride=2)


@case("max_pool2d_8x8")
def _(name):
    return max_pool2d_case(name, (1, 2, 8, 8), kernel=2, stride=2)


def upsample_case(name, op, mode, scale) -> Case:
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return Case(name, op, {"scale": fmt(scale)}, {"x": randn(2, 3, 5, 4)}, ["x"],
                lambda t, frozen: (F.interpolate(t["x"], scale_factor=scale, mode=mode, **kwargs), {}))


@case("upsample_bilinear_x2")
def _(name):
    return upsample_case(name, "upsample_bilinear", "bilinear", 2)


@case("upsample_bilinear_x4")
def _(name):
    return upsample_case(name, "upsample_bilinear", "bilinear", 4)


@case("upsample_nearest_x2")
def _(name):
    return upsample_case(name, "upsample_nearest", "nearest", 2)


@case("concat")
def _(name):
    return Case(name, "concat", {"dim": "1"}, {"a": randn(2, 3, 4, 5), "b": randn(2, 2, 4, 5)},
                ["a", "b"], lambda t, frozen: (torch.cat([t["a"], t["b"]], dim=1), {}))


@case("softmax")
def _(name):
    return Case(name, "softmax", {"dim": "1"}, {"x": randn(2, 4, 5, 3)}, ["x"],
                lambda t, frozen: (torch.softmax(t["x"], dim=1), {}))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def cross_entropy_case(name, n, class_weight) -> Case:
    c, h, w = 4, 6, 5
    inputs = {
        "logits": randn(n, c, h, w),
        "target": random_labels((n, h, w), c, require_all=True),
        "class_weight": torch.tensor(class_weight, dtype=DTYPE),
    }

    def fwd(t, frozen):
        # reduction='mean' with weights: sum_i w[t_i] * nll_i / sum_i w[t_i].
        loss = F.cross_entropy(t["logits"], t["target"].long(), weight=t["class_weight"],
                               reduction="mean")
        return loss.reshape(1), {}

    return Case(name, "cross_entropy", {"reduction": "mean"}, inputs, ["logits"], fwd)


@case("cross_entropy")
def _(name):
    return cross_entropy_case(name, n=2, class_weight=[0.1, 1.0, 1.0, 1.0])


@case("cross_entropy_n1")
def _(name):
    return cross_entropy_case(name, n=1, class_weight=[0.3, 1.2, 0.7, 2.0])


TV_ALPHA_MIN = 0.2
TV_ALPHA_MAX = 0.8
TV_EPS = 1e-5


def tversky_counts(probs: torch.Tensor, target: torch.Tensor):
    """Soft TP/FP/FN per class, summed over batch and all pixels."""
    c = probs.shape[1]
    y = F.one_hot(target.long(), c).permute(0, 3, 1, 2).to(probs.dtype)  # [N,C,H,W]
    dims = (0, 2, 3)
    tp = (probs * y).sum(dims)
    fp = (probs * (1 - y)).sum(dims)
    fn = ((1 - probs) * y).sum(dims)
    return tp, fp, fn


def tversky_alpha(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Adaptive alpha_c = clamp(FP_c / (FP_c + FN_c), min, max) from detached counts."""
    with torch.no_grad():
        _, fp, fn = tversky_counts(probs.detach(), target)
        assert (fp + fn).min() > 0, "FP + FN is zero for some class"
        return (fp / (fp + fn)).clamp(TV_ALPHA_MIN, TV_ALPHA_MAX)


def tversky_loss(probs, target, alpha):
    tp, fp, fn = tversky_counts(probs, target)
    beta = 1 - alpha
    index = tp / (tp + alpha * fp + beta * fn + TV_EPS)
    return (1 - index.mean()).reshape(1)


def tversky_case(name, absent_class: int | None) -> Case:
    n, c, h, w = 2, 4, 6, 5
    probs = torch.softmax(randn(n, c, h, w), dim=1)
    if absent_class is None:
        target = random_labels((n, h, w), c, require_all=True)
    else:
        # Draw from the other classes only, then map them around the gap.
        target = random_labels((n, h, w), c - 1, require_all=True)
        target[target >= absent_class] += 1

    def fwd(t, frozen):
        alpha = frozen["alpha"] if frozen is not None else tversky_alpha(t["probs"], t["target"])
        return tversky_loss(t["probs"], t["target"], alpha), {"alpha": alpha}

    params = {"alpha_min": fmt(TV_ALPHA_MIN), "alpha_max": fmt(TV_ALPHA_MAX), "eps": fmt(TV_EPS)}
    return Case(name, "tversky", params, {"probs": probs, "target": target}, ["probs"], fwd)


@case("tversky")
def _(name):
    return tversky_case(name, absent_class=None)


@case("tversky_absent_class")
def _(name):
    return tversky_case(name, absent_class=3)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def run_case(name: str, builder: Callable[[str], Case], gradcheck: bool):
    """Build one case, run forward + backward, return (metadata, tensors)."""
    seed = case_seed(name)
    torch.manual_seed(seed)
    c = builder(name)
    assert c.name == name

    # Leaf copies of the inputs; only differentiable ones track gradients.
    inputs = {k: v.detach().clone().requires_grad_(k in c.diff) for k, v in c.inputs.items()}
    out, extras = c.forward(inputs, None)
    grad_out = randn(*out.shape)
    diff_tensors = [inputs[k] for k in c.diff]
    grads = torch.autograd.grad((out * grad_out).sum(), diff_tensors, allow_unused=True)
    for k, g in zip(c.diff, grads):
        if g is None:
            raise RuntimeError(f"{name}: no gradient reached input '{k}'")
        if g.shape != inputs[k].shape:
            raise RuntimeError(f"{name}: grad_{k} shape {tuple(g.shape)} != {tuple(inputs[k].shape)}")
        if not torch.isfinite(g).all():
            raise RuntimeError(f"{name}: grad_{k} is not finite")

    if gradcheck:
        # Numerically verify d sum(out*grad_out) / d input, with the op's
        # constants (e.g. Tversky alpha) frozen to the values of the real run.
        def f(*xs):
            t = dict(inputs)
            t.update(zip(c.diff, xs))
            return (c.forward(t, extras)[0] * grad_out).sum()

        probe = [x.detach().clone().requires_grad_(True) for x in diff_tensors]
        if not torch.autograd.gradcheck(f, probe, eps=1e-6, atol=1e-6, rtol=1e-5):
            raise RuntimeError(f"{name}: gradcheck failed")

    tensors: dict[str, np.ndarray] = {}
    for k, v in inputs.items():
        tensors[k] = to_numpy(v)
    tensors["out"] = to_numpy(out)
    for k, v in extras.items():
        tensors[k] = to_numpy(v)
    tensors["grad_out"] = to_numpy(grad_out)
    for k, g in zip(c.diff, grads):
        tensors[f"grad_{k}"] = to_numpy(g)

    metadata = {"op": c.op, **c.params, "seed": str(seed)}
    return metadata, tensors


def describe(name: str, tensors: dict[str, np.ndarray], nbytes: int) -> str:
    parts = [f"{k}{list(v.shape)}{'' if v.dtype == np.float64 else ':i32'}" for k, v in tensors.items()]
    return f"{name:28s} {nbytes:7d} B  " + " ".join(parts)


def check_dir(out_dir: Path) -> int:
    """Re-read every fixture in ``out_dir`` and validate its structure."""
    files = sorted(out_dir.glob("*.safetensors"))
    if not files:
        print(f"no fixtures in {out_dir}", file=sys.stderr)
        return 1
    total = 0
    for p in files:
        meta, tensors = read_safetensors(p)
        for key in ("op", "seed"):
            if key not in meta:
                raise ValueError(f"{p}: metadata lacks '{key}'")
        if "out" not in tensors or "grad_out" not in tensors:
            raise ValueError(f"{p}: missing out/grad_out")
        if tensors["out"].shape != tensors["grad_out"].shape:
            raise ValueError(f"{p}: grad_out shape differs from out")
        if not any(k.startswith("grad_") and k != "grad_out" for k in tensors):
            raise ValueError(f"{p}: no input gradients")
        size = p.stat().st_size
        total += size
        print(describe(p.stem, tensors, size))
    print(f"checked {len(files)} files, {total} bytes total")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output directory")
    ap.add_argument("--check", action="store_true", help="only validate existing fixtures")
    ap.add_argument("--gradcheck", action="store_true",
                    help="also verify each gradient with torch.autograd.gradcheck")
    ap.add_argument("cases", nargs="*", help="generate only these cases (default: all)")
    args = ap.parse_args()

    if args.check:
        return check_dir(args.out)

    torch.set_num_threads(1)  # deterministic reductions
    known = {name for name, _ in BUILDERS}
    unknown = set(args.cases) - known
    if unknown:
        print(f"unknown case(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    assert len(known) == len(BUILDERS), "duplicate case name"

    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, builder in BUILDERS:
        if args.cases and name not in args.cases:
            continue
        metadata, tensors = run_case(name, builder, args.gradcheck)
        path = args.out / f"{name}.safetensors"
        nbytes = write_safetensors(path, tensors, metadata)

        # Round trip through the independent reader: bit-exact equality.
        meta_back, back = read_safetensors(path)
        assert meta_back == metadata, f"{name}: metadata mismatch"
        assert list(back) == list(tensors), f"{name}: tensor order mismatch"
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, f"{name}/{k}"
            assert back[k].tobytes() == v.tobytes(), f"{name}/{k}: data mismatch"
        assert nbytes == path.stat().st_size
        if nbytes > MAX_FILE_BYTES:
            raise RuntimeError(f"{name}: {nbytes} bytes exceeds {MAX_FILE_BYTES}")

        total += nbytes
        print(describe(name, tensors, nbytes))

    print(f"wrote fixtures to {args.out}, {total} bytes total")
    if total > MAX_TOTAL_BYTES:
        print(f"warning: total size exceeds {MAX_TOTAL_BYTES} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
