"""`vexfs bench native`: the kernel's vector core on the host against FAISS and numpy.

The distance kernels, screening and top-k code of ``kernel/vec/`` (the same C
files as in vexfs.ko) run as a host library (vexfs.vector.native) on random
float32 data; FAISS's exact flat indexes (IndexFlatL2, IndexFlatIP) and numpy
brute force answer the same queries. Everything single-threaded (FAISS via
omp_set_num_threads(1), BLAS via OPENBLAS_NUM_THREADS=1 set by the CLI before
numpy loads). Batch = all queries in one call; single = one call per query.
Sides alternate for `rounds` rounds and the best time of each counts (the
host is shared). Answers are checked: the core's ids must equal FAISS's.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: some machines set them (older OpenBLAS
builds misbehave on their CPUs); they also make numpy's and FAISS's BLAS pick
a slower kernel. The benchmark never changes them itself (that would have to
happen before numpy loads, and is a choice for whoever runs it); it records
their values in the JSON. To benchmark against the BLAS's best kernel, run
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE vexfs bench native`.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vexfs.bench.vectors import load_faiss, numpy_topk
from vexfs.vector import native

log = logging.getLogger(__name__)

GOAL_SINGLE = 1.0   # vexfs / FAISS, single queries
GOAL_BATCH = 0.9    # vexfs / FAISS, batches (FAISS uses BLAS sgemm)


@dataclass
class NativeResult:
    n: int
    dim: int
    metric: str
    k: int
    nq: int
    single: int
    vexfs_batch_qps: float
    faiss_batch_qps: float
    numpy_batch_qps: float
    vexfs_single_qps: float
    faiss_single_qps: float
    numpy_single_qps: float
    ratio_batch_faiss: float          # vexfs / faiss
    ratio_single_faiss: float
    ratio_batch_numpy: float          # vexfs / numpy
    ratio_single_numpy: float
    batch_goal_met: bool              # ratio_batch_faiss >= GOAL_BATCH
    single_goal_met: bool             # ratio_single_faiss >= GOAL_SINGLE
    vexfs_single_bytes_per_s: float   # stored-vector bytes compared per second
    id_agreement_faiss: float         # vexfs ids equal to FAISS's
    dtype: str = "float32"            # stored vectors: float32, or float16 (FAISS SQfp16)
    f16cvt: str = ""                  # float16: the core's conversion used

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NativeBench:
    results: list[NativeResult] = field(default_factory=list)
    host_cpu: str = ""
    faiss_version: str = ""
    numpy_version: str = np.__version__
    simd: str = ""
    memory_bandwidth_bytes_per_s: float = 0.0   # measured: large array copy, read + write
    openblas_env: dict = field(default_factory=dict)
    goal_batch: float = GOAL_BATCH
    goal_single: float = GOAL_SINGLE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["results"] = [r.to_dict() for r in self.results]
        return d


def host_cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bandwidth(mib: int = 256, rounds: int = 3) -> float:
    """Bytes/s moved by a copy of a large array (each byte read once, written once)."""
    src = np.ones(mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best


def _best(fn, rounds_state: list[float], i: int) -> Any:
    t = time.perf_counter()
    out = fn()
    rounds_state[i] = min(rounds_state[i], time.perf_counter() - t)
    return out


def numpy_ip_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = -(q @ x.T)
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def bench_one(faiss, x: np.ndarray, q: np.ndarray, metric: str, k: int, single: int,
              rounds: int, dtype: str = "float32") -> NativeResult:
    """One (size, metric, dtype) row. float16: the vectors stored as float16 on
    every side: the core converts inside its distance loop, FAISS is
    IndexScalarQuantizer QT_fp16 (SQfp16), numpy converts the float16 array
    to float32 per call (what a numpy user holding float16 data does)."""
    n, dim = x.shape
    nq = q.shape[0]
    f16 = dtype == "float16"
    ftype = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if f16:
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, ftype)
        index.train(x)
    else:
        index = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    index.add(x)
    x16: np.ndarray = x.astype(np.float16) if f16 else x
    xn = (x * x).sum(axis=1, dtype=np.float32)
    if f16:
        xn = (x16.astype(np.float32) ** 2).sum(axis=1, dtype=np.float32)

        def np_search(qq):
            xs = x16.astype(np.float32)
            return numpy_topk(xs, xn, qq, k) if metric == "l2" else numpy_ip_topk(xs, qq, k)

        def vx_search(qq):
            return native.search_f16(x16, qq, k, metric)
    elif metric == "l2":
        def np_search(qq):
            return numpy_topk(x, xn, qq, k)
    else:
        def np_search(qq):
            return numpy_ip_topk(x, qq, k)
    if not f16:
        def vx_search(qq):
            return native.search(x, qq, k, metric)
    t = [float("inf")] * 6
    vi: Any = None
    fi: Any = None
    for _ in range(rounds):
        _, vi = _best(lambda: vx_search(q), t, 0)
        _, fi = _best(lambda: index.search(q, k), t, 1)
        _best(lambda: np_search(q), t, 2)
        _best(lambda: [vx_search(q[i:i + 1]) for i in range(single)], t, 3)
        _best(lambda: [index.search(q[i:i + 1], k) for i in range(single)], t, 4)
        _best(lambda: [np_search(q[i:i + 1]) for i in range(single)], t, 5)
    del index
    vb, fb, nb = nq / t[0], nq / t[1], nq / t[2]
    vs, fs, ns = single / t[3], single / t[4], single / t[5]
    return NativeResult(
        n=n, dim=dim, metric=metric, k=k, nq=nq, single=single,
        vexfs_batch_qps=vb, faiss_batch_qps=fb, numpy_batch_qps=nb,
        vexfs_single_qps=vs, faiss_single_qps=fs, numpy_single_qps=ns,
        ratio_batch_faiss=vb / fb, ratio_single_faiss=vs / fs,
        ratio_batch_numpy=vb / nb, ratio_single_numpy=vs / ns,
        batch_goal_met=vb / fb >= GOAL_BATCH, single_goal_met=vs / fs >= GOAL_SINGLE,
        vexfs_single_bytes_per_s=vs * (x16.nbytes if f16 else x.nbytes),
        id_agreement_faiss=float((vi == fi).mean()), dtype=dtype,
        f16cvt=native.f16cvt_available()[-1] if f16 else "")


def run(sizes: list[int], dim: int = 128, k: int = 10, nq: int = 100, single: int = 20,
        metrics: tuple[str, ...] = ("l2", "ip"), rounds: int = 3, seed: int = 7,
        float16: bool = True) -> NativeBench:
    faiss = load_faiss()
    if faiss is None:
        raise RuntimeError("faiss-cpu is not installed (pip install 'vexfs[test]')")
    out = NativeBench(host_cpu=host_cpu(), faiss_version=faiss.__version__,
                      simd=native.default_simd(),
                      openblas_env={v: os.environ.get(v) for v in
                                    ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                     "OPENBLAS_NUM_THREADS")})
    out.memory_bandwidth_bytes_per_s = memory_bandwidth()
    rng = np.random.default_rng(seed)
    for n in sizes:
        x = rng.standard_normal((n, dim), dtype=np.float32)
        q = rng.standard_normal((nq, dim), dtype=np.float32)
        for metric in metrics:
            log.info("n=%d %s", n, metric)
            out.results.append(bench_one(faiss, x, q, metric, k, min(single, nq), rounds))
        if float16:
            log.info("n=%d l2 float16", n)
            out.results.append(bench_one(faiss, x, q, "l2", k, min(single, nq), rounds,
                                         dtype="float16"))
        del x
    return out
