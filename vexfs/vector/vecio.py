"""Reading vector files for `vexfs vec`: .npy, .fvecs and text.

Text format: one vector per line; numbers separated by spaces and/or commas,
optionally wrapped in [ ] and optionally preceded by a label and a colon,
which is ignored; blank lines and lines starting with # are skipped. Every
line must have the same number of values. (The spec's scenario 5 writes such
files: "vector_1: [1.0, 2.0, 3.0, 4.0]".)

.fvecs (the TEXMEX/FAISS format): each vector is an int32 little-endian
dimension d followed by d float32 values; every vector must have the same d.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_SPLIT = re.compile(r"[\s,]+")
# "vector_1: [...]": a label is a name, not a number, so "1e3: ..." is no label
_LABEL = re.compile(r"^[A-Za-z_][\w.\-]*\s*:\s*")


class VectorFileError(ValueError):
    """A vector file that cannot be parsed; the message names file and line."""


def parse_text_vectors(text: str, source: str = "<text>") -> np.ndarray:
    rows: list[list[float]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = _LABEL.sub("", line, count=1)
        if line.startswith("["):
            if not line.endswith("]"):
                raise VectorFileError(f"{source}:{lineno}: '[' without closing ']'")
            line = line[1:-1].strip()
        elif line.endswith("]"):
            raise VectorFileError(f"{source}:{lineno}: ']' without opening '['")
        fields = [f for f in _SPLIT.split(line) if f]
        if not fields:
            raise VectorFileError(f"{source}:{lineno}: empty vector")
        try:
            values = [float(f) for f in fields]
        except ValueError as e:
            raise VectorFileError(f"{source}:{lineno}: {e}") from None
        if rows and len(values) != len(rows[0]):
            raise VectorFileError(f"{source}:{lineno}: {len(values)} values, "
                                  f"expected {len(rows[0])} like the first vector")
        rows.append(values)
    if not rows:
        raise VectorFileError(f"{source}: no vectors")
    return np.asarray(rows, dtype=np.float32)


def parse_fvecs(data: bytes, source: str = "<fvecs>") -> np.ndarray:
    if len(data) < 4:
        raise VectorFileError(f"{source}: too short for an fvecs file")
    dim = int(np.frombuffer(data[:4], dtype="<i4")[0])
    if dim < 1:
        raise VectorFileError(f"{source}: bad dimension {dim}")
    row = 4 + 4 * dim
    if len(data) % row:
        raise VectorFileError(f"{source}: size {len(data)} is not a multiple of "
                              f"the record size {row} for dimension {dim}")
    raw = np.frombuffer(data, dtype="<i4").reshape(-1, 1 + dim)
    bad = np.nonzero(raw[:, 0] != dim)[0]
    if bad.size:
        raise VectorFileError(f"{source}: vector {int(bad[0])} has dimension "
                              f"{int(raw[bad[0], 0])}, expected {dim}")
    return raw[:, 1:].view("<f4").astype(np.float32)


def write_fvecs(path: Path, vectors: np.ndarray) -> None:
    vec = np.ascontiguousarray(vectors, dtype="<f4")
    n, dim = vec.shape
    out = np.empty((n, dim + 1), dtype="<i4")
    out[:, 0] = dim
    out[:, 1:] = vec.view("<i4")
    path.write_bytes(out.tobytes())


def read_vectors(path: str | Path) -> np.ndarray:
    """(n, dim) float32 from .npy, .fvecs or a text file (anything else)."""
    p = Path(path)
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise VectorFileError(f"{p}: expected a 1-D or 2-D array, got shape {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise VectorFileError(f"{p}: not a numeric array ({arr.dtype})")
        return np.ascontiguousarray(arr, dtype=np.float32)
    if p.suffix == ".fvecs":
        return parse_fvecs(p.read_bytes(), str(p))
    return parse_text_vectors(p.read_text(), str(p))


def parse_id_list(values: list[str] | tuple[str, ...]) -> np.ndarray:
    """ids given on the command line: "1 2 3", "1,2,3" or ranges "10-19"."""
    out: list[int] = []
    for value in values:
        for part in (x for x in _SPLIT.split(value) if x):
            m = re.fullmatch(r"(\d+)-(\d+)", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ValueError(f"empty id range {part!r}")
                out.extend(range(lo, hi + 1))
            elif part.isdigit():
                out.append(int(part))
            else:
                raise ValueError(f"not an id or id range: {part!r}")
    if any(i >= 1 << 64 for i in out):
        raise ValueError("ids must fit in 64 bits")
    return np.asarray(out, dtype=np.uint64)
