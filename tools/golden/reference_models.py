#!/usr/bin/env python3
"""PyTorch reference of the three lkaseg networks, their loss and lr schedule.

This is the Python side of the contract in ``docs/MODELS.md``: the modules
below build exactly the layers described there, in the same order, and their
``state_dict()`` keys are the checkpoint names the C++ side uses
(``enc.0.res.conv1.weight``, ``dec.1.att.bn_psi.running_var``, ``head.bias``,
``aux.2.weight``, ...).  Numbers (loss weights, optimiser, schedule) follow
``../shared/SPEC.md``.

    ResSELKAUNet   "resse_lka_unet"   enc.i = ResSE (enc.i.res) + LKA (enc.i.lka), ce, dec.*, head, aux.*
    UNet           "unet"             enc.i = ConvBlock, dec.*, head, aux.*
    AttentionUNet  "attention_unet"   the U-Net with an attention gate dec.j.att on every skip

``forward(x)`` returns a list of logits at their own resolution:
[main (1/1), aux.0 (1/2), aux.1 (1/4), aux.2 (1/8)], or [main] without deep
supervision.

Usage
-----
    python3 tools/golden/reference_models.py --summary              # all nets, default widths
    python3 tools/golden/reference_models.py --summary --widths 8,16,32,64
    python3 tools/golden/reference_models.py --keys --net resse_lka_unet --widths 8,16,32,64
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_MOMENTUM = 0.1
BN_EPS = 1e-5

DEFAULT_WIDTHS = (32, 64, 128, 256, 512)
CLASS_WEIGHT = (0.1, 1.0, 1.0, 1.0)
LAMBDAS = (1.0, 0.4, 0.3, 0.2)
N_AUX = 3  # auxiliary heads at 1/2, 1/4, 1/8


@dataclass(frozen=True)
class NetConfig:
    """Mirror of ``model::NetConfig`` (docs/MODELS.md, "Common configuration")."""
    in_channels: int = 4
    classes: int = 4
    widths: tuple[int, ...] = field(default=DEFAULT_WIDTHS)
    deep_supervision: bool = True
    se_ratio: int = 16
    se_min_hidden: int = 4
    lka_dilation: int = 1

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) < 2:
            raise ValueError("need at least two levels (one encoder level plus the bottleneck)")
        if self.deep_supervision and len(self.widths) < N_AUX + 1:
            raise ValueError(f"deep supervision needs at least {N_AUX + 1} levels (aux heads at 1/2, 1/4, 1/8)")


# ---------------------------------------------------------------------------
# Layer helpers: "a convolution followed by batch norm has no bias; every
# other convolution, transposed convolution and linear layer has one".
# ---------------------------------------------------------------------------

def bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv3x3(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


def conv1x1(cin: int, cout: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=bias)


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """conv1, bn1, conv2, bn2: x -> ReLU(BN(conv3x3(x))) -> ReLU(BN(conv3x3(.)))."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.bn1 = bn2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = bn2d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class SqueezeExcite(nn.Module):
    """se: s = sigmoid(fc2(ReLU(fc1(GAP(F))))), Y = F * s."""

    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, f):
        z = f.mean(dim=(2, 3))                                  # (N, C)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))        # (N, C)
        return f * s[:, :, None, None]


