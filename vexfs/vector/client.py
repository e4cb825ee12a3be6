"""numpy client for VexFS vector collections (the ioctls of ``kernel/ioctl.c``).

A collection is a file on a mounted VexFS. This module opens it, converts
arguments to the exact dtypes and layouts the kernel expects (C-contiguous
float32 rows, uint64 ids), splits large batches into calls the kernel accepts
(``VEXFS_MAX_BATCH`` ids, ``VEXFS_MAX_NQ`` queries) and passes the arrays by
pointer: the kernel copies straight from and into numpy's memory.

``search`` follows FAISS: ``(distances, ids)``, float32 and int64 arrays of
shape ``(nq, k)``, sorted by distance then id; positions past the number of
stored vectors hold distance ``+inf`` and id ``-1`` (the kernel's
``VEXFS_NO_ID``, all ones, read as int64).

Atomicity is per kernel call: a batch larger than one call is several
independent calls.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from vexfs import layout as L
from vexfs.vector import abi

if TYPE_CHECKING:
    from vexfs.vector.index import IndexStats

log = logging.getLogger(__name__)

MetricArg = str | int


def metric_value(metric: MetricArg) -> int:
    """Metric name ("l2", "cosine", "ip") or number -> enum vexfs_metric."""
    if isinstance(metric, str):
        try:
            return abi.METRICS_BY_NAME[metric.lower()]
        except KeyError:
            raise ValueError(f"unknown metric {metric!r}; "
                             f"use one of {sorted(abi.METRICS_BY_NAME)}") from None
    if metric not in abi.METRIC_NAMES:
        raise ValueError(f"unknown metric number {metric}")
    return int(metric)


def as_ids(ids, name: str = "ids") -> np.ndarray:
    """Any integer sequence -> C-contiguous uint64, refusing negatives and non-integers."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def as_matrix(vectors, dim: int, name: str = "vectors") -> np.ndarray:
    """(n, dim) float32 C-contiguous; a single vector of length dim becomes (1, dim)."""
    arr = np.asarray(vectors)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr.reshape(1, dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {arr.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf: rejected below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contain NaN or infinity (or values beyond float32)")
    return out


def _ptr(arr: np.ndarray) -> int:
    return arr.ctypes.data if arr.size else 0


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@dataclass(frozen=True)
class CollectionStats:
    count: int
    dim: int
    metric: str
    record_size: int
    bytes: int
    blocks: int
    simd: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Collection:
    """An open VexFS vector collection. Use as a context manager or call close()."""

    def __init__(self, fd: int, path: str, dim: int, metric: int):
        self._fd = fd
        self.path = path
        self.dim = dim
        self.metric = abi.METRIC_NAMES[metric]

    # ---- opening ----

    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, metric: MetricArg = "l2",
               mode: int = 0o644) -> "Collection":
        """Create (or take an existing empty file as) a collection of dimension dim."""
        if not isinstance(dim, (int, np.integer)) or not 1 <= dim <= abi.VEXFS_MAX_DIM:
            raise ValueError(f"dim must be an integer in 1..{abi.VEXFS_MAX_DIM}, got {dim!r}")
        m = metric_value(metric)
        # remember whether the file is ours: a refused CREATE (not VexFS, not
        # empty, ...) must not leave a new empty file behind
        try:
            fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         mode)
            created = True
        except FileExistsError:
            fd = os.open(os.fspath(path), os.O_RDWR | os.O_CLOEXEC)
            created = False
        try:
            arg = abi.IocCreate(dim=int(dim), metric=m)
            _ioctl(fd, abi.VEXFS_IOC_CREATE, arg, path)
        except BaseException:
            os.close(fd)
            if created:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        log.info("created collection %s dim=%d metric=%s", path, dim, abi.METRIC_NAMES[m])
        return cls(fd, os.fspath(path), int(dim), m)

    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = False) -> "Collection":
        flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
        fd = os.open(os.fspath(path), flags)
        try:
            st = _stats(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, os.fspath(path), st.dim, st.metric)

    def sync(self) -> None:
        """fsync(2): the collection's records and header are on disk when this returns."""
        os.fsync(self.fileno())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("collection is closed")
        return self._fd

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---- queries ----

    def stats(self) -> CollectionStats:
        st = _stats(self.fileno(), self.path)
        return CollectionStats(count=st.count, dim=st.dim, metric=abi.METRIC_NAMES[st.metric],
                               record_size=st.record_size, bytes=st.bytes, blocks=st.blocks,
                               simd=abi.SIMD_NAMES.get(st.simd, str(st.simd)))

    def __len__(self) -> int:
        return self.stats().count

    def search(self, queries, k: int, exact: bool = False,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k: (distances float32 (nq, k), ids int64 (nq, k)), FAISS order.

        With an index and exact=False: approximate (IVF, ``nprobe`` lists per
        query, None = the index's default, plus every pending record);
        otherwise exact. nprobe without an index is an error.
        """
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= abi.VEXFS_MAX_K:
            raise ValueError(f"k must be an integer in 1..{abi.VEXFS_MAX_K}, got {k!r}")
        q = as_matrix(queries, self.dim, "queries")
        if not exact:
            st = self.index_stats()
            if st.nlist:
                return self.search_index(q, k, nprobe)
            if nprobe is not None:
                raise ValueError(f"{self.path} has no index: nprobe needs one "
                                 "(vexfs vec index build)")
        nq = q.shape[0]
        dist = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.uint64)
        for sl in _chunks(nq, abi.VEXFS_MAX_NQ):
            qs, ds, is_ = q[sl], dist[sl], ids[sl]
            arg = abi.IocSearch(queries_ptr=_ptr(qs), distances_ptr=_ptr(ds), ids_ptr=_ptr(is_),
                                nq=qs.shape[0], k=int(k))
            _ioctl(self.fileno(), abi.VEXFS_IOC_SEARCH, arg, self.path)
        return dist, ids.view(np.int64)

    def search_index(self, queries, k: int, nprobe: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k through the index (VEXFS_IOC_INDEX_SEARCH)."""
        if nprobe is not None and (not isinstance(nprobe, (int, np.integer)) or
                                   not 1 <= nprobe <= L.VEXFS_INDEX_MAX_NLIST):
            raise ValueError(f"nprobe must be an integer in 1..{L.VEXFS_INDEX_MAX_NLIST}")
        q = as_matrix(queries, self.dim, "queries")
        nq = q.shape[0]
        dist = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.uint64)
        self.last_scanned = 0
        for sl in _chunks(nq, abi.VEXFS_MAX_NQ):
            qs, ds, is_ = q[sl], dist[sl], ids[sl]
            arg = abi.IocIndexSearch(queries_ptr=_ptr(qs), distances_ptr=_ptr(ds),
                                     ids_ptr=_ptr(is_), nq=qs.shape[0], k=int(k),
                                     nprobe=int(nprobe or 0))
            _ioctl(self.fileno(), abi.VEXFS_IOC_INDEX_SEARCH, arg, self.path)
            self.last_scanned += arg.scanned
        return dist, ids.view(np.int64)

    # ---- ANN index (vexfs/vector/index.py trains it) ----

    def index_stats(self) -> "IndexStats":
        from vexfs.vector.index import IndexStats
        st = abi.IocIndexStats()
        _ioctl(self.fileno(), abi.VEXFS_IOC_INDEX_STATS, st, self.path)
        return IndexStats(count=st.count, indexed=st.indexed, pending=st.pending,
                          nlist=st.nlist, nprobe=st.nprobe, index_bytes=st.index_bytes,
                          kind="ivf" if st.kind == L.VEXFS_INDEX_KIND_IVF else "none")

    def index_install(self, centroids, nprobe: int) -> None:
        """Install centroids (nlist, dim): every record becomes pending."""
        cent = as_matrix(centroids, self.dim, "centroids")
        arg = abi.IocIndexBuild(centroids_ptr=_ptr(cent), nlist=cent.shape[0],
                                nprobe=int(nprobe))
        _ioctl(self.fileno(), abi.VEXFS_IOC_INDEX_BUILD, arg, self.path)

    def index_assign(self, ids, lists) -> int:
        """Put records (by id) on lists; absent ids are skipped. Returns how many."""
        idv = as_ids(ids)
        lv = np.ascontiguousarray(lists, dtype=np.uint32)
        if lv.shape != idv.shape:
            raise ValueError(f"{idv.shape[0]} ids for {lv.shape[0]} lists")
        got = 0
        for sl in _chunks(idv.shape[0], abi.VEXFS_MAX_BATCH):
            arg = abi.IocIndexAssign(ids_ptr=_ptr(idv[sl]), lists_ptr=_ptr(lv[sl]),
                                     count=sl.stop - sl.start)
            _ioctl(self.fileno(), abi.VEXFS_IOC_INDEX_ASSIGN, arg, self.path)
            got += arg.assigned
        return got

    def build_index(self, nlist: int | None = None, nprobe: int | None = None,
                    sample: int = 20000, niter: int = 10, seed: int = 0,
                    progress=None) -> dict:
        """Train (k-means on a sample), install and fill the index."""
        from vexfs.vector import index
        return index.build(self, nlist=nlist, nprobe=nprobe, sample=sample, niter=niter,
                           seed=seed, progress=progress)

    def compact_index(self, progress=None) -> int:
        """Assign every pending record to its nearest list."""
        from vexfs.vector import index
        return index.compact(self, progress=progress)

    def drop_index(self) -> None:
        fcntl.ioctl(self.fileno(), abi.VEXFS_IOC_INDEX_DROP, 0)

    def get(self, ids, missing: str = "raise") -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Vectors of ids, (n, dim) float32, in the order asked.

        missing="raise": KeyError if any id is absent; missing="mask": return
        (vectors, found) where found is a bool array and absent rows are zero.
        """
        if missing not in ("raise", "mask"):
            raise ValueError("missing must be 'raise' or 'mask'")
        idv = as_ids(ids)
        n = idv.shape[0]
        out = np.zeros((n, self.dim), dtype=np.float32)
        found = np.zeros(n, dtype=np.uint8)
        for sl in _chunks(n, abi.VEXFS_MAX_BATCH):
            arg = abi.IocGet(ids_ptr=_ptr(idv[sl]), vectors_ptr=_ptr(out[sl]),
                             found_ptr=_ptr(found[sl]), count=sl.stop - sl.start)
            _ioctl(self.fileno(), abi.VEXFS_IOC_GET, arg, self.path)
        mask = found.astype(bool)
        if missing == "mask":
            return out, mask
        if not mask.all():
            absent = idv[~mask][:10].tolist()
            raise KeyError(f"ids not in {self.path}: {absent}"
                           f"{' ...' if (~mask).sum() > 10 else ''}")
        return out

    # ---- mutations ----

    def _insert(self, ids, vectors, flags: int) -> tuple[int, int]:
        idv = as_ids(ids)
        vec = as_matrix(vectors, self.dim)
        if vec.shape[0] != idv.shape[0]:
            raise ValueError(f"{idv.shape[0]} ids for {vec.shape[0]} vectors")
        added = updated = 0
        for sl in _chunks(idv.shape[0], abi.VEXFS_MAX_BATCH):
            arg = abi.IocInsert(ids_ptr=_ptr(idv[sl]), vectors_ptr=_ptr(vec[sl]),
                                count=sl.stop - sl.start, flags=flags)
            _ioctl(self.fileno(), abi.VEXFS_IOC_INSERT, arg, self.path)
            added += arg.added
            updated += arg.updated
        return added, updated

    def insert(self, ids, vectors) -> int:
        """Add new vectors; any id already present (or repeated) -> FileExistsError."""
        return self._insert(ids, vectors, 0)[0]

    def upsert(self, ids, vectors) -> tuple[int, int]:
        """Add or overwrite; a repeated id takes its last vector. Returns (added, updated)."""
        return self._insert(ids, vectors, abi.VEXFS_INSERT_UPSERT)

    def delete(self, ids) -> int:
        """Remove ids (absent ones are skipped); returns how many were removed."""
        idv = as_ids(ids)
        deleted = 0
        for sl in _chunks(idv.shape[0], abi.VEXFS_MAX_BATCH):
            arg = abi.IocDelete(ids_ptr=_ptr(idv[sl]), count=sl.stop - sl.start)
            _ioctl(self.fileno(), abi.VEXFS_IOC_DELETE, arg, self.path)
            deleted += arg.deleted
        return deleted


def _ioctl(fd: int, request: int, arg: ctypes.Structure, path: str | os.PathLike) -> None:
    """ioctl with a mutable ctypes struct; errors become OSError naming the file."""
    try:
        fcntl.ioctl(fd, request, arg, True)
    except OSError as e:
        if e.errno == errno.ENOTTY:
            raise OSError(e.errno, "not a VexFS vector collection (or not on VexFS)",
                          os.fspath(path)) from None
        raise OSError(e.errno, os.strerror(e.errno), os.fspath(path)) from None


def _stats(fd: int, path) -> abi.IocStats:
    st = abi.IocStats()
    _ioctl(fd, abi.VEXFS_IOC_STATS, st, path)
    return st
