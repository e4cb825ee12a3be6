"""The ANN (IVF) index of a VexFS collection, userspace half.

The kernel stores and searches the index (``kernel/index.c``); training
happens here, as pgvector trains IVFFlat at build time: a k-means over a
sample of the collection (numpy, float32, a bounded number of rows per
matrix product), then every record is put on the list of its nearest
centroid with ``VEXFS_IOC_INDEX_ASSIGN``. Records inserted or upserted later
are *pending*: the kernel searches them exactly with every query until
``compact`` assigns them too.

The collection file is readable like any file, so records, the assign array
and the centroids are read with ``pread`` (layout in kernel/uapi/vexfs_fs.h).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from vexfs import layout as L

if TYPE_CHECKING:
    from vexfs.vector.client import Collection

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

#: rows per matrix product (bounded memory: ROWS x nlist float32)
ROWS = 4096


@dataclass(frozen=True)
class IndexStats:
    count: int
    indexed: int
    pending: int
    nlist: int
    nprobe: int
    index_bytes: int
    kind: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def default_nlist(n: int) -> int:
    """About sqrt(n) lists, at least 1, at most the kernel's limit.

    Fewer than FAISS's 4 sqrt(n): every query here also scans all centroids
    and the 4-byte assign entry of every record, and k-means runs in the
    (TCG) guest, so the cost of a list is higher than in FAISS."""
    return max(1, min(L.VEXFS_INDEX_MAX_NLIST, int(round(math.sqrt(max(n, 1))))))


def default_nprobe(nlist: int) -> int:
    """max(4, nlist / 30), at most nlist. Measured on fashion-mnist (tests on the host with
    the kernel's IVF code, 200 queries): n=60000, nlist=245: nprobe 4 -> recall@10 0.957,
    8 -> 0.994 (2,479 records scanned per query of 60,000); n=3000, nlist=55: 4 -> 0.977."""
    return max(1, min(nlist, max(4, int(round(nlist / 30)))))


def _prep(x: np.ndarray, metric: str) -> np.ndarray:
    """cosine: the nearest centroid of a unit vector is the one of highest dot."""
    if metric != "cosine":
        return x
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def nearest(x: np.ndarray, cent: np.ndarray, metric: str) -> np.ndarray:
    """Index of the nearest centroid of each row of x, under the collection's metric."""
    out = np.empty(x.shape[0], dtype=np.uint32)
    cn = (cent.astype(np.float32) ** 2).sum(1)
    for s in range(0, x.shape[0], ROWS):
        xs = x[s:s + ROWS]
        dot = xs @ cent.T
        if metric == "l2":
            d = cn[None, :] - 2.0 * dot          # |x|^2 is the same for every centroid
        elif metric == "ip":
            d = -dot
        else:
            d = -dot / np.sqrt(np.maximum(cn, 1e-30))[None, :]
        out[s:s + ROWS] = d.argmin(1)
    return out


def kmeans(x: np.ndarray, nlist: int, niter: int = 10, seed: int = 0,
           metric: str = "l2", progress: Progress | None = None) -> np.ndarray:
    """Lloyd's k-means: nlist float32 centroids of the rows of x (spherical for cosine)."""
    rng = np.random.default_rng(seed)
    x = _prep(np.ascontiguousarray(x, dtype=np.float32), metric)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot train an index on an empty collection")
    nlist = min(nlist, n)
    cent = x[rng.choice(n, nlist, replace=False)].copy()
    for it in range(niter):
        a = nearest(x, cent, "l2" if metric != "ip" else "ip")
        sums = np.zeros_like(cent, dtype=np.float64)
        np.add.at(sums, a, x)
        cnt = np.bincount(a, minlength=nlist)
        empty = np.nonzero(cnt == 0)[0]
        cent = (sums / np.maximum(cnt, 1)[:, None]).astype(np.float32)
        if len(empty):      # re-seed empty lists with random rows
            cent[empty] = x[rng.choice(n, len(empty), replace=False)]
        if metric == "cosine":
            cent = _prep(cent, "cosine")
        if progress:
            progress("kmeans", it + 1, niter)
    return cent


def read_records(coll: "Collection", start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids uint64, vectors float32) of record slots [start, start + n) via pread."""
    from vexfs.fs.collection import record_dtype
    rs = L.collection_record_size(coll.dim)
    raw = os.pread(coll.fileno(), n * rs, L.VEXFS_DATA_OFFSET + start * rs)
    recs = np.frombuffer(raw, dtype=record_dtype(coll.dim, rs), count=len(raw) // rs)
    return recs["id"].copy(), np.ascontiguousarray(recs["vec"], dtype=np.float32)


def read_assign(coll: "Collection", count: int) -> np.ndarray:
    """The assign entries of slots [0, count): list + 1, or 0 for pending."""
    raw = os.pread(coll.fileno(), count * 4, L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_ASSIGN_OFF)
    out = np.zeros(count, dtype=np.uint32)
    got = np.frombuffer(raw, dtype="<u4")
    out[:len(got)] = got
    return out


def read_centroids(coll: "Collection", nlist: int) -> np.ndarray:
    dim4 = (coll.dim + 3) & ~3
    raw = os.pread(coll.fileno(), nlist * dim4 * 4,
                   L.VEXFS_INDEX_BASE + L.VEXFS_INDEX_CENT_OFF)
    return np.frombuffer(raw, dtype="<f4").reshape(nlist, dim4)[:, :coll.dim].copy()


def _header_count(coll: "Collection") -> int:
    head = L.CollectionHeader.unpack(os.pread(coll.fileno(), L.COLLECTION_HEADER_SIZE, 0))
    return int(head.c_count)


def assign_slots(coll: "Collection", cent: np.ndarray, slots: np.ndarray | None,
                 count: int, progress: Progress | None = None) -> int:
    """Put the records of the given slots (None: all of [0, count)) on their nearest list."""
    assigned = 0
    chunk = 16384
    todo = np.arange(count, dtype=np.int64) if slots is None else np.asarray(slots, np.int64)
    if len(todo) == 0:
        return 0
    # contiguous runs are read in one pread; scattered slots a run at a time
    breaks = np.nonzero(np.diff(todo) != 1)[0] + 1
    runs = np.split(todo, breaks)
    batch_ids: list[np.ndarray] = []
    batch_vecs: list[np.ndarray] = []
    pending = 0
    done = 0

    def flush() -> int:
        nonlocal batch_ids, batch_vecs, pending
        if not batch_ids:
            return 0
        ids = np.concatenate(batch_ids)
        vecs = np.concatenate(batch_vecs)
        lists = nearest(_prep(vecs, coll.metric), cent, coll.metric)
        got = coll.index_assign(ids, lists)
        batch_ids, batch_vecs, pending = [], [], 0
        return got

    for run in runs:
        for s in range(0, len(run), chunk):
            part = run[s:s + chunk]
            ids, vecs = read_records(coll, int(part[0]), len(part))
            batch_ids.append(ids)
            batch_vecs.append(vecs)
            pending += len(ids)
            done += len(part)
            if pending >= chunk:
                assigned += flush()
                if progress:
                    progress("assign", done, len(todo))
    assigned += flush()
    if progress:
        progress("assign", done, len(todo))
    return assigned


def build(coll: "Collection", nlist: int | None = None, nprobe: int | None = None,
          sample: int = 20000, niter: int = 10, seed: int = 0,
          progress: Progress | None = None) -> dict:
    """Train centroids on a sample, install them, assign every record. Returns timings."""
    t0 = time.perf_counter()
    count = _header_count(coll)
    if count == 0:
        raise ValueError(f"{coll.path}: cannot build an index on an empty collection")
    nl = default_nlist(count) if nlist is None else int(nlist)
    if not 1 <= nl <= L.VEXFS_INDEX_MAX_NLIST:
        raise ValueError(f"nlist must be in 1..{L.VEXFS_INDEX_MAX_NLIST}, got {nl}")
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(count, min(count, max(sample, nl)), replace=False))
    rows = [read_records(coll, int(s), 1)[1] for s in take] if len(take) < count // 4 \
        else [read_records(coll, 0, count)[1][take]]
    xs = np.concatenate(rows)
    nl = min(nl, xs.shape[0])
    cent = kmeans(xs, nl, niter=niter, seed=seed, metric=coll.metric, progress=progress)
    t1 = time.perf_counter()
    np_ = nprobe if nprobe is not None else default_nprobe(nl)
    coll.index_install(cent, np_)
    assigned = assign_slots(coll, cent, None, count, progress)
    t2 = time.perf_counter()
    log.info("%s: index built: nlist=%d nprobe=%d, %d records assigned, train %.1fs, "
             "assign %.1fs", coll.path, nl, np_, assigned, t1 - t0, t2 - t1)
    return {"nlist": nl, "nprobe": np_, "assigned": assigned, "train_s": t1 - t0,
            "assign_s": t2 - t1}


def compact(coll: "Collection", progress: Progress | None = None) -> int:
    """Assign every pending record to its nearest list; returns how many were assigned."""
    st = coll.index_stats()
    if not st.nlist:
        raise ValueError(f"{coll.path} has no index (build one first)")
    count = _header_count(coll)
    assign = read_assign(coll, count)
    slots = np.nonzero(assign == 0)[0]
    cent = read_centroids(coll, st.nlist)
    return assign_slots(coll, _prep(cent, coll.metric) if coll.metric == "cosine" else cent,
                        slots, count, progress)
