"""Client-side checks and file parsing of vexfs.vector that need no kernel."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from click.testing import CliRunner

from vexfs.vector import abi
from vexfs.vector.cli import vec
from vexfs.vector.client import Collection, as_ids, as_matrix, metric_value
from vexfs.vector.vecio import (VectorFileError, parse_fvecs, parse_id_list,
                                parse_text_vectors, read_vectors, write_fvecs)


# ---- text vectors ----

def test_text_formats():
    text = "# comment\n[0.1, 0.2, 0.3]\n\n1 2 3\n4,5,6\n  [ -1e-3 , 2.5e2,7 ]  \n"
    arr = parse_text_vectors(text)
    assert arr.dtype == np.float32 and arr.shape == (4, 3)
    np.testing.assert_array_equal(arr[1], [1, 2, 3])
    np.testing.assert_allclose(arr[3], [-1e-3, 250, 7])


def test_spec_labelled_lines():
    # exactly what the spec's scenario 5 loop writes
    text = "".join(f"vector_{i}: [1.0, 2.0, 3.0, 4.0]\n" for i in range(1, 11))
    arr = parse_text_vectors(text)
    assert arr.shape == (10, 4)
    np.testing.assert_array_equal(arr, np.tile([1, 2, 3, 4], (10, 1)))
    # a leading number is a value, never a label
    np.testing.assert_array_equal(parse_text_vectors("v.2-a: 1 2\n"), [[1, 2]])


@pytest.mark.parametrize("text,msg", [
    ("1e3: 2 3\n", ":1:"),
    ("1 2 3\n1 2\n", ":2: 2 values, expected 3"),
    ("[1 2 3\n", "without closing"),
    ("1 2 3]\n", "without opening"),
    ("1 x 3\n", ":1:"),
    ("# only a comment\n", "no vectors"),
    ("[]\n", "empty vector"),
])
def test_text_errors(text, msg):
    with pytest.raises(VectorFileError, match=msg.replace("[", r"\[")):
        parse_text_vectors(text, "f.txt")


def test_fvecs_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    vec = rng.standard_normal((7, 5)).astype(np.float32)
    p = tmp_path / "a.fvecs"
    write_fvecs(p, vec)
    assert p.stat().st_size == 7 * (4 + 20)
    np.testing.assert_array_equal(read_vectors(p), vec)


def test_fvecs_errors():
    good = np.array([2], "<i4").tobytes() + np.array([1, 2], "<f4").tobytes()
    with pytest.raises(VectorFileError, match="multiple"):
        parse_fvecs(good + b"\0")
    bad_dim = good + np.array([3], "<i4").tobytes() + np.array([1, 2], "<f4").tobytes()
    with pytest.raises(VectorFileError, match="vector 1 has dimension 3"):
        parse_fvecs(bad_dim)
    with pytest.raises(VectorFileError, match="bad dimension"):
        parse_fvecs(np.array([0], "<i4").tobytes())


def test_npy_and_text_files(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(6, dtype=np.float64).reshape(2, 3))
    assert read_vectors(tmp_path / "v.npy").dtype == np.float32
    (tmp_path / "v.vec").write_text("[1, 2]\n")
    np.testing.assert_array_equal(read_vectors(tmp_path / "v.vec"), [[1, 2]])


def test_id_lists():
    np.testing.assert_array_equal(parse_id_list(["1", "2,3", "10-12"]), [1, 2, 3, 10, 11, 12])
    with pytest.raises(ValueError):
        parse_id_list(["-1"])
    with pytest.raises(ValueError):
        parse_id_list(["5-2"])
    with pytest.raises(ValueError):
        parse_id_list([str(1 << 64)])


# ---- client argument conversion ----

def test_as_ids():
    assert as_ids([1, 2]).dtype == np.uint64
    assert as_ids(7).shape == (1,)
    with pytest.raises(ValueError):
        as_ids([-1])
    with pytest.raises(TypeError):
        as_ids([1.5])
    with pytest.raises(ValueError):
        as_ids([[1, 2]])


def test_as_matrix():
    m = as_matrix([1, 2, 3], 3)
    assert m.shape == (1, 3) and m.dtype == np.float32 and m.flags.c_contiguous
    # a strided view becomes a contiguous copy the kernel can read row by row
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    m = as_matrix(base[:, ::2], 3)
    assert m.flags.c_contiguous and m[1, 1] == 8
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        as_matrix(np.zeros((2, 4)), 3)
    with pytest.raises(ValueError, match="NaN"):
        as_matrix([[1, np.nan, 0]], 3)
    with pytest.raises(ValueError, match="NaN"):
        as_matrix([[1e39, 0, 0]], 3)  # overflows float32
    with pytest.raises(TypeError):
        as_matrix([["a", "b", "c"]], 3)


def test_metric_value():
    assert metric_value("L2") == abi.VEXFS_METRIC_L2
    assert metric_value("cosine") == abi.VEXFS_METRIC_COSINE
    assert metric_value(2) == abi.VEXFS_METRIC_IP
    with pytest.raises(ValueError):
        metric_value("hamming")
    with pytest.raises(ValueError):
        metric_value(3)


def test_create_checks_dim_before_touching_the_file(tmp_path):
    for dim in (0, 4097, 2.5):
        with pytest.raises(ValueError):
            Collection.create(tmp_path / "c", dim)
    assert not (tmp_path / "c").exists()


def test_ioctl_on_a_non_vexfs_file_is_enotty(tmp_path):
    # The host's /tmp is not VexFS: the ioctl number is unknown there.
    with pytest.raises(OSError) as ei:
        Collection.create(tmp_path / "c", 4)
    assert ei.value.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP)


def test_search_and_get_argument_checks():
    fd = os.open(os.devnull, os.O_RDONLY)
    coll = Collection(fd, "/dev/null", 4, abi.VEXFS_METRIC_L2)
    with coll:
        for k in (0, abi.VEXFS_MAX_K + 1, 1.0):
            with pytest.raises(ValueError):
                coll.search(np.zeros((1, 4)), k)
        with pytest.raises(ValueError):
            coll.search(np.zeros((1, 5)), 1)
        with pytest.raises(ValueError):
            coll.insert([1, 2], np.zeros((3, 4)))
        with pytest.raises(ValueError):
            coll.get([1], missing="zero")
    with pytest.raises(ValueError):
        coll.fileno()


def test_cli_reports_errors_cleanly(tmp_path):
    (tmp_path / "q.txt").write_text("1 2\n1\n")
    (tmp_path / "c").write_bytes(b"")
    res = CliRunner().invoke(vec, ["search", str(tmp_path / "c"), str(tmp_path / "q.txt")])
    assert res.exit_code == 1 and "expected 2" in res.output
    res = CliRunner().invoke(vec, ["create", str(tmp_path / "d"), "--dim", "0"])
    assert res.exit_code == 2


# -- issue 13 defect 6 (vec part) ---------------------------------------------------------


def test_create_on_a_non_vexfs_path_leaves_no_file(tmp_path):
    target = tmp_path / "c"
    res = CliRunner().invoke(vec, ["create", str(target), "--dim", "4"])
    assert res.exit_code == 1
    assert not target.exists()
    # an existing file stays (it was not ours to remove), unchanged
    target.write_bytes(b"keep")
    with pytest.raises(OSError):
        Collection.create(target, 4)
    assert target.read_bytes() == b"keep"


class _FakeColl:
    """Stands in for an open collection (the ioctls need the kernel)."""

    dim = 3

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def get(self, ids, missing="raise"):
        ids = np.asarray(ids, dtype=np.uint64)
        found = ids % 2 == 0
        vecs = np.where(found[:, None], ids[:, None].astype(np.float32) * np.ones(3), 0)
        return vecs.astype(np.float32), found

    def search(self, q, k):
        n = np.asarray(q).shape[0]
        return (np.arange(n * k, dtype=np.float32).reshape(n, k),
                np.arange(n * k, dtype=np.int64).reshape(n, k))


def test_get_npy_keeps_rows_aligned_or_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(Collection, "open", classmethod(lambda cls, *a, **k: _FakeColl()))
    (tmp_path / "c").write_bytes(b"")
    out = tmp_path / "v.npy"
    res = CliRunner().invoke(vec, ["get", str(tmp_path / "c"), "2", "3", "4", "--npy", str(out)])
    assert res.exit_code == 1 and "1 of 3 ids are not in" in res.output and "3" in res.output
    assert not out.exists()
    res = CliRunner().invoke(vec, ["get", str(tmp_path / "c"), "2", "3", "4", "--npy", str(out),
                                   "--missing", "nan"])
    assert res.exit_code == 1
    got = np.load(out)
    assert got.shape == (3, 3)
    assert (got[0] == 2).all() and np.isnan(got[1]).all() and (got[2] == 4).all()
    res = CliRunner().invoke(vec, ["get", str(tmp_path / "c"), "2", "4", "--npy", str(out)])
    assert res.exit_code == 0 and np.load(out).shape == (2, 3)


def test_search_npy_writes_d_and_i(tmp_path, monkeypatch):
    monkeypatch.setattr(Collection, "open", classmethod(lambda cls, *a, **k: _FakeColl()))
    (tmp_path / "c").write_bytes(b"")
    (tmp_path / "q.txt").write_text("1 2 3\n4 5 6\n")
    prefix = tmp_path / "res"
    res = CliRunner().invoke(vec, ["search", str(tmp_path / "c"), str(tmp_path / "q.txt"),
                                   "-k", "2", "--npy", str(prefix)])
    assert res.exit_code == 0, res.output
    d, i = np.load(f"{prefix}.D.npy"), np.load(f"{prefix}.I.npy")
    assert d.shape == i.shape == (2, 2) and d.dtype == np.float32 and i.dtype == np.int64


def test_help_texts():
    res = CliRunner().invoke(vec, ["search", "--help"])
    assert "nearest neighbours per query" in res.output
    res = CliRunner().invoke(vec, ["info", "--help"])
    assert "one JSON object" in res.output
