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
    vectors: "np.ndarray[Any, Any]"    # float32, (count, dim)
    flags: "np.ndarray[Any, Any]"      # uint32, (count,) r_flags
    #: the ANN index ({nlist, nprobe, indexed, pending}) or None
    index: dict[str, int] | None = None

    @property
    def metric_name(self) -> str:
        return L.METRIC_NAMES.get(self.metric, f"unknown({self.metric})")


def collection_header_problems(h: L.CollectionHeader) -> list[str]:
    p = []
    if h.c_magic != L.VEXFS_COLLECTION_MAGIC:
        p.append(f"bad collection magic 0x{h.c_magic:08x}")
        return p
    if h.c_version != L.VEXFS_COLLECTION_VERSION:
        p.append(f"unsupported collection version {h.c_version}")
    if not 1 <= h.c_dim <= L.VEXFS_MAX_DIM:
        p.append(f"dimension {h.c_dim} is outside 1..{L.VEXFS_MAX_DIM}")
    if h.c_metric not in L.METRIC_NAMES:
        p.append(f"unknown metric {h.c_metric}")
    elif 1 <= h.c_dim <= L.VEXFS_MAX_DIM and \
            h.c_record_size != L.collection_record_size(h.c_dim):
        p.append(f"record size {h.c_record_size} is not "
                 f"{L.collection_record_size(h.c_dim)} for dimension {h.c_dim}")
    if h.c_flags & ~L.VEXFS_COLL_FLAGS:
        p.append(f"unknown c_flags 0x{h.c_flags & ~L.VEXFS_COLL_FLAGS:x}")
    return p


def index_end(dim: int, nlist: int) -> int:
    """i_size of a collection with an index of nlist lists."""
    return L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_CENT_OFF + nlist * 4 * ((dim + 3) & ~3)


def index_max_records(record_size: int) -> int:
    return min((L.VEXFS_INDEX_BASE - L.VEXFS_DATA_OFFSET) // record_size,
               (L.VEXFS_INDEX_CENT_OFF - L.VEXFS_INDEX_ASSIGN_OFF) // 4)


def index_header_problems(x: L.IndexHeader, h: L.CollectionHeader) -> list[str]:
    """What the kernel's idx_load() would refuse (EUCLEAN) in an index header."""
    p = []
    if x.x_magic != L.VEXFS_INDEX_MAGIC:
        return [f"bad index magic 0x{x.x_magic:08x}"]
    if x.x_version != L.VEXFS_INDEX_VERSION or x.x_kind != L.VEXFS_INDEX_KIND_IVF:
        p.append(f"unsupported index version {x.x_version} kind {x.x_kind}")
    if not L.struct_checksum_ok(x):
        p.append("index header checksum mismatch")
    if not 1 <= x.x_nlist <= L.VEXFS_INDEX_MAX_NLIST:
        p.append(f"nlist {x.x_nlist} is outside 1..{L.VEXFS_INDEX_MAX_NLIST}")
    elif not 1 <= x.x_nprobe <= x.x_nlist:
        p.append(f"default nprobe {x.x_nprobe} is outside 1..{x.x_nlist}")
    if x.x_dim != h.c_dim or x.x_metric != h.c_metric:
        p.append(f"index dim/metric {x.x_dim}/{x.x_metric} differ from the collection's "
                 f"{h.c_dim}/{h.c_metric}")
    if x.x_flags:
        p.append(f"reserved x_flags is 0x{x.x_flags:x}")
    if x.x_alloc > index_max_records(h.c_record_size):
        p.append(f"x_alloc {x.x_alloc} is beyond the record limit")
    return p


def record_dtype(dim: int, record_size: int, elem: str = "<f4") -> "np.dtype[Any]":
    import numpy as np
    fields: list[tuple[Any, ...]] = [("id", "<u8"), ("flags", "<u4"), ("res", "<u4"),
                                     ("vec", elem, (dim,))]
    pad = record_size - 16 - np.dtype(elem).itemsize * dim
    if pad:
        fields.append(("pad", "V", pad))
    return np.dtype(fields)


def collection_bytes(dim: int, metric: int, ids: "np.ndarray", vectors: "np.ndarray") -> bytes:
    """The file content of a float32 collection: header block then dense records."""
    import numpy as np
    rs = L.collection_record_size(dim)
    n = len(ids)
    head = L.CollectionHeader(c_magic=L.VEXFS_COLLECTION_MAGIC,
                              c_version=L.VEXFS_COLLECTION_VERSION, c_dim=dim,
                              c_metric=metric, c_count=n, c_record_size=rs)
    L.seal(head)
    block = bytearray(L.VEXFS_DATA_OFFSET)
    block[:L.COLLECTION_HEADER_SIZE] = bytes(head)
    recs = np.zeros(n, dtype=record_dtype(dim, rs))
    recs["id"] = ids
    recs["vec"] = vectors
    return bytes(block) + recs.tobytes()
