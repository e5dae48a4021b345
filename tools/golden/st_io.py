"""Minimal safetensors reader/writer shared by the golden-fixture tools.

No dependency on the ``safetensors`` package: the format is simple enough to
write and validate by hand.

File layout
-----------
    bytes [0, 8)        N, the header length: unsigned 64-bit little-endian
    bytes [8, 8+N)      header: UTF-8 JSON, right-padded with ASCII spaces so
                        that 8+N is a multiple of 8 (the data section is
                        8-byte aligned)
    bytes [8+N, EOF)    data section: raw little-endian, C-contiguous tensor
                        bytes

    header JSON:
      {"__metadata__": {"<key>": "<str value>", ...},
       "<tensor>": {"dtype": "F64" | "F32" | "I64" | "I32" | ...,
                    "shape": [d0, d1, ...],        # [] for a 0-d scalar
                    "data_offsets": [begin, end]},  # relative to data start
       ...}

Our writer packs the tensors back to back in the order they appear in the
header (which is the insertion order of the dict it is given).  The reader
checks that by default (``strict_order=True``, what our own fixtures
guarantee); with ``strict_order=False`` it accepts any order of the header
entries as long as the byte ranges tile the data section exactly, with no gap
and no overlap (what files from other writers need).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

# numpy dtype (explicitly little-endian) <-> safetensors dtype tag.
_NP_TO_TAG = {
    np.dtype("<f8"): "F64",
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
    np.dtype("<i2"): "I16",
    np.dtype("i1"): "I8",
    np.dtype("u1"): "U8",
    np.dtype("?"): "BOOL",
}
_TAG_TO_NP = {tag: dt for dt, tag in _NP_TO_TAG.items()}


def to_numpy(t) -> np.ndarray:
    """Convert a tensor/array to a C-contiguous little-endian F64 or I32 numpy
    array (the convention of the per-op fixtures)."""
    import torch  # local: st_io itself needs only numpy

    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if a.dtype.kind == "f":
        a = a.astype("<f8", copy=False)
    elif a.dtype.kind in "iu":
        if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise ValueError("integer tensor does not fit in int32")
        a = a.astype("<i4", copy=False)
    else:
        raise TypeError(f"unsupported dtype {a.dtype}")
    return np.ascontiguousarray(a)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> int:
    """Write ``tensors`` (in dict order) and ``metadata``; return the file size.

    Arrays must already have one of the supported little-endian dtypes
    (see ``_NP_TO_TAG``); they are written C-contiguous.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, arr in tensors.items():
        if name == "__metadata__":
            raise ValueError("reserved tensor name")
        if arr.dtype not in _NP_TO_TAG:
            raise TypeError(f"tensor {name}: unsupported dtype {arr.dtype}")
        header[name] = {
            "dtype": _NP_TO_TAG[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes

    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data section (at 8 + N) is 8-byte aligned.
    header_bytes += b" " * (-(8 + len(header_bytes)) % 8)

    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for arr in tensors.values():
            f.write(np.ascontiguousarray(arr).tobytes(order="C"))
    return 8 + len(header_bytes) + offset


def read_safetensors(path: Path, strict_order: bool = True,
                     require_metadata: bool = True) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Tiny independent reader; validates the layout while parsing.

    Returns (metadata, tensors) with tensors in header order.  A missing
    ``__metadata__`` is an error when ``require_metadata`` (our fixtures always
    have one), else it reads as {}.
    """
    path = Path(path)
    blob = path.read_bytes()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short")
    (n,) = struct.unpack("<Q", blob[:8])
    data_start = 8 + n
    if data_start > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds file")
    if strict_order and data_start % 8 != 0:
        raise ValueError(f"{path}: data section not 8-byte aligned")
    header = json.loads(blob[8:data_start].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    if "__metadata__" in header:
        metadata = header.pop("__metadata__")
    elif require_metadata:
        raise ValueError(f"{path}: header lacks __metadata__")
    else:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: metadata values must be strings")

    data = memoryview(blob)[data_start:]
    tensors: dict[str, np.ndarray] = {}
    ranges: list[tuple[int, int, str]] = []
    expected_begin = 0
    for name, info in header.items():
        if info.get("dtype") not in _TAG_TO_NP:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info.get('dtype')!r}")
        dt = _TAG_TO_NP[info["dtype"]]
        shape = tuple(int(d) for d in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
        if strict_order and begin != expected_begin:
            # Offsets must tile the data section exactly, in header order.
            raise ValueError(f"{path}: tensor {name} not packed (begin {begin} != {expected_begin})")
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name} byte range [{begin}, {end}) outside the data section")
        if end - begin != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise ValueError(f"{path}: tensor {name} size does not match shape")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
        ranges.append((begin, end, name))
        expected_begin = end
    # Any order: the sorted ranges must tile the data section exactly.
    pos = 0
    for begin, end, name in sorted(ranges):
        if begin != pos:
            raise ValueError(f"{path}: tensor {name} starts at {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes")
    return metadata, tensors
