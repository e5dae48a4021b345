#!/usr/bin/env python3
"""Self-test of the golden tools: safetensors I/O, check_checkpoint.py in both
directions, the reference models' names against docs/MODELS.md, the loss and
the lr schedule.  Plain script (no pytest needed); exits non-zero on failure.

    python3 tools/golden/test_golden_tools.py
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import reference_models as R  # noqa: E402
from st_io import read_safetensors, write_safetensors  # noqa: E402

PY = sys.executable
CHECK = str(HERE / "check_checkpoint.py")
SMALL = ["--widths", "8,16,32,64"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, CHECK, *args], capture_output=True, text=True)


def checksum_line(out: str) -> str:
    lines = [l for l in out.splitlines() if l.startswith("main logits")]
    assert len(lines) == 1, out
    return lines[0]


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)
    print(f"  ok  {msg}")


def write_raw(path: Path, entries: list[tuple[str, np.ndarray]], header_order: list[str],
              metadata: dict | None) -> None:
    """A deliberately different writer: data in ``entries`` order, header keys
    in ``header_order``, optional metadata, no alignment padding."""
    offsets, blobs, off = {}, [], 0
    for name, a in entries:
        b = np.ascontiguousarray(a).tobytes()
        offsets[name] = (off, off + len(b), a)
        blobs.append(b)
        off += len(b)
    tag = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i4"): "I32", np.dtype("<i8"): "I64"}
    header = {} if metadata is None else {"__metadata__": metadata}
    for name in header_order:
        b, e, a = offsets[name]
        header[name] = {"dtype": tag[a.dtype], "shape": list(a.shape), "data_offsets": [b, e]}
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_names_match_models_md() -> None:
    print("state_dict names vs docs/MODELS.md")
    doc = (REPO_ROOT / "docs" / "MODELS.md").read_text()
    # Every backquoted dotted name in MODELS.md that looks like a key must be
    # produced by some net (with its index pattern).
    keys = set()
    for net in R.NETS:
        for w in ((8, 16, 32, 64), R.DEFAULT_WIDTHS):
            keys |= set(R.build_model(net, R.NetConfig(widths=w)).state_dict())
    # identifiers inside backquoted spans: `enc.i.res`, `skip_bn(skip_conv(x))`, ...
    names_in_doc = {w for span in re.findall(r"`([^`]+)`", doc) for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", span)}
    module_names = {"conv1", "bn1", "conv2", "bn2", "res", "skip_conv", "skip_bn", "se", "fc1", "fc2",
                    "lka", "dw5", "dw7", "pw", "bn", "ce", "b1", "b2", "b3", "up", "att", "w_g", "w_x",
                    "psi", "bn_g", "bn_x", "bn_psi", "head", "aux", "enc", "dec"}
    expect(module_names <= names_in_doc, "every module name used is spelled in MODELS.md")
    all_parts = {p for k in keys for p in k.split(".") if not p.isdigit()}
    param_leaves = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    expect(all_parts <= module_names | param_leaves, f"no name outside MODELS.md: {sorted(all_parts - module_names - param_leaves)}")
    for k in ["enc.0.res.conv1.weight", "enc.0.res.se.fc1.weight", "enc.0.lka.dw7.bias", "ce.b2.weight",
              "head.bias", "aux.2.weight", "enc.3.res.skip_bn.num_batches_tracked"]:
        expect(k in R.build_model("resse_lka_unet", R.NetConfig(widths=(8, 16, 32, 64))).state_dict(), k)
    att = R.build_model("attention_unet", R.NetConfig(widths=(8, 16, 32, 64))).state_dict()
    for k in ["dec.1.up.weight", "dec.1.att.w_g.weight", "dec.1.att.bn_psi.running_var", "enc.0.conv1.weight"]:
        expect(k in att, k)


def test_loss_and_schedule() -> None:
    print("loss and lr schedule")
    torch.manual_seed(0)
    outs = [torch.randn(2, 4, 16 >> i, 16 >> i, dtype=torch.float64) for i in range(4)]
    y = torch.randint(0, 4, (2, 16, 16))
    total, parts = R.deep_supervision_loss(outs, y, return_parts=True)
    # Independent recomputation.
    ref = 0.0
    w = torch.tensor([0.1, 1, 1, 1], dtype=torch.float64)
    for o, lam in zip(outs, [1.0, 0.4, 0.3, 0.2]):
        u = F.interpolate(o, size=(16, 16), mode="bilinear", align_corners=False)
        logp = torch.log_softmax(u, 1)
        yo = F.one_hot(y, 4).permute(0, 3, 1, 2).double()
        nll = -(logp * yo).sum(1)
        wt = w[y]
        ce = (wt * nll).sum() / wt.sum()
        p = logp.exp()
        tp, fp, fn = (p * yo).sum((0, 2, 3)), (p * (1 - yo)).sum((0, 2, 3)), ((1 - p) * yo).sum((0, 2, 3))
        a = (fp / (fp + fn)).clamp(0.2, 0.8)
        tv = 1 - (tp / (tp + a * fp + (1 - a) * fn + 1e-5)).mean()
        ref += lam * (ce + tv)
    expect(abs(total.item() - ref.item()) < 1e-12, f"deep_supervision_loss == independent formula ({total.item():.12f})")
    expect(abs(R.deep_supervision_loss(outs[:1], y).item() - (parts["ce"][0] + parts["tversky"][0]).item()) < 1e-12,
           "without deep supervision only lambda_0 * main term")
    spe = 10
    expect(abs(R.lr_at(0, spe) - 1e-5) < 1e-20, "lr_at(0) = base/10")
    expect(abs(R.lr_at(25, spe) - 1e-4 * (0.1 + 0.9 * 25 / 50)) < 1e-20, "lr_at mid-warmup linear per step")
    expect(abs(R.lr_at(50, spe) - 1e-4) < 1e-20 and abs(R.lr_at(59, spe) - 1e-4) < 1e-20, "epoch 5 = base")
    expect(abs(R.lr_at(60, spe) - 0.95e-4) < 1e-20 and abs(R.lr_at(499, spe) - 1e-4 * 0.95 ** 44) < 1e-20,
           "x0.95 per epoch after warmup")


def test_roundtrip(tmp: Path) -> None:
    print("check_checkpoint.py round trips")
    for net in R.NETS:
        for nbt in ("i64", "i32"):
            p = tmp / f"{net}_{nbt}.safetensors"
            w = run("--write", str(p), "--net", net, *SMALL, "--nbt-dtype", nbt)
            expect(w.returncode == 0, f"{net}: --write ({nbt}) rc 0")
            c = run(str(p), "--net", net, *SMALL)
            expect(c.returncode == 0, f"{net}: check of the written file rc 0")
            expect(checksum_line(w.stdout) == checksum_line(c.stdout), f"{net}: same checksums both ways")
            expect("num_batches_tracked values [30]" in c.stdout, f"{net}: num_batches_tracked read back as 30")

    # The written tensors are bit-identical to the model's state_dict.
    p = tmp / "bits.safetensors"
    run("--write", str(p), "--net", "resse_lka_unet", *SMALL, "--seed", "5")
    _, t = read_safetensors(p)
    torch.manual_seed(5)
    m = R.build_model("resse_lka_unet", R.NetConfig(widths=(8, 16, 32, 64)))
    expect(list(t) == list(m.state_dict()), "written keys in state_dict order")
    expect(t["enc.0.res.conv1.weight"].tobytes() == m.state_dict()["enc.0.res.conv1.weight"].numpy().tobytes(),
           "written conv weight bit-identical to the seeded model's")
    expect(t["enc.0.res.bn1.num_batches_tracked"].shape == () and t["enc.0.res.bn1.num_batches_tracked"].dtype == np.int64,
           "num_batches_tracked stored as 0-d I64")

    # Default widths, other options.
    p = tmp / "big.safetensors"
    opts = ["--net", "resse_lka_unet", "--lka-dilation", "3", "--no-deep-supervision", "--size", "32"]
    w = run("--write", str(p), *opts)
    c = run(str(p), *opts)
    expect(w.returncode == 0 and c.returncode == 0 and checksum_line(w.stdout) == checksum_line(c.stdout),
           "default widths, dilation 3, no deep supervision: round trip")

    # A file as another writer might make it: header keys sorted, data in
    # reverse order, int32 num_batches_tracked, no metadata, no padding.
    _, t = read_safetensors(tmp / "unet_i64.safetensors")
    entries = [(k, (v.astype("<i4") if v.dtype.kind == "i" else v)) for k, v in reversed(list(t.items()))]
    p = tmp / "cpp_like.safetensors"
    write_raw(p, entries, sorted(t), None)
    c = run(str(p), "--net", "unet", *SMALL)
    ref = run(str(tmp / "unet_i64.safetensors"), "--net", "unet", *SMALL)
    expect(c.returncode == 0 and checksum_line(c.stdout) == checksum_line(ref.stdout),
           "sorted header / reversed data / I32 counters / no metadata: loads, same checksums")
    t64 = {k: (v.astype("<f8") if v.dtype.kind == "f" else v) for k, v in t.items()}
    p = tmp / "f64.safetensors"
    write_safetensors(p, t64, {})
    c = run(str(p), "--net", "unet", *SMALL)
    expect(c.returncode == 0 and checksum_line(c.stdout) == checksum_line(ref.stdout), "F64 checkpoint loads")

    # --dump
    d = tmp / "dump.safetensors"
    c = run(str(tmp / "unet_i64.safetensors"), "--net", "unet", *SMALL, "--dump", str(d), "--input", "sin")
    meta, dt = read_safetensors(d)
    expect(c.returncode == 0 and set(dt) == {"input.x", "out.main", "out.aux0", "out.aux1", "out.aux2"},
           "--dump writes input and outputs")
    k = np.arange(dt["input.x"].size)
    expect(np.array_equal(dt["input.x"].reshape(-1), np.sin(0.1 * k).astype(np.float32)), "--input sin formula")


def test_errors(tmp: Path) -> None:
    print("check_checkpoint.py error reporting")
    base = tmp / "resse_lka_unet_i64.safetensors"
    _, t = read_safetensors(base)

    p = tmp / "missing.safetensors"
    write_safetensors(p, {k: v for k, v in t.items() if k != "enc.1.lka.dw7.bias"}, {})
    c = run(str(p), "--net", "resse_lka_unet", *SMALL)
    expect(c.returncode == 1 and "missing key: enc.1.lka.dw7.bias" in c.stderr, "missing key -> rc 1, named")

    p = tmp / "unexpected.safetensors"
    write_safetensors(p, {**t, "enc.9.extra.weight": np.zeros(3, "<f4")}, {})
    c = run(str(p), "--net", "resse_lka_unet", *SMALL)
    expect(c.returncode == 1 and "unexpected key: enc.9.extra.weight" in c.stderr, "unexpected key -> rc 1, named")

    c = run(str(base), "--net", "resse_lka_unet", "--widths", "8,16,32,128")
    expect(c.returncode == 1 and "shape mismatch: enc.3.res.conv1.weight" in c.stderr, "wrong widths -> shape mismatch")

    c = run(str(tmp / "unet_i64.safetensors"), "--net", "attention_unet", *SMALL)
    expect(c.returncode == 1 and "missing key: dec.0.att.w_g.weight" in c.stderr, "wrong net -> missing att keys")

    p = tmp / "intweight.safetensors"
    write_safetensors(p, {**t, "head.bias": t["head.bias"].astype("<i4")}, {})
    c = run(str(p), "--net", "resse_lka_unet", *SMALL)
    expect(c.returncode == 1 and "dtype mismatch: head.bias" in c.stderr, "integer weight -> dtype mismatch")

    p = tmp / "nbt1.safetensors"
    write_safetensors(p, {**t, "ce.bn.num_batches_tracked": np.array([2], "<i8")}, {})
    c = run(str(p), "--net", "resse_lka_unet", *SMALL)
    expect(c.returncode == 1 and "shape mismatch: ce.bn.num_batches_tracked: file [1], model []" in c.stderr,
           "num_batches_tracked of shape [1] instead of [] -> shape mismatch")

    p = tmp / "trunc.safetensors"
    p.write_bytes(base.read_bytes()[:-7])
    c = run(str(p), "--net", "resse_lka_unet", *SMALL)
    expect(c.returncode == 2 and "cannot read" in c.stderr, "truncated file -> rc 2")

    c = run(str(tmp / "nonexistent.safetensors"))
    expect(c.returncode == 2, "missing file -> rc 2")


def test_model_fixture_params_as_checkpoint(tmp: Path) -> None:
    print("model fixtures' param.* as a plain checkpoint")
    for net in R.NETS:
        f = REPO_ROOT / "tests" / "golden" / "models" / f"{net}.safetensors"
        if not f.exists():
            print(f"  skip {f} (not generated)")
            continue
        _, t = read_safetensors(f)
        p = tmp / f"fx_{net}.safetensors"
        write_safetensors(p, {k[6:]: v for k, v in t.items() if k.startswith("param.")}, {})
        c = run(str(p), "--net", net, *SMALL)
        expect(c.returncode == 0, f"{net}: fixture params load strictly")


def main() -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        test_names_match_models_md()
        test_loss_and_schedule()
        test_roundtrip(tmp)
        test_errors(tmp)
        test_model_fixture_params_as_checkpoint(tmp)
    print("all golden-tool tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
