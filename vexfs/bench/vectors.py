"""Vector benchmark: VexFS in-kernel k-NN against numpy brute force.

For each collection size: random float32 vectors (fixed seed) are inserted
into a new collection on a mounted VexFS (insert throughput), then the same
queries are answered by the kernel (one SEARCH ioctl for the whole batch, and
one ioctl per query) and by numpy brute force on the same data in the same
process (float32 BLAS matmul for the distances, argpartition + sort for the
top k), and by FAISS's exact flat index (IndexFlatL2) where faiss-cpu is
installed. All sides are single-threaded. The kernel's answers (and numpy's) are checked
against an exact float64 computation, so a fast wrong answer cannot pass as a result.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vexfs.vector import Collection

log = logging.getLogger(__name__)


@dataclass
class SizeResult:
    n: int
    dim: int
    k: int
    metric: str
    nq: int
    insert_batch: int
    insert_s: float
    insert_vps: float                 # vectors per second
    kernel_batch_qps: float           # all queries in one ioctl
    kernel_single_qps: float          # one ioctl per query
    numpy_batch_qps: float            # one matmul for all queries
    numpy_single_qps: float           # one matmul per query
    ratio_batch: float                # kernel / numpy, > 1 means the kernel is faster
    ratio_single: float
    rounds: int                       # alternating timing rounds, best time kept
    id_agreement: float               # kernel ids equal to the exact float64 top-k
    numpy_id_agreement: float         # numpy ids equal to the exact float64 top-k
    max_rel_dist_err: float
    simd: str
    bytes: int
    faiss_batch_qps: float | None = None   # IndexFlatL2, one search() for all queries
    faiss_single_qps: float | None = None  # one search() per query
    faiss_id_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchResult:
    results: list[SizeResult] = field(default_factory=list)
    numpy_version: str = np.__version__
    blas_threads: str = ""
    kernel: str = ""
    faiss_version: str | None = None     # None: faiss-cpu not importable

    def to_dict(self) -> dict:
        return {"numpy_version": self.numpy_version, "blas_threads": self.blas_threads,
                "kernel": self.kernel, "faiss_version": self.faiss_version, "results": [r.to_dict() for r in self.results]}


def numpy_topk(x: np.ndarray, xn: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Squared L2 top-k the way a numpy user writes it: |x|^2 - 2 q.x + |q|^2."""
    d = xn[None, :] - 2.0 * (q @ x.T) + (q * q).sum(axis=1, dtype=np.float32)[:, None]
    k = min(k, x.shape[0])
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    pd = np.take_along_axis(d, part, axis=1)
    order = np.argsort(pd, axis=1, kind="stable")
    return np.take_along_axis(pd, order, axis=1), np.take_along_axis(part, order, axis=1)


def _timed(fn, min_time: float = 0.0, max_reps: int = 1) -> tuple[float, object]:
    """Run fn at least once (more while under min_time, up to max_reps); mean seconds."""
    reps, start, out = 0, time.perf_counter(), None
    while True:
        out = fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or reps >= max_reps:
            return elapsed / reps, out


def load_faiss():
    """faiss, pinned to one thread like the other sides, or None if not installed."""
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return None
    faiss.omp_set_num_threads(1)
    return faiss


