#!/usr/bin/env python3
"""Golden numbers for lkaseg's evaluation metrics (eval/metrics.h).

Writes ``tests/golden/metrics/cases.txt``: small 3-D BraTS label volumes
(prediction and ground truth, labels {0, 1, 2, 4}) on anisotropic grids,
and for every region (NCR, ET, ED, WT, TC) the Dice and HD95 from
established implementations:

* ``dice``       2|P&G| / (|P| + |G|)  (medpy.metric.binary.dc, float64)
* ``hd95_ref``   float64 statement of the definition in eval/metrics.h with
                 scipy: surface = mask & ~binary_erosion(mask, 6-connected
                 cross, border_value=0); distances from
                 scipy.ndimage.distance_transform_edt(~surface, sampling);
                 HD95 = max(np.percentile(P->G, 95), np.percentile(G->P, 95))
* ``hd95_monai`` monai.metrics.compute_hausdorff_distance(percentile=95,
                 spacing=..., include_background=True) (float32 output)
* ``hd95_medpy`` medpy.metric.binary.hd95 (one percentile of both
                 directions pooled: NOT our definition, kept for the record)

Empty masks follow SPEC.md (both empty: Dice 1, HD95 0; one empty: Dice 0,
HD95 373.13), and the MONAI/medpy columns are ``nan`` there.  The script
checks that hd95_ref and MONAI agree (to float32 precision) before writing.

File format (text, one record per line)::

    case <name> <nx> <ny> <nz> <sx> <sy> <sz>
    pred <run-length tokens>
    gt <run-length tokens>
    region <NAME> <dice> <hd95_ref> <hd95_monai> <hd95_medpy> <gt_empty> <pred_empty>
    ... (5 region lines, order NCR ET ED WT TC)
    end

Voxels are listed x fastest (index x + nx*(y + ny*z), as lkaseg's Geometry),
as run-length tokens ``<label>:<count>``.  Lines starting with ``#`` are
comments.

Usage::

    /work/pyref/bin/pip install numpy scipy medpy monai
    /work/pyref/bin/python tools/golden/make_metrics_fixtures.py          # (re)generate
    /work/pyref/bin/python tools/golden/make_metrics_fixtures.py --check  # recompute and compare
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "tests" / "golden" / "metrics" / "cases.txt"
EMPTY_HD95 = 373.13
REGIONS = {"NCR": (1,), "ET": (4,), "ED": (2,), "WT": (1, 2, 4), "TC": (1, 4)}


# ----------------------------------------------------------------- volumes
def tumour(shape, centre, radii, rng, noise=0.15):
    """Nested lesion: core NCR (1) inside an ET rim (4) inside edema (2)."""
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    r = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 +
                ((z - centre[2]) / radii[2]) ** 2)
    r = r + noise * rng.standard_normal(shape)
    lab = np.zeros(shape, np.uint8)
    lab[r < 1.0] = 2
    lab[r < 0.6] = 4
    lab[r < 0.35] = 1
    return lab


def perturb(lab, rng, frac=0.03):
    """Relabel a fraction of the voxels next to a label boundary."""
    out = lab.copy()
    edge = np.zeros(lab.shape, bool)
    for ax in range(3):
        d = np.diff(lab.astype(np.int16), axis=ax) != 0
        sl_a = [slice(None)] * 3
        sl_b = [slice(None)] * 3
        sl_a[ax] = slice(0, -1)
        sl_b[ax] = slice(1, None)
        edge[tuple(sl_a)] |= d
        edge[tuple(sl_b)] |= d
    idx = np.flatnonzero(edge)
    pick = rng.choice(idx, size=max(1, int(frac * idx.size)), replace=False)
    out.flat[pick] = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=pick.size)
    return out


def make_cases():
    cases = []
    rng = np.random.Generator(np.random.PCG64(20240601))

    # 1. a lesion and a shifted, perturbed copy, anisotropic spacing
    shape = (24, 20, 12)
    gt = tumour(shape, (11.0, 9.5, 5.5), (8, 7, 4.5), rng)
    pr = perturb(tumour(shape, (12.3, 9.0, 6.0), (7.5, 7.5, 4.0), rng), rng)
    cases.append(("lesion_aniso", gt, pr, (0.8, 1.1, 2.5)))

    # 2. a lesion cut by the volume border (surface voxels on the border)
    shape = (16, 18, 10)
    gt = tumour(shape, (2.0, 9.0, 8.0), (9, 8, 5), rng)
    pr = perturb(tumour(shape, (1.0, 10.0, 9.0), (8, 9, 5), rng), rng, 0.05)
    cases.append(("border", gt, pr, (1.0, 1.0, 1.0)))

    # 3. scattered voxels (many surfaces, many equal distances)
    shape = (14, 12, 9)
    gt = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=shape, p=[0.7, 0.1, 0.1, 0.1])
    pr = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=shape, p=[0.7, 0.1, 0.1, 0.1])
    cases.append(("scattered", gt, pr, (1.2, 0.7, 1.9)))

    # 4. empty regions: no ET in the ground truth, no NCR in the prediction
    shape = (18, 16, 10)
    gt = tumour(shape, (9.0, 8.0, 5.0), (7, 6, 4), rng)
    gt[gt == 4] = 2
    pr = tumour(shape, (8.0, 8.5, 5.0), (7, 6, 4), rng)
    pr[pr == 1] = 4
    cases.append(("empty_regions", gt, pr, (1.0, 1.5, 1.0)))

    # 5. identical volumes
    shape = (12, 12, 8)
    gt = tumour(shape, (6.0, 6.0, 4.0), (5, 5, 3), rng)
    cases.append(("identical", gt, gt.copy(), (0.9, 0.9, 3.0)))

    # 6. two lesions, larger grid (over lkaseg's threshold for threads), x-y-z all different
    shape = (44, 38, 26)
    gt = np.maximum(tumour(shape, (12, 10, 8), (9, 8, 6), rng), tumour(shape, (31, 27, 17), (8, 7, 6), rng))
    pr = perturb(np.maximum(tumour(shape, (13, 11, 8), (9, 9, 6), rng), tumour(shape, (30, 26, 18), (9, 6, 5), rng)),
                 rng)
    cases.append(("two_lesions", gt, pr, (0.7, 1.3, 2.2)))
    return cases


# ----------------------------------------------------------------- metrics
CROSS = ndimage.generate_binary_structure(3, 1)


def surface(m):
    return m & ~ndimage.binary_erosion(m, structure=CROSS, border_value=0)


def hd95_ref(p, g, sp):
    sp_ = np.asarray(sp, np.float64)
    sp_p, sp_g = surface(p), surface(g)
    d_pg = ndimage.distance_transform_edt(~sp_g, sampling=sp_)[sp_p]
    d_gp = ndimage.distance_transform_edt(~sp_p, sampling=sp_)[sp_g]
    return max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))


def hd95_monai(p, g, sp):
    import torch
    from monai.metrics import compute_hausdorff_distance

    yp = torch.from_numpy(p[None, None].astype(np.float32))
    yg = torch.from_numpy(g[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = compute_hausdorff_distance(yp, yg, include_background=True, percentile=95, spacing=list(sp))
    return float(v[0, 0])


def hd95_medpy(p, g, sp):
    from medpy.metric.binary import hd95

    return float(hd95(p, g, voxelspacing=sp))


def region_rows(gt, pr, sp):
    from medpy.metric.binary import dc

    rows = []
    for name, labels in REGIONS.items():
        g = np.isin(gt, labels)
        p = np.isin(pr, labels)
        ge, pe = not g.any(), not p.any()
        if ge and pe:
            rows.append((name, 1.0, 0.0, math.nan, math.nan, ge, pe))
        elif ge or pe:
            rows.append((name, 0.0, EMPTY_HD95, math.nan, math.nan, ge, pe))
        else:
            ref = hd95_ref(p, g, sp)
            mon = hd95_monai(p, g, sp)
            if abs(ref - mon) > 1e-5 * max(1.0, ref):
                sys.exit(f"MONAI disagrees with the reference: {ref} vs {mon}")
            rows.append((name, float(dc(p, g)), float(ref), mon, hd95_medpy(p, g, sp), ge, pe))
    return rows


# ----------------------------------------------------------------- file
def rle(a):
    flat = a.flatten(order="F")  # x fastest
    toks = []
    start = 0
    for i in range(1, flat.size + 1):
        if i == flat.size or flat[i] != flat[start]:
            toks.append(f"{int(flat[start])}:{i - start}")
            start = i
    return " ".join(toks)


def fmt(v):
    return "nan" if isinstance(v, float) and math.isnan(v) else repr(float(v))


def render():
    lines = ["# lkaseg metrics golden cases: made by tools/golden/make_metrics_fixtures.py (see its docstring)"]
    for name, gt, pr, sp in make_cases():
        nx, ny, nz = gt.shape
        lines.append(f"case {name} {nx} {ny} {nz} {sp[0]!r} {sp[1]!r} {sp[2]!r}")
        lines.append("pred " + rle(pr))
        lines.append("gt " + rle(gt))
        for r in region_rows(gt, pr, sp):
            lines.append(f"region {r[0]} {fmt(r[1])} {fmt(r[2])} {fmt(r[3])} {fmt(r[4])} {int(r[5])} {int(r[6])}")
        lines.append("end")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="recompute and compare with the committed file")
    a = ap.parse_args()
    text = render()
    if a.check:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} differs from a fresh computation")
        print(f"{OUT}: ok")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
