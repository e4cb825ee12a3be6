"""Vector collections: a header block (``struct vexfs_collection_header``)
then dense records (16-byte ``struct vexfs_vector_record`` + the vector,
padded to ``c_record_size``).

numpy is imported inside the functions that need it: mkfs.vexfs and
fsck.vexfs must start fast in a TCG guest and only collections need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vexfs import layout as L

if TYPE_CHECKING:
    import numpy as np

BS = L.VEXFS_BLOCK_SIZE


@dataclass
class Collection:
    dim: int
    metric: int
    count: int
    record_size: int
    ids: "np.ndarray[Any, Any]"        # uint64, (count,)
    vectors: "np.ndarray[Any, Any]"    # float32 or float16 (the c_dtype), (count, dim)
    flags: "np.ndarray[Any, Any]"      # uint32, (count,) r_flags
    dtype: int = L.VEXFS_DTYPE_F32

    @property
    def metric_name(self) -> str:
        return L.METRIC_NAMES.get(self.metric, f"unknown({self.metric})")

    @property
    def dtype_name(self) -> str:
        return L.DTYPE_NAMES.get(self.dtype, f"unknown({self.dtype})")


def collection_header_problems(h: L.CollectionHeader) -> list[str]:
    p = []
    if h.c_magic != L.VEXFS_COLLECTION_MAGIC:
        p.append(f"bad collection magic 0x{h.c_magic:08x}")
        return p
    if h.c_version != L.VEXFS_COLLECTION_VERSION:
        p.append(f"unsupported collection version {h.c_version}")
    if not 1 <= h.c_dim <= L.VEXFS_MAX_DIM:
        p.append(f"dimension {h.c_dim} is outside 1..{L.VEXFS_MAX_DIM}")
    if h.c_dtype not in L.DTYPE_NAMES:
        p.append(f"unknown element type c_dtype {h.c_dtype}")
    if h.c_metric not in L.METRIC_NAMES:
        p.append(f"unknown metric {h.c_metric}")
    elif 1 <= h.c_dim <= L.VEXFS_MAX_DIM and h.c_dtype in L.DTYPE_NAMES and \
            h.c_record_size != L.collection_record_size(h.c_dim, h.c_dtype):
        p.append(f"record size {h.c_record_size} is not "
                 f"{L.collection_record_size(h.c_dim, h.c_dtype)} for dimension {h.c_dim} "
                 f"({L.DTYPE_NAMES[h.c_dtype]})")
    if h.c_flags:
        p.append(f"reserved c_flags is 0x{h.c_flags:x}, not 0")
    return p


def record_dtype(dim: int, record_size: int, elem: str = "<f4") -> "np.dtype[Any]":
    import numpy as np
    fields: list[tuple[Any, ...]] = [("id", "<u8"), ("flags", "<u4"), ("res", "<u4"),
                                     ("vec", elem, (dim,))]
    pad = record_size - 16 - np.dtype(elem).itemsize * dim
    if pad:
        fields.append(("pad", "V", pad))
    return np.dtype(fields)


def collection_bytes(dim: int, metric: int, ids: "np.ndarray", vectors: "np.ndarray",
                     dtype: int = L.VEXFS_DTYPE_F32) -> bytes:
    """The file content of a collection: header block then dense records
    (vectors stored as float32, or rounded to float16 for VEXFS_DTYPE_F16)."""
    import numpy as np
    rs = L.collection_record_size(dim, dtype)
    n = len(ids)
    head = L.CollectionHeader(c_magic=L.VEXFS_COLLECTION_MAGIC,
                              c_version=L.VEXFS_COLLECTION_VERSION, c_dim=dim,
                              c_metric=metric, c_count=n, c_record_size=rs, c_dtype=dtype)
    L.seal(head)
    block = bytearray(L.VEXFS_DATA_OFFSET)
    block[:L.COLLECTION_HEADER_SIZE] = bytes(head)
    recs = np.zeros(n, dtype=record_dtype(dim, rs, L.DTYPE_ELEM[dtype]))
    recs["id"] = ids
    recs["vec"] = vectors
    return bytes(block) + recs.tobytes()