def bench_size(directory: Path, n: int, dim: int, k: int, nq: int, batch: int,
               single: int, seed: int, rounds: int = 2, faiss=None) -> SizeResult:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    q = rng.standard_normal((nq, dim), dtype=np.float32)
    ids = np.arange(n, dtype=np.uint64)
    path = directory / f"bench_{n}x{dim}.vcol"
    if path.exists():
        path.unlink()
    with Collection.create(path, dim, "l2") as coll:
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            coll.insert(ids[start:start + batch], x[start:start + batch])
        insert_s = time.perf_counter() - t0
        assert len(coll) == n
        log.info("n=%d: inserted in %.2f s", n, insert_s)

        # Kernel and numpy alternate, `rounds` times, and the best time of
        # each counts: the host running the VM is shared, and interleaving
        # keeps a burst of outside load from favouring one side.
        xn = (x * x).sum(axis=1, dtype=np.float32)
        ks_n = min(single, nq)
        kb_s = ks_s = nb_s = ns_s = float("inf")
        for _ in range(rounds):
            t, (kd, ki) = _timed(lambda: coll.search(q, k))
            kb_s = min(kb_s, t)
            t, (nd, ni) = _timed(lambda: numpy_topk(x, xn, q, k))
            nb_s = min(nb_s, t)
            t, _ = _timed(lambda: [coll.search(q[i:i + 1], k) for i in range(ks_n)])
            ks_s = min(ks_s, t)
            t, _ = _timed(lambda: [numpy_topk(x, xn, q[i:i + 1], k) for i in range(ks_n)])
            ns_s = min(ns_s, t)
        st = coll.stats()

    fb_s = fs_s = float("inf")
    fi = None
    if faiss is not None:
        index = faiss.IndexFlatL2(dim)
        index.add(x)
        for _ in range(rounds):
            t, (_, fi) = _timed(lambda: index.search(q, k))
            fb_s = min(fb_s, t)
            t, _ = _timed(lambda: [index.search(q[i:i + 1], k) for i in range(ks_n)])
            fs_s = min(fs_s, t)
        del index

    # exact float64 reference: which side returns the true neighbours?
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    exact = (x64 * x64).sum(1)[None, :] - 2.0 * (q64 @ x64.T) + (q64 * q64).sum(1)[:, None]
    # A stable (merge/radix) sort, not argpartition or the default quicksort:
    # numpy 2.x routes those through its AVX2 x86-simd-sort code, which gives
    # wrong neighbours (and has crashed) under QEMU 7.2 TCG. See
    # docs/vector-api.md, "Benchmark".
    exact_ids = np.argsort(exact, axis=1, kind="stable")[:, :min(k, n)]
    exact_d = np.take_along_axis(exact, ki.astype(np.int64) % n, axis=1)
    max_rel = float(np.max(np.abs(kd - exact_d) / np.maximum(np.abs(exact_d), 1e-30)))
    agree = float((ki == exact_ids).mean())
    numpy_agree = float((ni == exact_ids).mean())
    faiss_agree = float((fi == exact_ids).mean()) if fi is not None else None
    path.unlink()

    return SizeResult(
        n=n, dim=dim, k=k, metric="l2", nq=nq, insert_batch=batch, rounds=rounds,
        insert_s=insert_s,
        insert_vps=n / insert_s, kernel_batch_qps=nq / kb_s, kernel_single_qps=ks_n / ks_s,
        numpy_batch_qps=nq / nb_s, numpy_single_qps=ks_n / ns_s,
        ratio_batch=(nq / kb_s) / (nq / nb_s), ratio_single=(ks_n / ks_s) / (ks_n / ns_s),
        id_agreement=agree, numpy_id_agreement=numpy_agree, max_rel_dist_err=max_rel,
        simd=st.simd, bytes=st.bytes,
        faiss_batch_qps=nq / fb_s if fi is not None else None,
        faiss_single_qps=ks_n / fs_s if fi is not None else None,
        faiss_id_agreement=faiss_agree)


def run(directory: Path, sizes: list[int], dim: int = 128, k: int = 10, nq: int = 100,
        batch: int = 10000, single: int = 20, seed: int = 42, rounds: int = 2,
        use_faiss: bool = True) -> BenchResult:
    faiss = load_faiss() if use_faiss else None
    out = BenchResult(blas_threads=os.environ.get("OPENBLAS_NUM_THREADS", ""),
                      kernel=os.uname().release,
                      faiss_version=faiss.__version__ if faiss is not None else None)
    for n in sizes:
        out.results.append(bench_size(directory, n, dim, k, nq, batch, single, seed + n,
                                      rounds, faiss))
    return out
