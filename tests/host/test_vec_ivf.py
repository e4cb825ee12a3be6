"""The IVF part of the portable vector core (kernel/vec/vec_ivf.c) on the host.

The same code as VEXFS_IOC_INDEX_SEARCH (kernel/index.c), driven through the
host library (vexfs.vector.native.ivf_search) on random clustered data, every
SIMD path, every metric, and checked against numpy:

* nprobe = nlist visits every row: answers equal the exact search's;
* every returned row is pending or on one of the (numpy-computed) nearest
  lists, and its distance is the exact distance of that row;
* recall never drops as nprobe grows (the visited sets are nested);
* pending rows are always visited; an entry naming no list is EUCLEAN.

A second test runs the same cases in a child process built with
AddressSanitizer + UBSan (kernel/vec/host Makefile SAN=1).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from vexfs.vector import native

METRICS = ("l2", "ip", "cosine")


def ref_dist(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    dot = q64 @ x64.T
    if metric == "ip":
        return -dot
    if metric == "l2":
        return np.maximum((q64 ** 2).sum(1)[:, None] + (x64 ** 2).sum(1)[None, :] - 2 * dot, 0)
    den = np.sqrt((q64 ** 2).sum(1)[:, None] * (x64 ** 2).sum(1)[None, :])
    return np.where(den > 0, 1 - dot / np.where(den > 0, den, 1), 1.0)


def case(seed: int, n: int = 700, dim: int = 13, nlist: int = 16):
    rng = np.random.default_rng(seed)
    cent = rng.normal(0, 3, (nlist, dim)).astype(np.float32)
    lab = rng.integers(0, nlist, n)
    x = (cent[lab] + rng.normal(0, 1, (n, dim))).astype(np.float32)
    q = (cent[rng.integers(0, nlist, 9)] + rng.normal(0, 1, (9, dim))).astype(np.float32)
    assign = (lab + 1).astype(np.uint32)
    assign[rng.random(n) < 0.05] = 0          # some pending rows
    return x, cent, assign, q


def run_checks(simd: str | None) -> list[str]:
    problems = []
    for seed, metric in enumerate(METRICS * 2):
        x, cent, assign, q = case(seed)
        n, nlist, k = x.shape[0], cent.shape[0], 10
        dref = ref_dist(x, q, metric)
        cref = ref_dist(cent, q, metric)
        de, ie = native.search(x, q, k, metric, simd)
        d, i, scanned = native.ivf_search(x, cent, assign, q, k, nlist, metric, simd)
        # one query per distance job here, blocks of four in the exact path: the
        # float rounding may differ in the last bits (ip, cosine), so a tie may flip
        same = np.mean(i == ie)
        if same < 0.99 or not np.allclose(d, de, rtol=1e-5, atol=1e-5):
            problems.append(f"{metric}: nprobe=nlist differs from exact ({same})")
        if scanned != n * q.shape[0]:
            problems.append(f"{metric}: nprobe=nlist scanned {scanned}, not {n * q.shape[0]}")
        last = None
        for nprobe in (1, 2, 4, 8):
            d, i, _ = native.ivf_search(x, cent, assign, q, k, nprobe, metric, simd)
            rec = np.mean([len(set(a) & set(b)) for a, b in zip(i.tolist(), ie.tolist(),
                                                                  strict=True)])
            if last is not None and rec + 1e-9 < last:
                problems.append(f"{metric}: recall fell from {last} to {rec} at {nprobe}")
            last = rec
            for qi in range(q.shape[0]):
                kth = np.sort(cref[qi])[nprobe - 1]
                ok_lists = set(np.nonzero(cref[qi] <= kth + 1e-4 * (abs(kth) + 1))[0])
                for dist_, row in zip(d[qi], i[qi], strict=True):
                    if row < 0:
                        problems.append(f"{metric}: padding with {n} rows")
                        continue
                    if assign[row] and assign[row] - 1 not in ok_lists:
                        problems.append(f"{metric}: row {row} on list {assign[row] - 1} "
                                        f"not among the {nprobe} nearest")
                    want = dref[qi, row]
                    if abs(dist_ - want) > 1e-4 * (abs(want) + 1):
                        problems.append(f"{metric}: distance {dist_} != {want}")
        # pending rows are always visited: query = a pending row finds it first
        pend = np.nonzero(assign == 0)[0][:5]
        if metric == "l2" and len(pend):
            d, i, _ = native.ivf_search(x, cent, assign, x[pend], 1, 1, metric, simd)
            if not np.array_equal(i[:, 0], pend):
                problems.append(f"pending rows not found: {i[:, 0]} vs {pend}")
        bad = assign.copy()
        bad[n // 2] = nlist + 1
        try:
            native.ivf_search(x, cent, bad, q, k, 2, metric, simd)
            problems.append("entry > nlist accepted")
        except OSError as e:
            if e.errno != errno.EUCLEAN:
                problems.append(f"entry > nlist: errno {e.errno}")
    return problems


@pytest.mark.parametrize("simd", ["scalar", "sse2", "avx2"])
def test_ivf_core_matches_numpy(simd):
    if simd not in native.simd_available():
        pytest.skip(f"this CPU cannot run {simd}")
    problems = run_checks(simd)
    assert not problems, "\n".join(problems[:20])


def test_ivf_core_bad_arguments():
    x, cent, assign, q = case(0)
    for kw in ({"k": 0}, {"nprobe": 0}, {"nprobe": cent.shape[0] + 1}):
        args = dict(k=5, nprobe=2)
        args.update(kw)
        with pytest.raises(OSError) as ei:
            native.ivf_search(x, cent, assign, q, args["k"], args["nprobe"])
        assert ei.value.errno == errno.EINVAL


def test_ivf_core_under_asan_ubsan(tmp_path):
    """The same checks with the library built under ASan + UBSan."""
    cli = native.build(sanitize=True)
    san_lib = cli.parent / "libvexfsvec.so"
    res = subprocess.run(["make", "-s", "-C", str(native.VEC_DIR / "host"),
                          f"OUT={cli.parent}", "SAN=1", "all"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True).stdout.strip()
    ubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], capture_output=True,
                           text=True).stdout.strip()
    env = dict(os.environ, LD_PRELOAD=f"{asan} {ubsan}", VEXFS_VECLIB=str(san_lib),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    code = ("import sys; from vexfs.vector import native; import tests.host.test_vec_ivf as t;"
            "p = [m for s in native.simd_available() for m in t.run_checks(s)];"
            "print('\\n'.join(p[:20])); sys.exit(1 if p else 0)")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600, cwd=str(native.REPO_ROOT))
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert "ERROR: AddressSanitizer" not in res.stderr and "runtime error" not in res.stderr