def se_hidden(c: int, cfg: NetConfig) -> int:
    """SE hidden width h = max(C // se_ratio, se_min_hidden) (integer division)."""
    return max(c // cfg.se_ratio, cfg.se_min_hidden)


class ResSE(nn.Module):
    """res: F = skip(x) + ReLU(bn2(conv2(ReLU(bn1(conv1(x)))))); Y = se(F).

    skip(x) = x when in == C, else skip_bn(skip_conv(x)) with a 1x1 conv.
    Note the second ReLU sits inside R, before the residual sum (MODELS.md).
    """

    def __init__(self, cin: int, cout: int, cfg: NetConfig):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.bn1 = bn2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = bn2d(cout)
        if cin != cout:
            self.skip_conv = conv1x1(cin, cout, bias=False)
            self.skip_bn = bn2d(cout)
        else:
            self.skip_conv = None
            self.skip_bn = None
        self.se = SqueezeExcite(cout, se_hidden(cout, cfg))

    def forward(self, x):
        r = F.relu(self.bn1(self.conv1(x)))
        r = F.relu(self.bn2(self.conv2(r)))
        skip = x if self.skip_conv is None else self.skip_bn(self.skip_conv(x))
        return self.se(skip + r)


class LKA(nn.Module):
    """lka: A = sigmoid(bn(pw(dw7(dw5(X))))); Y = X * A."""

    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.dw5 = nn.Conv2d(c, c, 5, padding=2, groups=c, bias=True)
        self.dw7 = nn.Conv2d(c, c, 7, padding=3 * dilation, dilation=dilation, groups=c, bias=True)
        self.pw = conv1x1(c, c, bias=False)
        self.bn = bn2d(c)

    def forward(self, x):
        a = torch.sigmoid(self.bn(self.pw(self.dw7(self.dw5(x)))))
        return x * a


class ResSELKABlock(nn.Module):
    """enc.i of ResSE-LKA-UNet: res (ResSE in -> C) then lka (C -> C)."""

    def __init__(self, cin: int, cout: int, cfg: NetConfig):
        super().__init__()
        self.res = ResSE(cin, cout, cfg)
        self.lka = LKA(cout, cfg.lka_dilation)

    def forward(self, x):
        return self.lka(self.res(x))


class ContextEnhancement(nn.Module):
    """ce: Y = ReLU(bn(b1(B) + b2(B) + b3(GAP(B)))), b3's (N, C, 1, 1) broadcast."""

    def __init__(self, c: int):
        super().__init__()
        self.b1 = conv1x1(c, c, bias=False)
        self.b2 = conv3x3(c, c, bias=False)
        self.b3 = conv1x1(c, c, bias=False)
        self.bn = bn2d(c)

    def forward(self, b):
        g = self.b3(b.mean(dim=(2, 3), keepdim=True))
        return F.relu(self.bn(self.b1(b) + self.b2(b) + g))


class AttentionGate(nn.Module):
    """dec.j.att: psi = sigmoid(bn_psi(psi(ReLU(bn_g(w_g(u)) + bn_x(w_x(x)))))); out = x * psi.

    All three 1x1 convs carry a bias although batch norm follows (as MODELS.md
    states explicitly for the gate, following Oktay et al.'s reference code).
    """

    def __init__(self, c: int):
        super().__init__()
        f_int = max(c // 2, 1)
        self.w_g = conv1x1(c, f_int, bias=True)
        self.bn_g = bn2d(f_int)
        self.w_x = conv1x1(c, f_int, bias=True)
        self.bn_x = bn2d(f_int)
        self.psi = conv1x1(f_int, 1, bias=True)
        self.bn_psi = bn2d(1)

    def forward(self, u, x):
        g1 = self.bn_g(self.w_g(u))
        x1 = self.bn_x(self.w_x(x))
        psi = torch.sigmoid(self.bn_psi(self.psi(F.relu(g1 + x1))))  # (N, 1, H, W)
        return x * psi


class DecoderLevel(nn.Module):
    """dec.j: u = up(d); [s = att(u, s)]; two (3x3 conv, BN, ReLU) on cat([u, s])."""

    def __init__(self, cin: int, cout: int, attention: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=True)
        self.att = AttentionGate(cout) if attention else None
        self.conv1 = conv3x3(2 * cout, cout)
        self.bn1 = bn2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = bn2d(cout)

    def forward(self, d, s):
        u = self.up(d)
        if self.att is not None:
            s = self.att(u, s)
        y = F.relu(self.bn1(self.conv1(torch.cat([u, s], dim=1))))
        return F.relu(self.bn2(self.conv2(y)))


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

class _SegNet(nn.Module):
    """Shared skeleton: enc (ModuleList), [ce], dec (ModuleList), head, [aux (ModuleList)]."""

    NAME = ""

    def __init__(self, cfg: NetConfig, encoder_block, use_ce: bool, attention: bool):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        L = len(w)
        self.enc = nn.ModuleList(
            encoder_block(cfg.in_channels if i == 0 else w[i - 1], w[i]) for i in range(L))
        self.ce = ContextEnhancement(w[L - 1]) if use_ce else None
        self.dec = nn.ModuleList(
            DecoderLevel(w[L - 1 - j], w[L - 2 - j], attention) for j in range(L - 1))
        self.head = conv1x1(w[0], cfg.classes, bias=True)
        if cfg.deep_supervision:
            # aux.k reads the decoder-path feature at 1/2^(k+1), which has C_{k+1} channels.
            self.aux = nn.ModuleList(conv1x1(w[k + 1], cfg.classes, bias=True) for k in range(N_AUX))
        else:
            self.aux = None

    def forward(self, x):
        L = len(self.cfg.widths)
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            if i > 0:
                h = F.max_pool2d(h, kernel_size=2, stride=2)
            h = block(h)
            skips.append(h)
        if self.ce is not None:
            h = self.ce(h)
        # Decoder path, coarsest first: path[m] lives at 1/2^(L-1-m) of the input
        # (path[0] = bottleneck output, after ce for ResSE-LKA-UNet; path[1+j] = dec.j output).
        path = [h]
        for j, level in enumerate(self.dec):
            h = level(h, skips[L - 2 - j])
            path.append(h)
        outputs = [self.head(h)]
        if self.aux is not None:
            for k, head in enumerate(self.aux):
                outputs.append(head(path[L - 2 - k]))  # 1/2^(k+1)
        return outputs


class ResSELKAUNet(_SegNet):
    NAME = "resse_lka_unet"

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__(cfg, lambda cin, cout: ResSELKABlock(cin, cout, cfg), use_ce=True, attention=False)


class UNet(_SegNet):
    NAME = "unet"

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__(cfg, ConvBlock, use_ce=False, attention=False)


class AttentionUNet(_SegNet):
    NAME = "attention_unet"

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__(cfg, ConvBlock, use_ce=False, attention=True)


NETS = {cls.NAME: cls for cls in (ResSELKAUNet, UNet, AttentionUNet)}


def build_model(net: str, cfg: NetConfig = NetConfig()) -> _SegNet:
    if net not in NETS:
        raise ValueError(f"unknown net {net!r}; choose one of {', '.join(NETS)}")
    return NETS[net](cfg)


def parse_widths(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(",") if v.strip())


# ---------------------------------------------------------------------------
# Loss (MODELS.md "Loss", SPEC.md "Loss")
# ---------------------------------------------------------------------------

def tversky_counts(probs: torch.Tensor, target: torch.Tensor):
    """Soft TP, FP, FN per class, summed over the batch and all pixels."""
    c = probs.shape[1]
    y = F.one_hot(target.long(), c).permute(0, 3, 1, 2).to(probs.dtype)  # (N, C, H, W)
    dims = (0, 2, 3)
    tp = (probs * y).sum(dims)
    fp = (probs * (1 - y)).sum(dims)
    fn = ((1 - probs) * y).sum(dims)
    return tp, fp, fn


def tversky_alpha(probs: torch.Tensor, target: torch.Tensor,
                  alpha_min: float = 0.2, alpha_max: float = 0.8) -> torch.Tensor:
    """alpha_c = clamp(FP_c / (FP_c + FN_c), alpha_min, alpha_max) from DETACHED counts.

    FP_c + FN_c > 0 always holds with softmax probabilities unless one class
    covers every pixel with probability exactly 1; that degenerate case gives
    alpha_c = 0.5 here (it never occurs in the fixtures).
    """
    with torch.no_grad():
        _, fp, fn = tversky_counts(probs.detach(), target)
        denom = fp + fn
        ratio = torch.where(denom > 0, fp / denom.clamp_min(torch.finfo(denom.dtype).tiny),
                            torch.full_like(denom, 0.5))
        return ratio.clamp(alpha_min, alpha_max)


def adaptive_tversky_loss(probs, target, alpha: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean_c TP_c / (TP_c + alpha_c FP_c + (1 - alpha_c) FN_c + eps), all C classes."""
    tp, fp, fn = tversky_counts(probs, target)
    index = tp / (tp + alpha * fp + (1 - alpha) * fn + eps)
    return 1 - index.mean()


def deep_supervision_loss(outputs, target, class_weight=CLASS_WEIGHT, lambdas=LAMBDAS,
                          alpha_min: float = 0.2, alpha_max: float = 0.8, eps: float = 1e-5,
                          frozen_alphas=None, return_parts: bool = False):
    """total = sum_i lambda_i * (CE_w(U_i) + Tversky(softmax(U_i))).

    U_i: output i bilinearly upsampled (align_corners=False) to the target's
    H x W (the main output already has that size and is used as is; bilinear
    resampling to the same size is the identity).  CE_w: F.cross_entropy with
    ``weight=class_weight`` and mean reduction (sum_p w[y_p] nll_p / sum_p
    w[y_p]).  Tversky: ``adaptive_tversky_loss`` with alpha from detached soft
    counts of that output.  With fewer outputs than lambdas (no deep
    supervision) the first len(outputs) lambdas are used.

    ``frozen_alphas`` (list of per-output alpha tensors) replaces the
    data-dependent alpha; used for finite-difference gradient checks, where the
    detached alpha must stay constant while parameters are perturbed.

    Returns the 0-d total loss, or (loss, parts) with ``return_parts``:
    parts = {"ce": [C_i], "tversky": [T_i], "alpha": [alpha_i]} (detached).
    """
    if len(outputs) > len(lambdas):
        raise ValueError(f"{len(outputs)} outputs but only {len(lambdas)} lambdas")
    h, w = target.shape[-2:]
    tgt = target.long()
    total = None
    parts = {"ce": [], "tversky": [], "alpha": []}
    for i, (out, lam) in enumerate(zip(outputs, lambdas)):
        u = out if out.shape[-2:] == (h, w) else F.interpolate(
            out, size=(h, w), mode="bilinear", align_corners=False)
        wt = torch.as_tensor(class_weight, dtype=u.dtype, device=u.device)
        ce = F.cross_entropy(u, tgt, weight=wt, reduction="mean")
        probs = torch.softmax(u, dim=1)
        alpha = frozen_alphas[i] if frozen_alphas is not None else tversky_alpha(probs, tgt, alpha_min, alpha_max)
        tv = adaptive_tversky_loss(probs, tgt, alpha, eps)
        term = lam * (ce + tv)
        total = term if total is None else total + term
        parts["ce"].append(ce.detach())
        parts["tversky"].append(tv.detach())
        parts["alpha"].append(alpha.detach())
    return (total, parts) if return_parts else total


# ---------------------------------------------------------------------------
# Learning-rate schedule (SPEC.md "Training")
# ---------------------------------------------------------------------------

def lr_at(step: int, steps_per_epoch: int, base_lr: float = 1e-4, warmup_epochs: int = 5,
          start_factor: float = 0.1, decay: float = 0.95) -> float:
    """Learning rate for optimiser step ``step`` (0-based, counted over the whole run).

    With e = step // steps_per_epoch and W = warmup_epochs:

        e <  W:  lr = base_lr * (start_factor + (1 - start_factor) * step / (W * steps_per_epoch))
        e >= W:  lr = base_lr * decay ** (e - W)

    i.e. a per-step linear warmup from base_lr * start_factor (step 0) towards
    base_lr (reached at step W * steps_per_epoch, the first step of epoch W),
    then a per-epoch exponential decay: epoch W uses base_lr, epoch W+1
    base_lr * decay, ...  With W = 0 there is no warmup.
    """
    if steps_per_epoch <= 0:
        raise ValueError("steps_per_epoch must be positive")
    if step < 0:
        raise ValueError("step must be >= 0")
    e = step // steps_per_epoch
    if e < warmup_epochs:
        return base_lr * (start_factor + (1.0 - start_factor) * step / (warmup_epochs * steps_per_epoch))
    return base_lr * decay ** (e - warmup_epochs)


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------

_LAYER_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(model: _SegNet) -> str:
    """Layer counts by type and parameter counts, in total and per top-level part."""
    lines = [f"{model.NAME}: widths {','.join(map(str, model.cfg.widths))}, in {model.cfg.in_channels}, "
             f"classes {model.cfg.classes}, deep supervision {'on' if model.cfg.deep_supervision else 'off'}"]
    by_type: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, _LAYER_TYPES):
            by_type[type(m).__name__] = by_type.get(type(m).__name__, 0) + 1
    lines.append("  layers: " + ", ".join(f"{k} {v}" for k, v in by_type.items())
                 + f" (total {sum(by_type.values())})")
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            for idx, sub in enumerate(child):
                lines.append(f"  {name}.{idx:<6d} {count_params(sub):>12,d} params")
        else:
            lines.append(f"  {name:<8s} {count_params(child):>12,d} params")
    n_buf = sum(b.numel() for b in model.buffers())
    lines.append(f"  total    {count_params(model):>12,d} params, {len(model.state_dict())} state_dict entries, "
                 f"{n_buf:,d} buffer elements")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description="PyTorch reference networks of lkaseg (docs/MODELS.md).")
    ap.add_argument("--net", default="all", help=f"one of {', '.join(NETS)} or 'all'")
    ap.add_argument("--widths", type=parse_widths, default=DEFAULT_WIDTHS)
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--no-deep-supervision", action="store_true")
    ap.add_argument("--se-ratio", type=int, default=16)
    ap.add_argument("--se-min-hidden", type=int, default=4)
    ap.add_argument("--lka-dilation", type=int, default=1)
    ap.add_argument("--summary", action="store_true", help="print layer and parameter counts")
    ap.add_argument("--keys", action="store_true", help="print the state_dict keys with shapes")
    ap.add_argument("--forward", type=int, default=0, metavar="SIZE",
                    help="also run a forward on a random 1 x in x SIZE x SIZE input and print output shapes")
    args = ap.parse_args()

    cfg = NetConfig(in_channels=args.in_channels, classes=args.classes, widths=args.widths,
                    deep_supervision=not args.no_deep_supervision, se_ratio=args.se_ratio,
                    se_min_hidden=args.se_min_hidden, lka_dilation=args.lka_dilation)
    nets = list(NETS) if args.net == "all" else [args.net]
    if not (args.summary or args.keys or args.forward):
        args.summary = True
    for net in nets:
        torch.manual_seed(0)
        model = build_model(net, cfg)
        if args.summary:
            print(summary(model))
        if args.keys:
            for k, v in model.state_dict().items():
                print(f"{k:45s} {str(v.dtype).replace('torch.', ''):8s} {list(v.shape)}")
        if args.forward:
            with torch.no_grad():
                outs = model.eval()(torch.randn(1, cfg.in_channels, args.forward, args.forward))
            print("  outputs: " + ", ".join(str(list(o.shape)) for o in outs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
