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
