"""Host-side parts of `vexfs bench vectors`: the numpy baseline and argument checks."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from vexfs.bench.cli import bench
from vexfs.bench.vectors import numpy_topk


def test_numpy_baseline_is_exact_top_k():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 16), dtype=np.float32)
    q = rng.standard_normal((7, 16), dtype=np.float32)
    d, i = numpy_topk(x, (x * x).sum(1), q, 5)
    ref = ((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(i, np.argsort(ref, axis=1)[:, :5])
    np.testing.assert_allclose(d, np.sort(ref, axis=1)[:, :5], rtol=1e-4)
    assert (np.diff(d, axis=1) >= 0).all()


def test_numpy_baseline_k_larger_than_n():
    x = np.eye(3, dtype=np.float32)
    d, i = numpy_topk(x, (x * x).sum(1), x[:1], 10)
    assert i.shape == (1, 3) and i[0, 0] == 0 and d[0, 0] == 0


def test_bench_cli_rejects_bad_sizes(tmp_path):
    for sizes in ("", "10,x", "0"):
        res = CliRunner().invoke(bench, ["vectors", "--dir", str(tmp_path), "--sizes", sizes])
        assert res.exit_code == 2, res.output
    res = CliRunner().invoke(bench, ["vectors", "--dir", str(tmp_path / "missing")])
    assert res.exit_code == 2


def _full_float64_topk(x, q, k):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    d = ((x64[None, :, :] - q64[:, None, :]) ** 2).sum(2)
    return np.argsort(d, axis=1, kind="stable")[:, :k], d


def test_exact_topk_equals_a_full_float64_sort():
    """The bench's cheaper reference (float32 screening with an error bound,
    float64 re-rank of the candidates) gives exactly the full float64
    top-k, ties by smaller id included (duplicated vectors, a query equal to
    a stored vector, clustered data where many distances are close)."""
    from vexfs.bench.vectors import exact_topk

    rng = np.random.default_rng(11)
    for n, dim, k in ((500, 128, 10), (300, 7, 20), (50, 3, 50), (2000, 16, 1)):
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x[n // 2:n // 2 + 5] = x[3]                   # exact ties
        m = min(50, n // 2 - 10)
        x[10:10 + m] = x[0] + 1e-4 * rng.standard_normal((m, dim)).astype(np.float32)
        q = rng.standard_normal((9, dim)).astype(np.float32)
        q[1] = x[3]
        q[2] = x[0]
        want, d = _full_float64_topk(x, q, min(k, n))
        ki = want[:, ::-1].copy()                     # the right ids, reordered
        ids, dist = exact_topk(x, q, k, ki)
        assert np.array_equal(ids, want), (n, dim, k)
        assert np.array_equal(dist, np.take_along_axis(d, ki, axis=1))
        # a wrong answer (the k farthest, or duplicate ids) must not change
        # the reference: it only widens or replaces the screening threshold
        far = np.argsort(d, axis=1, kind="stable")[:, ::-1][:, :min(k, n)].copy()
        assert np.array_equal(exact_topk(x, q, k, far)[0], want)
        dup = np.zeros_like(ki)
        assert np.array_equal(exact_topk(x, q, k, dup)[0], want)
