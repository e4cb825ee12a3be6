"""The portable vector core (kernel/vec/) in userspace, under ASan + UBSan.

The Debian guest kernel has no KASAN, so memory errors in the distance
kernels, the screening and the top-k code are caught here: the same C files
are built with -fsanitize=address,undefined into kernel/vec/host/vec_cli,
which runs a file of random cases (random dims 1-4096, counts, k, query
counts, all metrics, every SIMD path this CPU has; buffers allocated at their
exact size, rows not padded) and whose answers are checked against numpy in
float64. The ctypes library (vexfs.vector.native) is checked the same way.
"""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess

import numpy as np
import pytest

from vexfs.vector import native

METRICS = {"l2": 0, "cosine": 1, "ip": 2}
SIMD = {"scalar": 0, "sse2": 1, "avx2": 2}


def reference(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """All distances (nq, n) in float64, the kernel's definitions (vector.h)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    dot = q64 @ x64.T
    if metric == "ip":
        return -dot
    qn, xn = (q64 * q64).sum(1), (x64 * x64).sum(1)
    if metric == "l2":  # float64 expansion: its error is far below float32's
        return np.maximum(qn[:, None] + xn[None, :] - 2.0 * dot, 0.0)
    den = np.sqrt(qn[:, None] * xn[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(den > 0, 1.0 - dot / np.where(den > 0, den, 1.0), 1.0)
    return cos


def check_answers(x, q, metric, k, d, ids) -> list[str]:
    """Problems with (d, ids) as the exact top-k of q over x (empty: correct).

    Ties make ids ambiguous, so what is checked is: each id valid and
    distinct, its distance equal to the reference distance of that id, the
    distances sorted and equal to the reference's k smallest, and padding
    (+inf, -1) exactly past n."""
    n = x.shape[0]
    ref = reference(x, q, metric) if n else np.zeros((q.shape[0], 0))
    hits = min(k, n)
    problems = []
    for qi in range(q.shape[0]):
        di, ii = d[qi], ids[qi]
        if not (np.all(np.isinf(di[hits:])) and np.all(ii[hits:] == -1)):
            problems.append(f"q{qi}: padding past {hits} wrong: {di[hits:][:3]} {ii[hits:][:3]}")
        got = ii[:hits]
        if len(set(got.tolist())) != hits or got.min(initial=0) < 0 or got.max(initial=0) >= max(n, 1):
            problems.append(f"q{qi}: ids not {hits} distinct rows: {got[:10]}")
            continue
        if metric == "l2":
            scale = (q[qi].astype(np.float64) ** 2).sum() + (x[got].astype(np.float64) ** 2).sum(1)
        elif metric == "ip":
            scale = np.sqrt((q[qi].astype(np.float64) ** 2).sum() *
                            (x[got].astype(np.float64) ** 2).sum(1))
        else:
            scale = np.ones(hits)
        tol = 1e-5 * np.maximum(scale, 1e-30) * max(1.0, np.sqrt(x.shape[1]) / 8) + 1e-6
        own = ref[qi, got]
        if np.any(np.abs(di[:hits] - own) > tol):
            j = int(np.argmax(np.abs(di[:hits] - own) - tol))
            problems.append(f"q{qi}: distance of id {got[j]} {di[j]} vs reference {own[j]}")
        if np.any(np.diff(di[:hits]) < 0):
            problems.append(f"q{qi}: distances not sorted")
        best = np.sort(ref[qi])[:hits]
        if np.any(np.abs(np.sort(own) - best) > 2 * tol):
            problems.append(f"q{qi}: not the k nearest: {np.sort(own)[:4]} vs {best[:4]}")
    return problems


def random_case(rng: np.random.Generator):
    dim = int(rng.choice([rng.integers(1, 17), rng.integers(1, 300), rng.integers(1, 4097)]))
    n = int(rng.integers(0, max(2, min(3000, 200_000 // dim))))
    nq = int(rng.choice([1, 2, 3, rng.integers(1, 80)]))
    k = int(rng.choice([1, rng.integers(1, 20), rng.integers(1, 1025)]))
    metric = str(rng.choice(list(METRICS)))
    scale = float(rng.choice([1e-3, 1.0, 100.0]))
    x = (rng.standard_normal((n, dim)) * scale).astype(np.float32)
    q = (rng.standard_normal((nq, dim)) * scale).astype(np.float32)
    if n and rng.random() < 0.3:
        q[0] = x[rng.integers(n)]          # an exact stored vector
    if n > 3 and rng.random() < 0.2:
        x[1] = x[2]                        # duplicate vectors: ties
    if rng.random() < 0.1:
        q[-1] = 0                          # zero query (cosine: distance 1)
    return x, q, k, metric


CVT = {"scalar": 0, "sse2": 1, "f16c": 2}


def write_case(f, x, q, k, metric, simd, cvt: str | None = None) -> None:
    """x float32, or float16 (a float16 collection's search, converter cvt)."""
    n, dim = x.shape
    f16 = x.dtype == np.float16
    f.write(struct.pack("<6IiIi", n & 0xFFFFFFFF, n >> 32, dim, q.shape[0], k, METRICS[metric],
                        SIMD[simd], 1 if f16 else 0, CVT[cvt] if cvt else -1))
    f.write(x.tobytes())
    f.write(q.tobytes())


@pytest.fixture(scope="module")
def cli():
    if not shutil.which("cc"):
        pytest.fail("no C compiler (cc): the vector core tests need one")
    return native.build(sanitize=True)


def test_core_fuzz_under_asan_ubsan(cli, tmp_path):
    rng = np.random.default_rng(20261202)
    paths = native.simd_available()
    cvts = native.f16cvt_available()
    cases = []
    with open(tmp_path / "cases", "wb") as f:
        for i in range(80):
            x, q, k, metric = random_case(rng)
            simd = paths[i % len(paths)]
            cvt = None
            if i % 4 == 3:          # every 4th case: float16 storage, each converter
                with np.errstate(over="ignore"):
                    x = x.astype(np.float16)
                x[~np.isfinite(x)] = 0
                cvt = cvts[(i // 4) % len(cvts)]
            write_case(f, x, q, k, metric, simd, cvt)
            cases.append((x, q, k, metric, f"{simd}/{cvt}" if cvt else simd))
    res = subprocess.run([str(cli), str(tmp_path / "cases"), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"vec_cli (ASan/UBSan) failed:\n{res.stderr[-4000:]}"
    assert "runtime error" not in res.stderr, res.stderr[-4000:]
    out = (tmp_path / "out").read_bytes()
    pos, problems = 0, []
    for x, q, k, metric, simd in cases:
        rc, = struct.unpack_from("<i", out, pos)
        pos += 4
        m = q.shape[0] * k
        d = np.frombuffer(out, np.float32, m, pos).reshape(q.shape[0], k)
        pos += 4 * m
        ids = np.frombuffer(out, np.int64, m, pos).reshape(q.shape[0], k)
        pos += 8 * m
        where = f"n={x.shape[0]} dim={x.shape[1]} nq={q.shape[0]} k={k} {metric} {simd}"
        if rc != 0:
            problems.append(f"{where}: rc {rc}")
            continue
        # float16 cases: checked against float64 on the stored (float16) values
        problems += [f"{where}: {p}" for p in
                     check_answers(x.astype(np.float32), q, metric, k, d, ids)[:3]]
    assert pos == len(out)
    assert not problems, "\n".join(problems[:20])


def test_core_bad_arguments_under_asan(cli, tmp_path):
    x = np.ones((4, 8), np.float32)
    bad = [(0, "l2"), (1025, "l2")]
    with open(tmp_path / "cases", "wb") as f:
        for k, metric in bad:
            write_case(f, x, x[:1], k, metric, "scalar")
    res = subprocess.run([str(cli), str(tmp_path / "cases"), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = (tmp_path / "out").read_bytes()
    assert struct.unpack_from("<i", out, 0)[0] == -errno.EINVAL


def test_native_library_matches_numpy_on_every_path():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5000, 128), dtype=np.float32)
    q = rng.standard_normal((70, 128), dtype=np.float32)
    for simd in native.simd_available():
        for metric in METRICS:
            d, i = native.search(x, q, 10, metric, simd=simd)
            assert not check_answers(x, q, metric, 10, d, i), (simd, metric)
    with pytest.raises(OSError):
        native.search(x, q, 0)


# ---- float16 storage ----

def test_f16_conversion_exact_for_every_value():
    """Every one of the 65536 float16 bit patterns converts to numpy's float32
    value with every converter (NaN to a NaN: F16C quiets signalling NaNs)."""
    h = np.arange(65536, dtype=np.uint16).view(np.float16)
    ref = h.astype(np.float32)
    nan = np.isnan(h)
    for cvt in native.f16cvt_available():
        got = native.f16_to_f32(h, cvt)
        assert np.array_equal(got.view(np.uint32)[~nan], ref.view(np.uint32)[~nan]), cvt
        assert np.isnan(got[nan]).all(), cvt
    assert "sse2" in native.f16cvt_available()


def f16_bound(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """The documented error bound of float16 storage, per (query, vector), for the
    distance against numpy float32 on the original data (docs/vector-api.md):
    e = |x16 - x| <= 2^-11 |x| + 2^-25 per element (round to nearest), so
      L2:     |sqrt(d16) - sqrt(d)| <= |e|  ->  |d16 - d| <= 2 sqrt(d) |e| + |e|^2
      IP:     |ip16 - ip| <= |q| |e|
      cosine: |c16 - c| <= 2 |e| / |x|  (for x != 0)
    plus float32 arithmetic (1e-5 relative, as for float32 collections)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    e = 2.0 ** -11 * np.sqrt((x64 ** 2).sum(1)) + 2.0 ** -25 * np.sqrt(x.shape[1])  # (n,)
    d = reference(x, q, metric)
    qn = np.sqrt((q64 ** 2).sum(1))[:, None]
    xn = np.sqrt((x64 ** 2).sum(1))[None, :]
    if metric == "l2":
        b = 2 * np.sqrt(d) * e[None, :] + e[None, :] ** 2
        return b + 1e-5 * (qn ** 2 + xn ** 2) + 1e-6
    if metric == "ip":
        return qn * e[None, :] + 1e-5 * qn * xn + 1e-6
    return np.broadcast_to(2 * e[None, :] / np.maximum(xn, 1e-30) + 1e-5, d.shape)


def test_f16_search_accuracy_against_numpy_float32():
    """float16 storage vs numpy float32 on the same (unrounded) data: every
    returned distance is within the documented bound of numpy's float32
    distance for that id, and the recall of the exact float32 top-10 is high;
    against the float16 values themselves the answers are exact (as float32)."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((20000, 128), dtype=np.float32)
    q = rng.standard_normal((50, 128), dtype=np.float32)
    x16 = x.astype(np.float16)
    for metric in METRICS:
        ref32 = reference(x, q, metric)            # numpy, float32 data (float64 math)
        bound = f16_bound(x, q, metric)
        exact = np.argsort(ref32, axis=1, kind="stable")[:, :10]
        for simd in native.simd_available():
            for cvt in native.f16cvt_available():
                d, ids = native.search_f16(x16, q, 10, metric, simd=simd, cvt=cvt)
                assert not check_answers(x16.astype(np.float32), q, metric, 10, d, ids), \
                    (metric, simd, cvt)
                rows = np.arange(q.shape[0])[:, None]
                err = np.abs(d - ref32[rows, ids])
                assert (err <= bound[rows, ids]).all(), (metric, simd, cvt, err.max())
                recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
                assert recall >= 0.95, (metric, simd, cvt, recall)


def test_f16_bad_converter_refused():
    x16 = np.ones((4, 8), np.float16)
    with pytest.raises(KeyError):
        native.search_f16(x16, np.ones((1, 8), np.float32), 1, cvt="avx512")
    with pytest.raises(OSError):
        native.f16_to_f32(np.ones(6, np.float16), "sse2")   # not a multiple of 4
