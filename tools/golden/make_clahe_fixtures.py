#!/usr/bin/env python3
"""Golden fixtures for lkaseg's CLAHE (data/clahe.h) from OpenCV.

For every input image below, writes ``tests/golden/clahe/<image>.bin``: the
uint8 input and the output of

    cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles_x, tiles_y)).apply(img)

for each (clip, tiles_x, tiles_y) of that image.  Note OpenCV's order:
tileGridSize is (columns, rows), i.e. (tiles_x, tiles_y).

File format (all integers little-endian)
----------------------------------------
    bytes [0, 8)     magic b"LKCLAHE1"
    uint32 h, uint32 w, uint32 n          image rows, columns, result count
    h*w bytes        the input image, row-major (row = y, column = x)
    n times:
      uint32 tiles_x, uint32 tiles_y, float64 clip_limit
      h*w bytes      OpenCV's output for these settings, row-major

The inputs are drawn from numpy's PCG64 generator with a fixed seed per
image, so regenerating with the same numpy gives the same bytes; the files are
committed, and a new OpenCV version only needs ``--check``.

``--check`` re-reads every file, re-runs OpenCV on the stored input and
compares, and also runs ``clahe_model`` below (a plain numpy statement of the
algorithm lkaseg implements, float32 where OpenCV computes in float) against
the stored outputs: both must agree exactly.

Usage
-----
    /work/pyref/bin/python tools/golden/make_clahe_fixtures.py           # (re)generate
    /work/pyref/bin/python tools/golden/make_clahe_fixtures.py --check   # validate only
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "golden" / "clahe"
MAGIC = b"LKCLAHE1"

ALL6 = [(c, tx, ty) for c in (2.0, 4.0, 0.0) for (tx, ty) in ((8, 8), (4, 2))]


# ----------------------------------------------------------------- inputs
def img_gradient(rng: np.random.Generator) -> np.ndarray:
    """128x128 smooth diagonal gradient (grey 60..140) plus Gaussian noise."""
    y, x = np.mgrid[0:128, 0:128].astype(np.float64)
    base = 60 + 80 * (0.6 * x + 0.4 * y) / 127 + 10 * np.sin(x / 9) * np.cos(y / 13)
    return np.clip(np.rint(base + rng.normal(0, 6, base.shape)), 0, 255).astype(np.uint8)


def img_blob(rng: np.random.Generator) -> np.ndarray:
    """128x128 dark textured field with a saturated (255) disc and a mid-grey
    ramp: huge histogram spikes, so clipping and redistribution are active."""
    y, x = np.mgrid[0:128, 0:128].astype(np.float64)
    base = 30 + 20 * (y / 127) + rng.normal(0, 4, (128, 128))
    base[(x - 80) ** 2 + (y - 52) ** 2 < 22 ** 2] = 255
    ramp = (x > 10) & (x < 40) & (y > 80) & (y < 120)
    base[ramp] = 100 + 2 * (x[ramp] - 10)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def img_odd(rng: np.random.Generator) -> np.ndarray:
    """100 rows x 75 columns (divisible by neither 8 nor, in x, 4): padding."""
    y, x = np.mgrid[0:100, 0:75].astype(np.float64)
    base = 90 + 50 * np.sin(x / 11 + y / 17) + 25 * (((x // 15) + (y // 20)) % 2)
    return np.clip(np.rint(base + rng.normal(0, 10, base.shape)), 0, 255).astype(np.uint8)


def img_rows_div(rng: np.random.Generator) -> np.ndarray:
    """64 x 100: rows divisible by 8, columns not."""
    y, x = np.mgrid[0:64, 0:100].astype(np.float64)
    base = 40 + 1.5 * x + 30 * np.cos(y / 7)
    return np.clip(np.rint(base + rng.normal(0, 12, base.shape)), 0, 255).astype(np.uint8)


def img_tiny(rng: np.random.Generator) -> np.ndarray:
    """8 x 13 uniform noise: with 8x8 tiles the padding exceeds the image."""
    return rng.integers(0, 256, (8, 13), dtype=np.uint8)


def img_constant(rng: np.random.Generator) -> np.ndarray:
    """32 x 32, every pixel 77."""
    del rng
    return np.full((32, 32), 77, np.uint8)


IMAGES = {
    # name: (builder, seed, [(clip, tiles_x, tiles_y), ...])
    "gradient_128x128": (img_gradient, 101, ALL6),
    "blob_128x128": (img_blob, 102, [(2.0, 8, 8), (4.0, 8, 8), (0.0, 8, 8), (2.0, 4, 2)]),
    "odd_100x75": (img_odd, 103, ALL6 + [(40.0, 8, 8)]),
    "rowsdiv_64x100": (img_rows_div, 104, [(2.0, 8, 8), (0.0, 8, 8)]),
    "tiny_8x13": (img_tiny, 105, ALL6 + [(2.0, 3, 5), (0.0, 1, 1), (1.0, 13, 8)]),
    "constant_32x32": (img_constant, 106, ALL6),
}


# ----------------------------------------------------------------- model
def _reflect101(i: int, n: int) -> int:
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i %= period
    return i if i < n else period - i


def clahe_model(img: np.ndarray, clip: float, tiles_x: int, tiles_y: int) -> np.ndarray:
    """The algorithm as data/clahe.h documents it (an independent statement,
    used by --check to confirm those facts against the installed OpenCV)."""
    f32 = np.float32
    h, w = img.shape
    if h % tiles_y == 0 and w % tiles_x == 0:
        ext = img
    else:  # OpenCV pads a full extra tile count on an already-divisible axis
        rows = [_reflect101(i, h) for i in range(h + tiles_y - h % tiles_y)]
        cols = [_reflect101(i, w) for i in range(w + tiles_x - w % tiles_x)]
        ext = img[np.ix_(rows, cols)]
    th, tw = ext.shape[0] // tiles_y, ext.shape[1] // tiles_x
    area = th * tw
    limit = max(int(clip * area / 256), 1) if clip > 0 else 0
    luts = np.zeros((tiles_y, tiles_x, 256), np.uint8)
    scale = f32(255) / f32(area)
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            tile = ext[ty * th:(ty + 1) * th, tx * tw:(tx + 1) * tw]
            hist = np.bincount(tile.ravel(), minlength=256).astype(np.int64)
            if limit > 0:
                excess = int(np.maximum(hist - limit, 0).sum())
                hist = np.minimum(hist, limit) + excess // 256
                rest = excess % 256
                if rest:
                    step = max(256 // rest, 1)
                    i = 0
                    while i < 256 and rest > 0:
                        hist[i] += 1
                        i += step
                        rest -= 1
            cdf = np.cumsum(hist).astype(f32)
            luts[ty, tx] = np.clip(np.rint(cdf * scale), 0, 255)
    xf = np.arange(w).astype(f32) * (f32(1) / f32(tw)) - f32(0.5)
    x1 = np.floor(xf).astype(np.int64)
    xa = (xf - x1.astype(f32)).astype(f32)
    xa1 = f32(1) - xa
    x2 = np.minimum(x1 + 1, tiles_x - 1)
    x1 = np.maximum(x1, 0)
    out = np.empty_like(img)
    inv_th = f32(1) / f32(th)
    for y in range(h):
        yf = f32(f32(y) * inv_th - f32(0.5))
        y1 = int(np.floor(yf))
        ya = f32(yf - f32(y1))
        ya1 = f32(1) - ya
        y2, y1 = min(y1 + 1, tiles_y - 1), max(y1, 0)
        v = img[y]
        top = luts[y1, x1, v].astype(f32) * xa1 + luts[y1, x2, v].astype(f32) * xa
        bot = luts[y2, x1, v].astype(f32) * xa1 + luts[y2, x2, v].astype(f32) * xa
        out[y] = np.clip(np.rint(top * ya1 + bot * ya), 0, 255)
    return out


# ----------------------------------------------------------------- I/O
def opencv_clahe(img: np.ndarray, clip: float, tiles_x: int, tiles_y: int) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles_x, tiles_y)).apply(img)


def write_case(path: Path, img: np.ndarray, results) -> None:
    h, w = img.shape
    parts = [MAGIC, struct.pack("<III", h, w, len(results)), img.tobytes()]
    for clip, tx, ty, out in results:
        parts += [struct.pack("<IId", tx, ty, clip), out.astype(np.uint8).tobytes()]
    path.write_bytes(b"".join(parts))


def read_case(path: Path):
    data = path.read_bytes()
    if data[:8] != MAGIC:
        raise ValueError(f"{path}: bad magic")
    h, w, n = struct.unpack_from("<III", data, 8)
    off = 20
    img = np.frombuffer(data, np.uint8, h * w, off).reshape(h, w)
    off += h * w
    results = []
    for _ in range(n):
        tx, ty, clip = struct.unpack_from("<IId", data, off)
        off += 16
        results.append((clip, tx, ty, np.frombuffer(data, np.uint8, h * w, off).reshape(h, w)))
        off += h * w
    if off != len(data):
        raise ValueError(f"{path}: {len(data) - off} trailing bytes")
    return img, results


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, (build, seed, settings) in IMAGES.items():
        img = build(np.random.default_rng(seed))
        results = [(c, tx, ty, opencv_clahe(img, c, tx, ty)) for c, tx, ty in settings]
        path = out_dir / f"{name}.bin"
        write_case(path, img, results)
        total += path.stat().st_size
        print(f"{path.relative_to(REPO_ROOT)}: {img.shape[0]}x{img.shape[1]}, {len(results)} results")
    print(f"total {total} bytes, OpenCV {cv2.__version__}")


def check(out_dir: Path) -> int:
    bad = 0
    files = sorted(out_dir.glob("*.bin"))
    for path in files:
        img, results = read_case(path)
        for clip, tx, ty, ref in results:
            cv = opencv_clahe(img, clip, tx, ty)
            model = clahe_model(img, clip, tx, ty)
            d_cv = int(np.abs(cv.astype(int) - ref).max())
            d_model = int(np.abs(model.astype(int) - ref).max())
            status = "ok" if d_cv == 0 and d_model == 0 else "MISMATCH"
            bad += status != "ok"
            print(f"{path.name} clip={clip} tiles=({tx},{ty}): opencv diff {d_cv}, model diff {d_model} {status}")
    if not files:
        print(f"no fixtures in {out_dir}")
        return 1
    print(f"{'all ok' if not bad else f'{bad} mismatches'} (OpenCV {cv2.__version__})")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    ap.add_argument("--check", action="store_true", help="validate the existing files only")
    args = ap.parse_args()
    if args.check:
        return check(args.out)
    generate(args.out)
    return check(args.out)


if __name__ == "__main__":
    sys.exit(main())
